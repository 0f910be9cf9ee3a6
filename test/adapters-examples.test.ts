import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const EXAMPLES = ['express', 'fastify', 'hono', 'node-http'];
const directory = mkdtempSync(join(tmpdir(), 'elastic-session-examples-'));

/** Starts `node examples/<name>/server.js` as a user would and waits for its `listening on` line. */
function start(name: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [join('examples', name, 'server.js')], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => fail(new Error(`no "listening on" line within 10 s:\n${output}`)), 10_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill();
      reject(error);
    };
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1] as string });
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('exit', (code) => fail(new Error(`exited with ${code}:\n${output}`)));
  });
}

/** A one-cookie jar: enough for one session cookie. */
async function call(url: string, method: string, jar: { cookie: string | null }): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { method, headers: jar.cookie ? { cookie: jar.cookie } : {} });
  for (const line of response.headers.getSetCookie()) {
    const pair = line.split(';')[0] as string;
    jar.cookie = /max-age=0/i.test(line) ? null : pair;
  }
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as unknown) : null };
}

describe('examples', () => {
  let running: ChildProcess | undefined;

  afterEach(() => {
    running?.kill();
    running = undefined;
  });

  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it('are built first (npm run build)', () => {
    expect(existsSync(join(ROOT, 'dist/adapters/express.js')), 'dist/ is missing: run `npm run build` before these tests').toBe(true);
  });

  for (const name of EXAMPLES) {
    it(`${name}: serves login, items, me and logout against the embedded SQLite store`, async () => {
      const { child, url } = await start(name, {
        PORT: '0',
        ELASTIC_SESSION_STORE: `sqlite:${join(directory, name, 'sessions.db')}`,
        ELASTIC_SESSION_SECRET: 'examples-test-secret-0123456789abcdefghij',
      });
      running = child;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const jar = { cookie: null as string | null };

      expect(await call(`${url}/me`, 'GET', jar)).toEqual({ status: 401, body: { error: 'no session' } });
      expect(jar.cookie).toBeNull();
      expect(await call(`${url}/login?user=ada`, 'POST', jar)).toEqual({ status: 200, body: { user: 'ada' } });
      expect(jar.cookie).toMatch(/^sid=/);
      expect(await call(`${url}/items/apple`, 'POST', jar)).toEqual({ status: 200, body: { name: 'apple', count: 1 } });
      expect(await call(`${url}/items/apple`, 'POST', jar)).toEqual({ status: 200, body: { name: 'apple', count: 2 } });
      expect(await call(`${url}/items/pear`, 'POST', jar)).toEqual({ status: 200, body: { name: 'pear', count: 1 } });
      expect(await call(`${url}/me`, 'GET', jar)).toEqual({ status: 200, body: { user: 'ada', items: { apple: 2, pear: 1 } } });
      const stale = jar.cookie;
      expect(await call(`${url}/logout`, 'POST', jar)).toEqual({ status: 204, body: null });
      expect(jar.cookie).toBeNull();
      expect((await call(`${url}/me`, 'GET', jar)).status).toBe(401);
      expect((await call(`${url}/me`, 'GET', { cookie: stale })).status).toBe(401);
    }, 20_000);
  }
});
