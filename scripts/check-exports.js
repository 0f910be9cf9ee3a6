// Checks the package surface by machine: every export in package.json points at a built file,
// every subpath imports, and publint finds no error. Run after `npm run build`.
import { existsSync, readFileSync } from 'node:fs';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const problems = [];

for (const [subpath, target] of Object.entries(pkg.exports)) {
  const files = typeof target === 'string' ? [target] : Object.values(target);
  for (const file of files) if (!existsSync(new URL(`../${file}`, import.meta.url))) problems.push(`${subpath}: ${file} is not built`);
  if (subpath === './package.json') continue;
  const specifier = subpath === '.' ? pkg.name : `${pkg.name}${subpath.slice(1)}`;
  try {
    await import(specifier);
  } catch (error) {
    problems.push(`${subpath}: import failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
if (!existsSync(new URL(`../${pkg.bin['elastic-session']}`, import.meta.url))) problems.push('bin elastic-session is not built');

const { messages } = await publint({ pkgDir: new URL('..', import.meta.url).pathname, strict: true });
for (const message of messages) {
  if (message.type === 'error') problems.push(`publint: ${formatMessage(message, pkg)}`);
  else console.log(`publint ${message.type}: ${formatMessage(message, pkg)}`);
}

if (problems.length > 0) {
  console.error(`package surface check failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`package surface ok: ${Object.keys(pkg.exports).length} exports`);
