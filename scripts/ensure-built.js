// `npm start` runs this first: it builds dist/ only when dist/ is missing or older than what it
// is built from (src/ and the tsconfig files), so a start with a current build takes no 10 s.
// Usage: node scripts/ensure-built.js [project root]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'dist', 'cli', 'main.js');

/** The newest modification time of a file, or of any file below a folder; 0 when absent. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  let latest = stats.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

const sources = Math.max(newest(join(root, 'src')), newest(join(root, 'tsconfig.json')), newest(join(root, 'tsconfig.build.json')));
if (existsSync(built) && statSync(built).mtimeMs >= sources) {
  process.stderr.write('elastic-session: dist/ is up to date, not rebuilding\n');
  process.exit(0);
}
process.stderr.write(`elastic-session: building dist/ (${existsSync(built) ? 'sources changed since the last build' : 'no build yet'})\n`);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
