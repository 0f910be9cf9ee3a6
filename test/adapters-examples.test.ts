import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { checkRedisBinaries, startRedis, stopAll } from './helpers/redis-servers.js';

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

/** Runs an example to its exit: the code and everything it wrote. */
async function runToExit(name: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [join('examples', name, 'server.js')], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, output };
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

/** An error answer as a browser would get it: status, content type and the raw page. */
async function errorPage(url: string, method: string, jar: { cookie: string | null }): Promise<{ status: number; type: string; text: string }> {
  const response = await fetch(url, { method, headers: { accept: 'text/html,*/*', ...(jar.cookie ? { cookie: jar.cookie } : {}) } });
  return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
}

/** What a stack trace leaves in a page: frames (`at fn (file:line:col)`) or source positions. */
const STACK = /\bat [^\n]*\(|\.(?:js|ts|mjs):\d+|node_modules|node:internal/;

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

  for (const name of EXAMPLES) {
    it(`${name}: on a busy port, exits with code 1 and one line naming the port and PORT`, async () => {
      const blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = blocker.address() as AddressInfo;
        const { code, output } = await runToExit(name, { PORT: String(port), ELASTIC_SESSION_STORE: 'memory:', ELASTIC_SESSION_SECRET: 'examples-test-secret-0123456789abcdefghij' });
        expect(code).toBe(1);
        expect(output.trim().split('\n').filter((line) => !line.includes('memory store'))).toEqual([
          `cannot listen on 127.0.0.1: port ${port} is already in use; set PORT to a free port, or PORT=0 to pick one`,
        ]);
        expect(output).not.toMatch(STACK);
      } finally {
        await new Promise((resolve) => blocker.close(resolve));
      }
    }, 20_000);
  }
});

describe('examples in development mode answer errors without stack traces', () => {
  let running: ChildProcess | undefined;

  afterEach(() => {
    running?.kill();
    running = undefined;
  });

  afterAll(() => stopAll());

  for (const name of EXAMPLES) {
    it(`${name}: a refused write and a store outage (503) show no stack trace`, async () => {
      await checkRedisBinaries();
      const redis = await startRedis();
      const { child, url } = await start(name, {
        PORT: '0',
        NODE_ENV: 'development',
        ELASTIC_SESSION_STORE: `redis://127.0.0.1:${redis.port}`,
        ELASTIC_SESSION_SECRET: 'examples-test-secret-0123456789abcdefghij',
      });
      running = child;
      const jar = { cookie: null as string | null };
      expect((await call(`${url}/login?user=ada`, 'POST', jar)).status).toBe(200);

      // A field name over the limit: a SessionError (400) while saving. Fastify refuses so long
      // a path parameter itself (414, maxParamLength), before any handler runs.
      const refused = await errorPage(`${url}/items/${'x'.repeat(300)}`, 'POST', jar);
      if (name === 'fastify') {
        expect(refused.status).toBe(414);
      } else {
        expect(refused.status).toBe(400);
        expect(refused.text).toContain('ESESS_INVALID_INPUT');
      }
      expect(refused.text).not.toMatch(STACK);

      await redis.kill();
      const down = await errorPage(`${url}/me`, 'GET', jar);
      expect(down.status).toBe(503);
      expect(down.text).toContain('ESESS_STORE_UNAVAILABLE');
      expect(down.text).not.toMatch(STACK);
      if (name !== 'fastify') expect(down.type).toBe('application/problem+json');
    }, 30_000);
  }

  it('express: a malformed path parameter is a 400 without a stack trace', async () => {
    const { child, url } = await start('express', {
      PORT: '0',
      NODE_ENV: 'development',
      ELASTIC_SESSION_STORE: `sqlite:${join(directory, 'malformed', 'sessions.db')}`,
      ELASTIC_SESSION_SECRET: 'examples-test-secret-0123456789abcdefghij',
    });
    running = child;
    const page = await errorPage(`${url}/items/%E0%A4%A`, 'POST', { cookie: null });
    expect(page.status).toBe(400);
    expect(page.text).not.toMatch(STACK);
  });
});
