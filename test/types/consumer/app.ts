// A typed consumer of every entry point but the NATS store (nats.ts), resolved through the
// package's own exports (dist/). Lines marked @ts-expect-error must fail to compile: they pin what
// the types refuse.
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { createServer } from 'node:http';
import { CHANNELS, createSessionManager, isSessionError, SessionError } from 'elastic-session';
import * as changelog from 'elastic-session/changelog';
import type { ErrorCode, SessionEvent } from 'elastic-session';
import { session as expressSession } from 'elastic-session/express';
import { fastifySession } from 'elastic-session/fastify';
import { session as honoSession } from 'elastic-session/hono';
import { sendError, withSession } from 'elastic-session/node-http';
import * as kit from 'elastic-session/kit';
import { createSessionMetrics } from 'elastic-session/metrics';
import { instrumentOpenTelemetry } from 'elastic-session/otel';
import * as security from 'elastic-session/security';
import { createService } from 'elastic-session/service';
import type { Service } from 'elastic-session/service';
import { encryptedStore } from 'elastic-session/stores/encrypted';
import * as memcached from 'elastic-session/stores/memcached';
import { memoryStore } from 'elastic-session/stores/memory';
import { nearCache } from 'elastic-session/stores/near-cache';
import * as mysql from 'elastic-session/stores/mysql';
import * as postgres from 'elastic-session/stores/postgres';
import { redisStore } from 'elastic-session/stores/redis';
import { sqliteStore } from 'elastic-session/stores/sqlite';
import { runStoreConformance } from 'elastic-session/testing';
import * as tokens from 'elastic-session/tokens';

declare module 'elastic-session' {
  interface SessionData {
    cart: string[];
    theme: 'light' | 'dark';
  }
}

const secrets = [process.env.SESSION_SECRET ?? ''];
const sessions = createSessionManager({ store: memoryStore(), secrets });
const session = sessions.create();
session.set('cart', ['apple']);
const cart: string[] | undefined = session.get('cart');
// @ts-expect-error a theme is 'light' or 'dark'
session.set('theme', 'blue');
// @ts-expect-error a cart holds strings
session.set('cart', [1]);

const app = express();
app.use(expressSession({ store: sqliteStore({ path: ':memory:' }), secrets, insecureLocalhostDevelopment: true }));
// req.session is typed through Express's global namespace, which the repository's own type check
// (that includes this file) also gets from src/: the typed fields are checked on withSession below.
app.get('/', (req, res) => res.json({ user: req.session.userId }));
app.use((error: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => (res.headersSent ? next(error) : sendError(res, error)));

const fastify = Fastify();
void fastify.register(fastifySession, { store: memoryStore(), secrets, insecureLocalhostDevelopment: true });

const hono = new Hono();
hono.use(honoSession({ store: memoryStore(), secrets }));

createServer(withSession({ store: memoryStore(), secrets }, async (_req, res, lazy) => {
  const s = await lazy;
  const items: string[] | undefined = s.cart;
  s.cart = [...(items ?? []), 'pear'];
  // @ts-expect-error the merged SessionData types the adapters' session objects too
  s.theme = 'blue';
  res.end();
}));

const code: ErrorCode = 'ESESS_STORE_UNAVAILABLE';
const problem = new SessionError(code);
const retriable: boolean = isSessionError(problem, 'ESESS_STORE_UNAVAILABLE') && problem.retriable;
const onEvent = (event: SessionEvent): string => `${CHANNELS.session} ${event.type}`;
const service: Promise<Service> = createService({ store: 'memory:', port: 0 });

export const used = [
  cart, retriable, onEvent, service, app, kit, createSessionMetrics, instrumentOpenTelemetry, security, encryptedStore,
  memcached, mysql, postgres, redisStore, runStoreConformance, tokens, changelog, nearCache(memoryStore(), { maxEntries: 10 }),
];
