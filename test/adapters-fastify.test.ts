import Fastify from 'fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { fastifySession } from '../src/adapters/fastify.js';
import { isSessionError } from '../src/core/errors.js';
import { memoryStore } from '../src/stores/memory.js';
import { probeStore } from './helpers/adapters.js';

const SECRET = 'fastify-adapter-test-secret-0123456789abcdef';
const apps: FastifyInstance[] = [];

afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function newApp(): FastifyInstance {
  const app = Fastify();
  apps.push(app);
  return app;
}

function cookieOf(headers: Record<string, unknown>): string {
  const raw = headers['set-cookie'];
  const line = Array.isArray(raw) ? (raw[0] as string) : (raw as string);
  return line.split(';')[0] as string;
}

describe('fastify adapter', () => {
  it('refuses to start with Secure cookies on a plain-http server unless told a proxy terminates TLS', async () => {
    const plain = newApp();
    await plain.register(fastifySession, { store: memoryStore(), secrets: [SECRET] }).ready().then(
      () => expect.fail('should not start'),
      (error: unknown) => {
        expect(isSessionError(error, 'ESESS_CONFIG')).toBe(true);
        expect((error as Error).message).toMatch(/plain http.*trustProxy: true.*insecureLocalhostDevelopment: true/s);
      },
    );
    await newApp().register(fastifySession, { store: memoryStore(), secrets: [SECRET], trustProxy: true }).ready();
    await newApp().register(fastifySession, { store: memoryStore(), secrets: [SECRET], insecureLocalhostDevelopment: true }).ready();
  });

  it('with trustProxy, a request without X-Forwarded-Proto: https that uses the session is a configuration error', async () => {
    const app = newApp();
    await app.register(fastifySession, { store: memoryStore(), secrets: [SECRET], trustProxy: true });
    app.post('/', async (request) => {
      request.session.n = 1;
      return { ok: true };
    });
    const plain = await app.inject({ method: 'POST', url: '/' });
    expect(plain.statusCode).toBe(500);
    expect(plain.json()).toMatchObject({ code: 'ESESS_CONFIG' });
    const forwarded = await app.inject({ method: 'POST', url: '/', headers: { 'x-forwarded-proto': 'https' } });
    expect(forwarded.statusCode).toBe(200);
  });

  it('offers get/set and property access on request.session, typed by declaration merging', async () => {
    const app = newApp();
    await app.register(fastifySession, { store: memoryStore(), secrets: [SECRET], insecureLocalhostDevelopment: true });
    app.post('/', async (request) => {
      request.session.set('a', 1);
      request.session.b = 2;
      return { a: request.session.a, b: request.session.get('b'), keys: request.session.keys() };
    });
    const reply = await app.inject({ method: 'POST', url: '/' });
    expect(reply.json()).toEqual({ a: 1, b: 2, keys: ['a', 'b'] });
    expectTypeOf<FastifyRequest['session']['adapterTestCart']>().toEqualTypeOf<string[] | undefined>();
    expectTypeOf<FastifyRequest['loadSession']>().returns.resolves.toHaveProperty('regenerate');
  });

  it('hands store errors to setErrorHandler as SessionError, both on load (onRequest) and on save (onSend)', async () => {
    const probe = probeStore(memoryStore());
    const app = newApp();
    await app.register(fastifySession, { store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true });
    const seen: string[] = [];
    app.setErrorHandler(async (error, _request, reply) => {
      seen.push(isSessionError(error) ? error.code : 'other');
      return reply.code(503).send({ custom: true });
    });
    app.post('/write', async (request, reply) => {
      request.session.n = 1;
      reply.header('x-handler', 'yes');
      return { saved: true };
    });
    app.get('/read', async (request) => ({ n: request.session.n }));
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/write' })).headers);
    probe.down = true;
    const read = await app.inject({ method: 'GET', url: '/read', headers: { cookie } });
    expect(read.statusCode).toBe(503);
    expect(read.json()).toEqual({ custom: true });
    const write = await app.inject({ method: 'POST', url: '/write' });
    expect(write.statusCode).toBe(503);
    expect(write.json()).toEqual({ custom: true });
    expect(write.headers['set-cookie']).toBeUndefined();
    expect(seen).toEqual(['ESESS_STORE_UNAVAILABLE', 'ESESS_STORE_UNAVAILABLE']);
  });

  it('without an error handler, a store outage is a 503 carrying the error code', async () => {
    const probe = probeStore(memoryStore());
    const app = newApp();
    await app.register(fastifySession, { store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true });
    app.post('/', async (request) => {
      request.session.n = 1;
      return { saved: true };
    });
    probe.down = true;
    const reply = await app.inject({ method: 'POST', url: '/' });
    expect(reply.statusCode).toBe(503);
    expect(reply.json()).toMatchObject({ statusCode: 503, code: 'ESESS_STORE_UNAVAILABLE' });
  });

  it('lazy mode reads nothing until request.loadSession()', async () => {
    const probe = probeStore(memoryStore());
    const app = newApp();
    await app.register(fastifySession, { store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true, lazy: true });
    app.post('/', async (request) => {
      const s = await request.loadSession();
      s.n = ((s.n as number | undefined) ?? 0) + 1;
      return { n: s.n };
    });
    app.get('/early', async (request) => ({ n: request.session.n }));
    app.get('/health', async () => 'ok');
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/' })).headers);
    probe.reset();
    expect((await app.inject({ method: 'GET', url: '/health', headers: { cookie } })).statusCode).toBe(200);
    expect(probe.total()).toBe(0);
    const early = await app.inject({ method: 'GET', url: '/early', headers: { cookie } });
    expect(early.statusCode).toBe(500);
    expect(early.json()).toMatchObject({ code: 'ESESS_USAGE' });
    expect((await app.inject({ method: 'POST', url: '/', headers: { cookie } })).json()).toEqual({ n: 2 });
  });

  it('saves before a redirect and sets the cookie on it', async () => {
    const probe = probeStore(memoryStore());
    probe.writeDelayMs = 20;
    const app = newApp();
    await app.register(fastifySession, { store: probe.store, secrets: [SECRET], insecureLocalhostDevelopment: true });
    app.post('/go', async (request, reply) => {
      request.session.n = 1;
      return reply.redirect('/next', 303);
    });
    const reply = await app.inject({ method: 'POST', url: '/go' });
    expect(reply.statusCode).toBe(303);
    expect(reply.headers['cache-control']).toBe('no-store');
    expect(probe.calls).toEqual({ create: 1 });
    expect(cookieOf(reply.headers)).toMatch(/^sid=/);
  });
});
