import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { Hono } from 'hono';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { session } from '../src/adapters/hono.js';
import type { LazySession } from '../src/adapters/hono.js';
import { isSessionError } from '../src/core/errors.js';
import type { SessionError } from '../src/core/errors.js';
import { SessionManager } from '../src/core/manager.js';
import { memoryStore } from '../src/stores/memory.js';
import type { SessionStore } from '../src/core/types.js';
import { probeStore } from './helpers/adapters.js';

const SECRET = 'hono-adapter-test-secret-0123456789abcdefghij';
const SRC = join(import.meta.dirname, '../src');

/** The files under src/ that the Hono adapter imports, transitively, up to the core and the security module. */
function honoPath(): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file) || file.startsWith('core/') || file.startsWith('security/')) return;
    seen.add(file);
    for (const [, specifier] of readFileSync(join(SRC, file), 'utf8').matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) {
      visit(relative(SRC, join(SRC, dirname(file), `${specifier as string}.ts`)));
    }
  };
  visit('adapters/hono.ts');
  return [...seen].sort();
}

function devApp(store: SessionStore = memoryStore()): Hono {
  const app = new Hono();
  app.use(session({ store, secrets: [SECRET], insecureLocalhostDevelopment: true }));
  app.post('/write', async (c) => {
    const s = await c.get('session');
    s.n = ((s.n as number | undefined) ?? 0) + 1;
    return c.json({ n: s.n });
  });
  app.get('/read', async (c) => {
    const s = await c.get('session');
    return c.json({ n: s.n ?? null });
  });
  return app;
}

function cookieOf(response: Response): string {
  return (response.headers.getSetCookie()[0] ?? '').split(';')[0] as string;
}

describe('hono adapter', () => {
  it('c.get("session") is a lazy, typed session', () => {
    new Hono().get('/', async (c) => {
      expectTypeOf(c.get('session')).toEqualTypeOf<LazySession>();
      return c.text('');
    });
    expectTypeOf<Awaited<LazySession>['adapterTestCart']>().toEqualTypeOf<string[] | undefined>();
  });

  it('reaches app.onError as a SessionError on load and on save', async () => {
    const probe = probeStore(memoryStore());
    const app = devApp(probe.store);
    const seen: string[] = [];
    app.onError((error, c) => {
      seen.push(isSessionError(error) ? error.code : 'other');
      return c.json({ custom: true }, (error as SessionError).status as 503);
    });
    const cookie = cookieOf(await app.request('/write', { method: 'POST' }));
    probe.down = true;
    const read = await app.request('/read', { headers: { cookie } });
    expect(read.status).toBe(503);
    expect(await read.json()).toEqual({ custom: true });
    const write = await app.request('/write', { method: 'POST' });
    expect(write.status).toBe(503);
    expect(write.headers.getSetCookie()).toEqual([]);
    expect(seen).toEqual(['ESESS_STORE_UNAVAILABLE', 'ESESS_STORE_UNAVAILABLE']);
  });

  it('without onError, a store outage is a 503 problem+json', async () => {
    const probe = probeStore(memoryStore());
    const app = devApp(probe.store);
    probe.down = true;
    const reply = await app.request('/write', { method: 'POST' });
    expect(reply.status).toBe(503);
    expect(reply.headers.get('content-type')).toBe('application/problem+json');
    expect(reply.headers.get('retry-after')).toBe('1');
    expect(await reply.json()).toEqual({ type: 'urn:elastic-session:error:ESESS_STORE_UNAVAILABLE', title: 'Session store unavailable', status: 503, code: 'ESESS_STORE_UNAVAILABLE' });
  });

  it('sets the cookie even on a response whose headers are immutable', async () => {
    const app = devApp();
    app.post('/go', async (c) => {
      const s = await c.get('session');
      s.n = 1;
      return Response.redirect('http://localhost/read', 303);
    });
    const reply = await app.request('/go', { method: 'POST' });
    expect(reply.status).toBe(303);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    const read = await app.request('/read', { headers: { cookie: cookieOf(reply) } });
    expect(await read.json()).toEqual({ n: 1 });
  });

  it('keeps cookies the handler sets', async () => {
    const app = devApp();
    app.post('/both', async (c) => {
      const s = await c.get('session');
      s.n = 1;
      c.header('set-cookie', 'theme=dark', { append: true });
      return c.text('ok');
    });
    const reply = await app.request('/both', { method: 'POST' });
    expect(reply.headers.getSetCookie().map((line) => line.split('=')[0])).toEqual(['theme', 'sid']);
  });

  it('counts https from the request URL or a trusted proxy, and refuses a Secure cookie otherwise', async () => {
    const build = (trustProxy: boolean) => {
      const app = new Hono();
      app.use(session({ manager: new SessionManager({ store: memoryStore(), secrets: [SECRET] }), trustProxy }));
      app.post('/', async (c) => {
        const s = await c.get('session');
        s.n = 1;
        return c.text('ok');
      });
      return app;
    };
    const direct = build(false);
    expect((await direct.request('https://example.com/', { method: 'POST' })).status).toBe(200);
    const plain = await direct.request('http://example.com/', { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
    expect(plain.status).toBe(500);
    expect(await plain.json()).toMatchObject({ code: 'ESESS_CONFIG', detail: expect.stringContaining('trustProxy: true') as unknown });
    const proxied = build(true);
    expect((await proxied.request('http://example.com/', { method: 'POST', headers: { 'x-forwarded-proto': 'https' } })).status).toBe(200);
  });

  it('uses no Node-only API on its path (only the core and the store may)', () => {
    const files = honoPath();
    expect(files).toEqual(['adapters/hono.ts', 'adapters/reauth.ts', 'adapters/request-session.ts', 'adapters/runtime.ts', 'adapters/view.ts', 'problem.ts']);
    for (const file of files) {
      const source = readFileSync(join(SRC, file), 'utf8');
      expect(source, file).not.toMatch(/from ['"](node:|fs|path|http|crypto|stream|buffer)/);
      expect(source, file).not.toMatch(/\b(Buffer|process|require)\b/);
    }
  });
});
