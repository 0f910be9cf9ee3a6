/**
 * One small app per adapter, all serving the same routes through the same route logic, and the
 * transports that drive them: real HTTP on loopback, Fastify's `inject` and Hono's
 * `app.request`. The behavioural suite in test/adapters.test.ts runs against every pairing.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import express4 from 'express4';
import type { Request as ExpressRequest, Response as ExpressResponse } from 'express';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Hono } from 'hono';
import type { Context } from 'hono';
import { requireRecentAuth as expressRecentAuth, session as expressSession } from '../../src/adapters/express.js';
import { fastifySession, requireRecentAuth as fastifyRecentAuth } from '../../src/adapters/fastify.js';
import { session as honoSession, requireRecentAuth as honoRecentAuth } from '../../src/adapters/hono.js';
import { requireRecentAuth as nodeRecentAuth, withSession } from '../../src/adapters/node-http.js';
import type { SessionObject } from '../../src/adapters/view.js';
import type { SessionManager } from '../../src/core/manager.js';
import type { AuthLevel } from '../../src/core/session.js';
import type { BindingOptions } from '../../src/security/binding.js';
import type { ApplyResult, SessionDelta, SessionStore, StoredSession } from '../../src/core/types.js';

declare module '../../src/core/session.js' {
  interface SessionData {
    /** Only for the declaration-merging type tests of the adapters. */
    adapterTestCart?: string[];
  }
}

// ---------------------------------------------------------------------------------------------
// A real store with counters, an outage switch and slow writes. Not a mock: every call reaches
// the wrapped store unless the switch says the store is down.

export interface ProbedStore {
  store: SessionStore;
  calls: Record<string, number>;
  deltas: SessionDelta[];
  /** While true every call fails like a store whose server is unreachable. */
  down: boolean;
  /** Delay before writes (create, apply) reach the store, in milliseconds. */
  writeDelayMs: number;
  reads(): number;
  writes(): number;
  total(): number;
  reset(): void;
}

export function probeStore(inner: SessionStore): ProbedStore {
  const probe: ProbedStore = {
    store: undefined as unknown as SessionStore,
    calls: {},
    deltas: [],
    down: false,
    writeDelayMs: 0,
    reads: () => probe.calls.load ?? 0,
    writes: () => (probe.calls.create ?? 0) + (probe.calls.apply ?? 0) + (probe.calls.destroy ?? 0),
    total: () => Object.values(probe.calls).reduce((sum, n) => sum + n, 0),
    reset: () => {
      probe.calls = {};
      probe.deltas = [];
    },
  };
  const enter = async (operation: string, write = false): Promise<void> => {
    probe.calls[operation] = (probe.calls[operation] ?? 0) + 1;
    if (write && probe.writeDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, probe.writeDelayMs));
    if (probe.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  };
  probe.store = {
    name: inner.name,
    capabilities: inner.capabilities,
    load: async (key) => (await enter('load'), inner.load(key)),
    create: async (key: string, session: StoredSession) => (await enter('create', true), inner.create(key, session)),
    apply: async (key: string, delta: SessionDelta): Promise<ApplyResult> => {
      await enter('apply', true);
      probe.deltas.push(delta);
      return inner.apply(key, delta);
    },
    destroy: async (key, grace) => (await enter('destroy'), inner.destroy(key, grace)),
    listByUser: async (userId) => (await enter('listByUser'), inner.listByUser(userId)),
    destroyByUser: async (userId, grace) => (await enter('destroyByUser'), inner.destroyByUser(userId, grace)),
    sweep: async (limit) => (await enter('sweep'), inner.sweep(limit)),
    close: () => inner.close(),
  };
  return probe;
}

// ---------------------------------------------------------------------------------------------
// A gate that in-flight requests wait at, so a test can act while they are mid-request.

export class Latch {
  arrived = 0;
  #release!: () => void;
  readonly #released: Promise<void>;
  readonly #waiters: { count: number; resolve: () => void }[] = [];

  constructor() {
    this.#released = new Promise((resolve) => (this.#release = resolve));
  }

  wait(): Promise<void> {
    this.arrived++;
    for (const waiter of this.#waiters.filter(({ count }) => this.arrived >= count)) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    return this.#released;
  }

  release(): void {
    this.#release();
  }

  /** Resolves once `count` requests wait at the latch; fails after 5 s saying how many came. */
  async arrivals(count: number): Promise<void> {
    if (this.arrived >= count) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.#waiters.push({ count, resolve });
        timer = setTimeout(() => reject(new Error(`only ${this.arrived} of ${count} requests reached the latch`)), 5_000);
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The routes: the four of the examples plus a few that the suite needs. Each framework gets
// the session in its own native way and hands it to the same logic.

type Params = { name?: string; user?: string; add?: string; hold?: string; method?: string; level?: string };
type Outcome = { status: number; json?: unknown; redirect?: string };
type Logic = (s: SessionObject, params: Params, hooks: AppHooks) => Promise<Outcome>;

export interface AppHooks {
  latch: Latch;
}

function itemsOf(s: SessionObject): Record<string, unknown> {
  const items: Record<string, unknown> = {};
  for (const field of s.keys()) if (field.startsWith('item:')) items[field.slice(5)] = s.get(field);
  return items;
}

function increment(s: SessionObject, name: string): number {
  const field = `item:${name}`;
  const count = ((s[field] as number | undefined) ?? 0) + 1;
  s[field] = count;
  return count;
}

/** A route behind the framework's own `requireRecentAuth(seconds, { level })`. */
export interface Guard {
  seconds: number;
  level?: AuthLevel;
}

/** Seconds within which the guarded routes want the session authenticated. */
export const RECENT_AUTH_SECONDS = 300;

export const ROUTES: { method: 'GET' | 'POST'; path: string; session: boolean; guard?: Guard; logic: Logic }[] = [
  {
    method: 'POST',
    path: '/login',
    session: true,
    logic: async (s, { user, method, level }) => {
      if (!user) return { status: 400, json: { error: 'user is required' } };
      await s.regenerate();
      s.userId = user;
      if (method) s.markAuthenticated({ method, level: level as AuthLevel | undefined });
      return { status: 200, json: { user } };
    },
  },
  {
    method: 'POST',
    path: '/authenticate',
    session: true,
    logic: async (s, { method, level }) => {
      s.markAuthenticated({ method: method as string, level: level as AuthLevel | undefined });
      return { status: 200, json: { authentication: s.authentication } };
    },
  },
  {
    method: 'GET',
    path: '/authentication',
    session: true,
    logic: async (s) => ({ status: 200, json: { authentication: s.authentication, authenticatedAt: s.authenticatedAt, keys: s.keys(), data: s.toJSON(), fields: Object.keys(s) } }),
  },
  {
    method: 'GET',
    path: '/sensitive',
    session: true,
    guard: { seconds: RECENT_AUTH_SECONDS },
    logic: async (s) => ({ status: 200, json: { user: s.userId } }),
  },
  {
    method: 'GET',
    path: '/sensitive/aal2',
    session: true,
    guard: { seconds: RECENT_AUTH_SECONDS, level: 'aal2' },
    logic: async (s) => ({ status: 200, json: { user: s.userId, level: s.authentication?.level } }),
  },
  {
    method: 'GET',
    path: '/me',
    session: true,
    logic: async (s) => (s.isNew ? { status: 401, json: { error: 'no session' } } : { status: 200, json: { user: s.userId, items: itemsOf(s) } }),
  },
  {
    method: 'POST',
    path: '/items/:name',
    session: true,
    logic: async (s, { name, hold }, hooks) => {
      const count = increment(s, name as string);
      if (hold) await hooks.latch.wait();
      return { status: 200, json: { name, count } };
    },
  },
  {
    method: 'POST',
    path: '/logout',
    session: true,
    logic: async (s) => {
      await s.destroy();
      return { status: 204 };
    },
  },
  {
    method: 'POST',
    path: '/redirect/:name',
    session: true,
    logic: async (s, { name }) => {
      increment(s, name as string);
      return { status: 303, redirect: '/me' };
    },
  },
  {
    method: 'POST',
    path: '/cart',
    session: true,
    logic: async (s, { add }) => {
      const cart = s.cart as string[] | undefined;
      if (cart) cart.push(add as string);
      else s.cart = [add];
      return { status: 200, json: { cart: s.cart } };
    },
  },
  {
    method: 'GET',
    path: '/cart',
    session: true,
    logic: async (s) => ({ status: 200, json: { cart: (s.cart as string[] | undefined) ?? [] } }),
  },
  { method: 'GET', path: '/health', session: false, logic: async () => ({ status: 200, json: { ok: true } }) },
];

// ---------------------------------------------------------------------------------------------
// Apps and transports.

export interface Reply {
  status: number;
  body: string;
  /** A header value; several values joined with ", " (Set-Cookie: see `setCookies`). */
  header(name: string): string | null;
  setCookies: string[];
  json(): unknown;
}

export interface Transport {
  request(method: string, path: string, headers: Record<string, string>): Promise<Reply>;
  close(): Promise<void>;
}

export interface AppOptions {
  manager: SessionManager;
  trustProxy?: boolean;
  clearSiteData?: boolean;
  binding?: BindingOptions;
  lazy?: boolean;
  hooks: AppHooks;
}

export interface Target {
  name: string;
  /** Whether a request with a valid cookie that never uses the session reads nothing. */
  lazy: boolean;
  start(options: AppOptions): Promise<Transport>;
}

function replyOf(status: number, body: string, get: (name: string) => string | null, setCookies: string[]): Reply {
  return { status, body, header: get, setCookies, json: () => JSON.parse(body) as unknown };
}

async function fetchReply(base: string, method: string, path: string, headers: Record<string, string>): Promise<Reply> {
  const response = await fetch(base + path, { method, headers, redirect: 'manual' });
  const body = await response.text();
  return replyOf(response.status, body, (name) => response.headers.get(name), response.headers.getSetCookie());
}

async function listen(server: Server): Promise<Transport> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    request: (method, path, headers) => fetchReply(base, method, path, headers),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function paramsOf(url: URL, params: Record<string, string | undefined>): Params {
  return { ...Object.fromEntries(url.searchParams), ...params };
}

/**
 * The test app on Express 5, or on Express 4 when given its factory. Express 4 does not catch
 * rejected promises, so handlers pass failures to `next` themselves, as Express 4 apps must.
 */
export function expressApp(options: AppOptions, factory: () => express.Express = express): express.Express {
  const app = factory();
  app.use(expressSession({ manager: options.manager, trustProxy: options.trustProxy, clearSiteData: options.clearSiteData, binding: options.binding, lazy: options.lazy }));
  for (const route of ROUTES) {
    const handle = async (req: ExpressRequest, res: ExpressResponse): Promise<void> => {
      const s = route.session ? (options.lazy ? await req.loadSession() : req.session) : (undefined as unknown as SessionObject);
      const outcome = await route.logic(s, paramsOf(new URL(req.url, 'http://x'), req.params as Record<string, string>), options.hooks);
      if (outcome.redirect) res.redirect(outcome.status, outcome.redirect);
      else if (outcome.json === undefined) res.status(outcome.status).end();
      else res.status(outcome.status).json(outcome.json);
    };
    const handler = (req: ExpressRequest, res: ExpressResponse, next: (error: unknown) => void): void => {
      handle(req, res).catch(next);
    };
    const guards = route.guard ? [expressRecentAuth(route.guard.seconds, levelOf(route.guard))] : [];
    if (route.method === 'GET') app.get(route.path, ...guards, handler);
    else app.post(route.path, ...guards, handler);
  }
  return app;
}

export async function fastifyApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(fastifySession, { manager: options.manager, trustProxy: options.trustProxy, clearSiteData: options.clearSiteData, binding: options.binding, lazy: options.lazy });
  for (const route of ROUTES) {
    app.route({
      method: route.method,
      url: route.path,
      ...(route.guard ? { preHandler: fastifyRecentAuth(route.guard.seconds, levelOf(route.guard)) } : {}),
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const s = route.session ? (options.lazy ? await request.loadSession() : request.session) : (undefined as unknown as SessionObject);
        const outcome = await route.logic(s, paramsOf(new URL(request.url, 'http://x'), request.params as Record<string, string>), options.hooks);
        if (outcome.redirect) return reply.redirect(outcome.redirect, outcome.status);
        reply.code(outcome.status);
        return outcome.json === undefined ? reply.send() : reply.send(outcome.json);
      },
    });
  }
  return app;
}

export function honoApp(options: AppOptions): Hono {
  const app = new Hono();
  app.use(honoSession({ manager: options.manager, trustProxy: options.trustProxy, clearSiteData: options.clearSiteData, binding: options.binding }));
  for (const route of ROUTES) {
    const handler = async (c: Context) => {
      const s = route.session ? await c.get('session') : (undefined as unknown as SessionObject);
      const outcome = await route.logic(s, paramsOf(new URL(c.req.url), c.req.param() as Record<string, string>), options.hooks);
      if (outcome.redirect) return c.redirect(outcome.redirect, outcome.status as 303);
      if (outcome.json === undefined) return c.body(null, outcome.status as 204);
      return c.json(outcome.json, outcome.status as 200);
    };
    if (route.guard) app.on(route.method, route.path, honoRecentAuth(route.guard.seconds, levelOf(route.guard)), handler);
    else app.on(route.method, route.path, handler);
  }
  return app;
}

export function nodeHttpServer(options: AppOptions): Server {
  const guards = new Map(ROUTES.filter((route) => route.guard).map((route) => [route, nodeRecentAuth((route.guard as Guard).seconds, levelOf(route.guard as Guard))]));
  return createServer(
    withSession({ manager: options.manager, trustProxy: options.trustProxy, clearSiteData: options.clearSiteData, binding: options.binding }, async (req, res, session) => {
      const url = new URL(req.url ?? '/', 'http://x');
      for (const route of ROUTES) {
        if (route.method !== req.method) continue;
        const params = matchPath(route.path, url.pathname);
        if (params === null) continue;
        const guard = guards.get(route);
        if (guard && !(await guard(session, res))) return;
        const s = route.session ? await session : (undefined as unknown as SessionObject);
        const outcome = await route.logic(s, paramsOf(url, params), options.hooks);
        if (outcome.redirect) res.writeHead(outcome.status, { location: outcome.redirect }).end();
        else if (outcome.json === undefined) res.writeHead(outcome.status).end();
        else res.writeHead(outcome.status, { 'content-type': 'application/json' }).end(JSON.stringify(outcome.json));
        return;
      }
      res.writeHead(404).end();
    }),
  );
}

function levelOf(guard: Guard): { level?: AuthLevel } {
  return guard.level === undefined ? {} : { level: guard.level };
}

function matchPath(pattern: string, pathname: string): Record<string, string> | null {
  const want = pattern.split('/');
  const got = pathname.split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const part = want[i] as string;
    if (part.startsWith(':')) params[part.slice(1)] = decodeURIComponent(got[i] as string);
    else if (part !== got[i]) return null;
  }
  return params;
}

export const TARGETS: Target[] = [
  { name: 'express over http', lazy: false, start: (options) => listen(createServer(expressApp(options))) },
  { name: 'express (lazy) over http', lazy: true, start: (options) => listen(createServer(expressApp({ ...options, lazy: true }))) },
  { name: 'express 4 over http', lazy: false, start: (options) => listen(createServer(expressApp(options, express4))) },
  {
    name: 'fastify over http',
    lazy: false,
    start: async (options) => {
      const app = await fastifyApp(options);
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      return { request: (method, path, headers) => fetchReply(address, method, path, headers), close: () => app.close() };
    },
  },
  {
    name: 'fastify via inject',
    lazy: false,
    start: async (options) => {
      const app = await fastifyApp(options);
      return {
        async request(method, path, headers) {
          const response = await app.inject({ method: method as 'GET', url: path, headers });
          const raw = response.headers['set-cookie'];
          const cookies = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
          return replyOf(response.statusCode, response.body, (name) => {
            const value = response.headers[name.toLowerCase()];
            return value === undefined ? null : Array.isArray(value) ? value.join(', ') : String(value);
          }, cookies);
        },
        close: () => app.close(),
      };
    },
  },
  {
    name: 'hono over http',
    lazy: true,
    start: async (options) => {
      const app = honoApp(options);
      const server = await new Promise<Server>((resolve) => {
        const started: Server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started)) as Server;
      });
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      return {
        request: (method, path, headers) => fetchReply(base, method, path, headers),
        close: () => new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
      };
    },
  },
  {
    name: 'hono via app.request',
    lazy: true,
    start: async (options) => {
      const app = honoApp(options);
      return {
        async request(method, path, headers) {
          const response = await app.request(path, { method, headers });
          const body = await response.text();
          return replyOf(response.status, body, (name) => response.headers.get(name), response.headers.getSetCookie());
        },
        close: async () => {},
      };
    },
  },
  { name: 'node:http over http', lazy: true, start: (options) => listen(nodeHttpServer(options)) },
];

// ---------------------------------------------------------------------------------------------
// A browser-like client: one cookie jar, and the proxy header when the app trusts a proxy.

export class Client {
  cookie: string | null = null;
  readonly #transport: Transport;
  readonly #cookieName: string;
  readonly #headers: Record<string, string>;

  constructor(transport: Transport, cookieName: string, headers: Record<string, string> = {}) {
    this.#transport = transport;
    this.#cookieName = cookieName;
    this.#headers = headers;
  }

  /** Sends the jar's cookie unless `cookie` overrides it (a raw Cookie header, or null for none). */
  async request(method: string, path: string, cookie?: string | null): Promise<Reply> {
    const header = cookie === undefined ? (this.cookie === null ? null : `${this.#cookieName}=${this.cookie}`) : cookie;
    const reply = await this.#transport.request(method, path, { ...this.#headers, ...(header === null ? {} : { cookie: header }) });
    for (const line of reply.setCookies) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (pair.slice(0, eq).trim() !== this.#cookieName) continue;
      const cleared = attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute));
      this.cookie = cleared ? null : pair.slice(eq + 1).trim();
    }
    return reply;
  }

  /** The Cookie header this client would send. */
  get header(): string | null {
    return this.cookie === null ? null : `${this.#cookieName}=${this.cookie}`;
  }
}
