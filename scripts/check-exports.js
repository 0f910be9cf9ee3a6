// Checks the package surface by machine: every export in package.json points at a built file,
// every subpath imports, and publint finds no error. Run after `npm run build`.
import { spawnSync } from 'node:child_process';
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

// prom-client is an optional peer: only these subpaths may load it (it is CommonJS, so a load
// shows in the require cache, whether it came through import or require).
const NEEDS_PROM_CLIENT = new Set(['./metrics', './service']);
for (const subpath of Object.keys(pkg.exports)) {
  if (subpath === './package.json' || NEEDS_PROM_CLIENT.has(subpath)) continue;
  const specifier = subpath === '.' ? pkg.name : `${pkg.name}${subpath.slice(1)}`;
  const program = `await import(${JSON.stringify(specifier)}); const { createRequire } = await import('node:module');
console.log(Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/node_modules/prom-client/')));`;
  const result = spawnSync(process.execPath, ['--input-type=module', '--eval', program], { encoding: 'utf8' });
  if (result.stdout.trim() === 'true') problems.push(`${subpath}: loads prom-client, an optional peer only ${[...NEEDS_PROM_CLIENT].join(' and ')} may need`);
  else if (result.status !== 0) problems.push(`${subpath}: import in a fresh process failed: ${result.stderr.trim().split('\n')[0]}`);
}

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
