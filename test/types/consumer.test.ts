import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/service.js';

const CONSUMER = join(ROOT, 'test', 'types', 'consumer');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** Runs tsc on one of the consumer's projects; resolves with its exit code and diagnostics. */
async function compile(project: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [TSC, '-p', join(CONSUMER, project), '--pretty', 'false'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, output };
}

describe('a TypeScript app against the built declarations, every .d.ts checked (skipLibCheck: false)', () => {
  it('imports every entry point of the package', () => {
    const exported = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }).exports)
      .filter((subpath) => subpath !== './package.json')
      .map((subpath) => `elastic-session${subpath.slice(1)}`);
    const source = ['app.ts', 'nats.ts'].map((file) => readFileSync(join(CONSUMER, file), 'utf8')).join('\n');
    const imported = new Set([...source.matchAll(/from '(elastic-session(?:\/[a-z/-]+)?)'/g)].map((match) => match[1]));
    expect([...imported].sort()).toEqual(exported.sort());
  });

  for (const project of ['tsconfig.json', 'tsconfig.nats.json']) {
    it(`${project} compiles without a diagnostic`, async () => {
      expect(existsSync(join(ROOT, 'dist', 'index.d.ts')), 'dist/ is missing: run `npm run build` before these tests').toBe(true);
      const { code, output } = await compile(project);
      expect(output).toBe('');
      expect(code).toBe(0);
    }, 60_000);
  }
});
