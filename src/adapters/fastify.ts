/**
 * Fastify plugin (Fastify 5): loads in `onRequest`, saves in `onSend`, before the reply leaves.
 *
 * @example
 * import Fastify from 'fastify';
 * import { fastifySession } from 'elastic-session/fastify';
 *
 * const app = Fastify();
 * await app.register(fastifySession, { store, secrets: [process.env.SESSION_SECRET] });
 * app.post('/visit', async (request) => {
 *   request.session.visits = (request.session.visits ?? 0) + 1; // or .get()/.set()
 *   return { visits: request.session.visits };
 * });
 *
 * @example
 * // Typed fields, by declaration merging:
 * declare module 'elastic-session/fastify' {
 *   interface SessionData { visits: number }
 * }
 */
import { Server as TlsServer } from 'node:tls';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { configError } from '../core/errors.js';
import type { SessionData } from '../core/session.js';
import { isSecureRequest } from './node.js';
import { recentAuthCheck } from './reauth.js';
import type { RecentAuthOptions } from './reauth.js';
import { errorResponse } from './request-session.js';
import type { RequestSession } from './request-session.js';
import { SessionRuntime } from './runtime.js';
import type { AdapterOptions } from './runtime.js';
import type { SessionObject } from './view.js';

export type { SessionObject, SessionMethods } from './view.js';
export type { RecentAuthOptions } from './reauth.js';
export type { Authentication, AuthenticationInput, AuthLevel, SessionData } from '../core/session.js';

export type FastifySessionOptions<Data extends SessionData = SessionData> = AdapterOptions<Data> & {
  /**
   * `false` (default): `onRequest` loads the session when the request carries a valid session
   * cookie (one store read), so `request.session` works synchronously; requests without one
   * cost no store call. `true`: nothing is read until a handler calls
   * `await request.loadSession()`.
   * @default false
   */
  lazy?: boolean;
};

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * This request's session: fields as properties or through `get()`/`set()`, plus
     * `regenerate()`, `destroy()`, `save()` and `touch()` returning promises.
     */
    session: SessionObject<SessionData>;
    /** Loads the session (required before `request.session` in `lazy` mode; harmless otherwise). */
    loadSession(): Promise<SessionObject<SessionData>>;
  }
}

const states = new WeakMap<FastifyRequest, RequestSession<SessionData>>();

function stateOf(request: FastifyRequest): RequestSession<SessionData> {
  const state = states.get(request);
  if (!state) throw configError('session', 'request.session is used before the elastic-session onRequest hook ran; register the plugin before hooks that use the session');
  return state;
}

const plugin: FastifyPluginAsync<FastifySessionOptions> = async (fastify: FastifyInstance, options: FastifySessionOptions) => {
  const { lazy = false, ...adapterOptions } = options;
  if (typeof lazy !== 'boolean') throw configError('lazy', 'must be a boolean');
  const runtime = new SessionRuntime<SessionData>(adapterOptions as AdapterOptions);
  // Fastify knows at startup whether it speaks TLS: fail then, not on the first login.
  if (runtime.requireSecureTransport && !runtime.trustProxy && !(fastify.server instanceof TlsServer)) {
    throw configError(
      'trustProxy',
      'the session cookie is Secure but this Fastify server speaks plain http, so browsers would drop it. ' +
        'Serve https; behind a TLS-terminating proxy that sets X-Forwarded-Proto, set trustProxy: true; ' +
        'for local development over http, set insecureLocalhostDevelopment: true',
    );
  }

  fastify.decorateRequest('session', {
    getter(this: FastifyRequest) {
      return stateOf(this).view;
    },
  });
  fastify.decorateRequest('loadSession', function loadSession(this: FastifyRequest) {
    return stateOf(this).load();
  });

  fastify.addHook('onRequest', async (request: FastifyRequest) => {
    if (states.has(request)) return;
    const state = runtime.begin(request.headers.cookie, {
      isSecure: () => isSecureRequest(runtime, request.raw),
      requireLoad: lazy,
      // Our trustProxy decides, as for X-Forwarded-Proto: not Fastify's own, which request.ip follows.
      client: () => ({ userAgent: request.headers['user-agent'], ip: runtime.clientIp(request.headers['x-forwarded-for'], request.raw.socket?.remoteAddress ?? request.ip) }),
    });
    states.set(request, state);
    // Store errors go to Fastify's error handler: 503 from the error's status by default.
    if (!lazy && state.hasCookie) await state.load();
  });

  fastify.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const state = states.get(request);
    if (!state) return payload;
    // Runs once; an error here goes to the error handler, whose reply passes through again.
    const cookie = await state.commit();
    if (cookie !== null) {
      reply.header('set-cookie', cookie);
      for (const [header, value] of state.responseHeaders()) reply.header(header, value);
    }
    return payload;
  });
};

/** The plugin; register it with `app.register(fastifySession, options)`. */
export const fastifySession = fp(plugin, { fastify: '5.x', name: 'elastic-session' });

/**
 * A `preHandler` for sensitive routes: unless the session was authenticated
 * (`markAuthenticated()`) at most `seconds` ago, at `level` or higher when given, it answers 401
 * with an `application/problem+json` body whose code is ESESS_REAUTH_REQUIRED, and the handler
 * never runs.
 *
 * @example
 * app.post('/account/email', { preHandler: requireRecentAuth(300) }, changeEmail);
 * app.post('/payouts', { preHandler: requireRecentAuth(120, { level: 'aal2' }) }, payout);
 */
export function requireRecentAuth(seconds: number, options?: RecentAuthOptions): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const check = recentAuthCheck(seconds, options);
  return async function recentAuth(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const refusal = check(await stateOf(request).load());
    if (refusal === null) return undefined;
    const problem = errorResponse(refusal);
    // An async hook that answers early sends and returns the reply. A Buffer keeps the content
    // type as the other adapters send it (Fastify appends a charset to JSON types given a string).
    return reply.code(problem.status).headers(problem.headers).send(Buffer.from(problem.body));
  };
}
