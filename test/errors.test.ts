import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, SessionError } from '../src/index.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('error codes', () => {
  it('docs/errors.md lists every code with its status, and no other', () => {
    const documented = new Map([...doc.matchAll(/^\| `(ESESS_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]));
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, { status }] of Object.entries(ERROR_CODES)) expect(documented.get(code), code).toBe(status);
  });

  it('the source uses no code that is not defined', () => {
    const used = new Set(sources(new URL('../src', import.meta.url).pathname).flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/'(ESESS_[A-Z_]+)'/g)].map((m) => m[1])));
    for (const code of used) expect(Object.keys(ERROR_CODES), `${code} is used but not defined`).toContain(code);
  });

  it('an error carries its code, status, cause and context', () => {
    const cause = new Error('driver');
    const error = new SessionError('ESESS_STORE_UNAVAILABLE', { cause, context: { store: 'x' } });
    expect(error).toMatchObject({ name: 'SessionError', code: 'ESESS_STORE_UNAVAILABLE', status: 503, retriable: true, context: { store: 'x' } });
    expect(error.cause).toBe(cause);
    expect(new SessionError('ESESS_GONE').retriable).toBe(false);
  });
});
