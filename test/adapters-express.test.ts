import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { session } from '../src/adapters/express.js';
import { isSessionError, SessionError } from '../src/core/errors.js';
import { SessionManager } from '../src/core/manager.js';
import { memoryStore } from '../src/stores/memory.js';
import { probeStore } from './helpers/adapters.js';
import type { ProbedStore } from './helpers/adapters.js';

const SECRET = 'express-adapter-test-secret-0123456789abcdef';
const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function serve(app: express.Express): Promise<string> {
  const server = createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function devSetup(): { probe: ProbedStore; manager: SessionManager } {
  const probe = probeStore(memoryStore());
  return { probe, manager: new SessionManager({ store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true }) };
}

function cookieOf(response: globalThis.Response): string {
  const line = response.headers.getSetCookie()[0];
  if (!line) throw new Error('no Set-Cookie');
  return line.split(';')[0] as string;
}

describe('express adapter', () => {
  it('gives req.session property access, delete, keys, spread and JSON like express-session', async () => {
    const { manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    app.post('/write', (req, res) => {
      req.session.views = 1;
      req.session.profile = { name: 'ada' };
      req.session.temp = 'x';
      delete req.session.temp;
      Object.assign(req.session, { theme: 'dark' });
      res.json({ keys: Object.keys(req.session), spread: { ...req.session }, json: JSON.parse(JSON.stringify(req.session)) as unknown, has: 'views' in req.session });
    });
    app.get('/read', (req, res) => {
      res.json({ views: req.session.views, missing: req.session.missing ?? null, data: req.session.toJSON(), userId: req.session.userId, isNew: req.session.isNew });
    });
    const url = await serve(app);
    const write = await fetch(`${url}/write`, { method: 'POST' });
    const expected = { views: 1, profile: { name: 'ada' }, theme: 'dark' };
    expect(await write.json()).toEqual({ keys: ['views', 'profile', 'theme'], spread: expected, json: expected, has: true });
    const read = await fetch(`${url}/read`, { headers: { cookie: cookieOf(write) } });
    expect(await read.json()).toEqual({ views: 1, missing: null, data: expected, userId: null, isNew: false });
  });

  it('types session fields by declaration merging', () => {
    expectTypeOf<Request['session']['adapterTestCart']>().toEqualTypeOf<string[] | undefined>();
    expectTypeOf<Request['session']['regenerate']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<Request['session']['userId']>().toEqualTypeOf<string | null>();
  });

  it('refuses to assign to a method name, and reaches such a field through get/set', async () => {
    const { manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    app.post('/', (req, res) => {
      let error = '';
      try {
        (req.session as unknown as Record<string, unknown>).save = 1;
      } catch (caught) {
        error = (caught as Error).message;
      }
      req.session.set('save', 2);
      res.json({ error, value: req.session.get('save') });
    });
    const reply = await (await fetch(`${await serve(app)}/`, { method: 'POST' })).json();
    expect(reply).toEqual({ error: expect.stringContaining('session.set("save", value)') as unknown, value: 2 });
  });

  it('lazy mode reads nothing until loadSession(), and says so when req.session is used before', async () => {
    const { probe, manager } = devSetup();
    const app = express();
    app.use(session({ manager, lazy: true }));
    app.post('/write', async (req, res) => {
      const s = await req.loadSession();
      s.n = 1;
      res.end();
    });
    app.get('/early', (req, res) => {
      res.json({ n: req.session.n });
    });
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      res.status(500).json({ code: isSessionError(error) ? error.code : 'other', message: (error as Error).message });
    });
    const url = await serve(app);
    const cookie = cookieOf(await fetch(`${url}/write`, { method: 'POST' }));
    probe.reset();
    const early = await fetch(`${url}/early`, { headers: { cookie } });
    expect(early.status).toBe(500);
    expect(await early.json()).toEqual({ code: 'ESESS_USAGE', message: expect.stringContaining('await req.loadSession()') as unknown });
    // Without a cookie too: whether a request carries one must not change what the code may do.
    expect((await fetch(`${url}/early`)).status).toBe(500);
    expect(probe.total()).toBe(0);
  });

  it('passes store errors on load and on save to the error middleware as SessionError', async () => {
    const { probe, manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    app.post('/write', (req, res) => {
      req.session.n = 1;
      res.set('x-handler', 'yes').json({ saved: true });
    });
    app.get('/read', (req, res) => {
      res.json({ n: req.session.n });
    });
    const seen: string[] = [];
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      seen.push(isSessionError(error) ? error.code : 'other');
      const status = error instanceof SessionError ? error.status : 500;
      res.status(status).json({ code: (error as SessionError).code });
    });
    const url = await serve(app);
    const cookie = cookieOf(await fetch(`${url}/write`, { method: 'POST' }));
    probe.down = true;
    const read = await fetch(`${url}/read`, { headers: { cookie } });
    expect(read.status).toBe(503);
    const write = await fetch(`${url}/write`, { method: 'POST' });
    expect(write.status).toBe(503);
    expect(await write.json()).toEqual({ code: 'ESESS_STORE_UNAVAILABLE' });
    // The handler's response was discarded whole, headers included.
    expect(write.headers.get('x-handler')).toBeNull();
    expect(write.headers.getSetCookie()).toEqual([]);
    expect(seen).toEqual(['ESESS_STORE_UNAVAILABLE', 'ESESS_STORE_UNAVAILABLE']);
  });

  it('answers 503 through Express\'s final handler when the app has no error middleware', async () => {
    const { probe, manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    app.post('/', (req, res) => {
      req.session.n = 1;
      res.end();
    });
    const url = await serve(app);
    probe.down = true;
    expect((await fetch(url, { method: 'POST' })).status).toBe(503);
  });

  it('merges its cookie with the cookies and headers a handler passes to writeHead', async () => {
    const { manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    app.post('/', (req, res) => {
      req.session.n = 1;
      res.cookie('theme', 'dark');
      res.writeHead(200, { 'Set-Cookie': 'lang=en', 'Cache-Control': 'public, max-age=60', 'Content-Type': 'text/plain' });
      res.end('ok');
    });
    const response = await fetch(`${await serve(app)}/`, { method: 'POST' });
    expect(await response.text()).toBe('ok');
    const cookies = response.headers.getSetCookie().map((line) => line.split('=')[0]);
    expect(cookies).toEqual(['theme', 'lang', 'sid']);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-type')).toBe('text/plain');
  });

  it('holds streamed writes until the session is saved and keeps their order', async () => {
    const { probe, manager } = devSetup();
    probe.writeDelayMs = 30;
    const app = express();
    app.use(session({ manager }));
    app.post('/chunks', (req, res) => {
      req.session.n = 1;
      res.write('a');
      res.write('b');
      res.end('c');
    });
    app.post('/pipe', (req, res) => {
      req.session.n = 2;
      Readable.from(Array.from({ length: 200 }, (_, i) => `${i};`)).pipe(res);
    });
    const url = await serve(app);
    const chunks = await fetch(`${url}/chunks`, { method: 'POST' });
    expect(await chunks.text()).toBe('abc');
    expect(chunks.headers.getSetCookie()).toHaveLength(1);
    const piped = await fetch(`${url}/pipe`, { method: 'POST' });
    expect(await piped.text()).toBe(Array.from({ length: 200 }, (_, i) => `${i};`).join(''));
    expect(piped.headers.getSetCookie()).toHaveLength(1);
  });

  it('refuses changes once the response is on its way, instead of losing them silently', async () => {
    const { manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    let late: unknown;
    app.post('/', (req, res) => {
      req.session.n = 1;
      res.end();
      try {
        req.session.n = 2;
      } catch (error) {
        late = error;
      }
    });
    await fetch(`${await serve(app)}/`, { method: 'POST' });
    expect(isSessionError(late, 'ESESS_USAGE')).toBe(true);
  });

  it('a destroyed session refuses writes; regenerate({ keepData: false }) starts afresh', async () => {
    const { manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    app.post('/login', async (req, res) => {
      req.session.secret = 'x';
      await req.session.regenerate({ keepData: false });
      req.session.flash = 'welcome';
      res.json(req.session.toJSON());
    });
    app.post('/logout', async (req, res) => {
      await req.session.destroy();
      let code = '';
      try {
        req.session.flash = 'bye';
      } catch (error) {
        code = (error as SessionError).code;
      }
      res.json({ code, data: req.session.toJSON() });
    });
    const url = await serve(app);
    const login = await fetch(`${url}/login`, { method: 'POST' });
    expect(await login.json()).toEqual({ flash: 'welcome' });
    const logout = await fetch(`${url}/logout`, { method: 'POST', headers: { cookie: cookieOf(login) } });
    expect(await logout.json()).toEqual({ code: 'ESESS_GONE', data: {} });
  });

  it('mounted twice, it loads once', async () => {
    const { probe, manager } = devSetup();
    const app = express();
    app.use(session({ manager }));
    app.use(session({ manager }));
    app.post('/', (req, res) => {
      req.session.n = ((req.session.n as number | undefined) ?? 0) + 1;
      res.json({ n: req.session.n });
    });
    const url = await serve(app);
    const cookie = cookieOf(await fetch(url, { method: 'POST' }));
    probe.reset();
    expect(await (await fetch(url, { method: 'POST', headers: { cookie } })).json()).toEqual({ n: 2 });
    expect(probe.calls).toEqual({ load: 1, apply: 1 });
  });

  describe('Secure cookies and plain http', () => {
    const secureManager = () => new SessionManager({ store: memoryStore(), secrets: [SECRET] });
    const app = (trustProxy?: boolean) => {
      const instance = express();
      instance.use(session({ manager: secureManager(), trustProxy }));
      instance.get('/health', (_req, res) => {
        res.send('ok');
      });
      instance.post('/write', (req, res) => {
        req.session.n = 1;
        res.end();
      });
      instance.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
        res.status(500).json({ code: (error as SessionError).code, message: (error as Error).message });
      });
      return instance;
    };

    it('is a clear configuration error naming trustProxy when a session is used over plain http', async () => {
      const url = await serve(app());
      const reply = await fetch(`${url}/write`, { method: 'POST' });
      expect(reply.status).toBe(500);
      const body = (await reply.json()) as { code: string; message: string };
      expect(body.code).toBe('ESESS_CONFIG');
      expect(body.message).toMatch(/trustProxy: true/);
      expect(body.message).toMatch(/insecureLocalhostDevelopment: true/);
      // A forwarded-proto header proves nothing unless the app trusts its proxy.
      expect((await fetch(`${url}/write`, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } })).status).toBe(500);
      // Routes that never use the session (health checks straight to the app) keep working.
      expect((await fetch(`${url}/health`)).status).toBe(200);
    });

    it('accepts https forwarded by a trusted proxy', async () => {
      const url = await serve(app(true));
      const reply = await fetch(`${url}/write`, { method: 'POST', headers: { 'x-forwarded-proto': 'https, http' } });
      expect(reply.status).toBe(200);
      expect(reply.headers.getSetCookie()[0]).toMatch(/^__Host-sid=.*; Secure/);
      expect((await fetch(`${url}/write`, { method: 'POST', headers: { 'x-forwarded-proto': 'http' } })).status).toBe(500);
    });

    it('needs no proxy in the explicit development mode, and then sets a non-Secure "sid" cookie', async () => {
      const instance = express();
      instance.use(session({ store: memoryStore(), secrets: [SECRET], insecureLocalhostDevelopment: true }));
      instance.post('/', (req, res) => {
        req.session.n = 1;
        res.end();
      });
      const reply = await fetch(`${await serve(instance)}/`, { method: 'POST' });
      expect(reply.status).toBe(200);
      expect(reply.headers.getSetCookie()[0]).toMatch(/^sid=.*; HttpOnly; SameSite=Lax$/);
    });
  });

  it('validates its options at startup, naming the option', () => {
    expect(() => session({ manager: devSetup().manager, lazy: 'yes' as unknown as boolean })).toThrow(/lazy/);
    expect(() => session({ manager: devSetup().manager, trustProxy: 1 as unknown as boolean })).toThrow(/trustProxy/);
    expect(() => session({ store: memoryStore(), secrets: ['short'] })).toThrow(/secrets/);
    expect(() => session({ manager: {} as SessionManager })).toThrow(/manager/);
  });
});
