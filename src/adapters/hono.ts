/**
 * Hono middleware, on web-standard Request/Response only (no Node-only API here).
 *
 * @example
 * import { Hono } from 'hono';
 * import { session } from 'elastic-session/hono';
 *
 * const app = new Hono();
 * app.use(session({ store, secrets: [env.SESSION_SECRET] }));
 * app.post('/visit', async (c) => {
 *   const s = await c.get('session'); // loaded on first use: routes that never ask read nothing
 *   s.visits = (s.visits ?? 0) + 1;
 *   return c.json({ visits: s.visits }); // the write completes before the response is returned
 * });
 *
 * @example
 * // Typed fields, by declaration merging:
 * declare module 'elastic-session/hono' {
 *   interface SessionData { visits: number }
 * }
 */
import type { MiddlewareHandler } from 'hono';
import { isSessionError, SessionError } from '../core/errors.js';
import type { SessionData } from '../core/session.js';
import { recentAuthCheck } from './reauth.js';
import type { RecentAuthOptions } from './reauth.js';
import { errorResponse } from './request-session.js';
import { SessionRuntime } from './runtime.js';
import type { AdapterOptions } from './runtime.js';
import type { LazySession } from './view.js';

export type { LazySession, SessionObject, SessionMethods } from './view.js';
export type { RecentAuthOptions } from './reauth.js';
export type { Authentication, AuthenticationInput, AuthLevel, SessionData } from '../core/session.js';

export type HonoSessionOptions<Data extends SessionData = SessionData> = AdapterOptions<Data>;

declare module 'hono' {
  interface ContextVariableMap {
    /** This request's session, loaded on first `await`. */
    session: LazySession<SessionData>;
  }
}

/**
 * The session middleware. A `SessionError` (store down: ESESS_STORE_UNAVAILABLE) reaches
 * `app.onError` as itself; without an `onError`, Hono answers with the error's status as
 * `application/problem+json` (503 when the store is down).
 */
export function session<Data extends SessionData = SessionData>(options: HonoSessionOptions<Data>): MiddlewareHandler {
  const runtime = new SessionRuntime<Data>(options);
  return async function elasticSession(c, next) {
    const state = runtime.begin(c.req.header('cookie'), {
      isSecure: () => runtime.isSecure(arrivedOverTls(c.env, c.req.url), c.req.header('x-forwarded-proto')),
      requireLoad: true,
      mapError: withResponse,
      client: () => ({ userAgent: c.req.header('user-agent'), ip: runtime.clientIp(c.req.header('x-forwarded-for'), peerAddress(c.env)) }),
    });
    c.set('session', state.lazy as unknown as LazySession<SessionData>);
    await next();
    const cookie = await state.commit();
    if (cookie !== null) {
      c.header('set-cookie', cookie, { append: true });
      for (const [header, value] of state.responseHeaders()) c.header(header, value);
    }
  };
}

/**
 * Middleware for sensitive routes: unless the session was authenticated (`markAuthenticated()`)
 * at most `seconds` ago, at `level` or higher when given, it answers 401 with an
 * `application/problem+json` body whose code is ESESS_REAUTH_REQUIRED, and the route never runs.
 * Use it after `session()`.
 *
 * @example
 * app.post('/account/email', requireRecentAuth(300), changeEmail);
 * app.post('/payouts', requireRecentAuth(120, { level: 'aal2' }), payout);
 */
export function requireRecentAuth(seconds: number, options?: RecentAuthOptions): MiddlewareHandler {
  const check = recentAuthCheck(seconds, options);
  return async function recentAuth(c, next) {
    const lazy = c.get('session') as LazySession<SessionData> | undefined;
    if (lazy === undefined) throw withResponse(new SessionError('ESESS_USAGE', { message: 'requireRecentAuth() runs after the session() middleware: use session() first' }));
    const refusal = check(await lazy);
    if (refusal !== null) {
      const problem = errorResponse(refusal);
      return new Response(problem.body, { status: problem.status, headers: problem.headers });
    }
    await next();
    return undefined;
  };
}

/**
 * Gives a session error the `getResponse()` Hono's default error handler looks for, so an app
 * without `onError` answers with the error's status; the app's own `onError` still receives the
 * `SessionError` with its code.
 */
function withResponse(error: unknown): unknown {
  if (isSessionError(error) && !('getResponse' in error)) {
    const problem = errorResponse(error);
    Object.defineProperty(error, 'getResponse', {
      configurable: true,
      value: () => new Response(problem.body, { status: problem.status, headers: problem.headers }),
    });
  }
  return error;
}

/** The peer's address on Node (@hono/node-server); elsewhere unknown (only a trusted proxy's X-Forwarded-For then). */
function peerAddress(env: unknown): string | undefined {
  const address = (env as { incoming?: { socket?: { remoteAddress?: unknown } } } | undefined)?.incoming?.socket?.remoteAddress;
  return typeof address === 'string' ? address : undefined;
}

/**
 * On Node (@hono/node-server) the socket says whether TLS reached us: the URL scheme there can
 * be chosen by the client with an absolute-form request target. Elsewhere the runtime's URL is
 * authoritative.
 */
function arrivedOverTls(env: unknown, url: string): boolean {
  const incoming = (env as { incoming?: { socket?: { encrypted?: unknown } } } | undefined)?.incoming;
  if (incoming?.socket) return incoming.socket.encrypted === true;
  return url.startsWith('https:');
}
