/**
 * Sessions for plain `node:http` servers: the session is saved before the response headers
 * leave, whichever way the handler sends them.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { withSession } from 'elastic-session/node-http';
 *
 * createServer(withSession({ store, secrets: [secret] }, async (req, res, session) => {
 *   const s = await session; // loaded on first use; a request that never awaits it reads nothing
 *   s.visits = (s.visits ?? 0) + 1;
 *   res.end(`visit ${s.visits}`); // sent only once the write is in the store
 * })).listen(3000);
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionData } from '../core/session.js';
import { clientOf, gateResponse, isSecureRequest, sendError } from './node.js';
import { recentAuthCheck } from './reauth.js';
import type { RecentAuthOptions } from './reauth.js';
import { errorResponse } from './request-session.js';
import { SessionRuntime } from './runtime.js';
import type { AdapterOptions } from './runtime.js';
import type { LazySession, SessionObject } from './view.js';

export { clientOf, gateResponse, isSecureRequest, sendError } from './node.js';
export type { ResponseGate } from './node.js';
export type { LazySession, SessionObject, SessionMethods } from './view.js';
export type { RecentAuthOptions } from './reauth.js';
export type { Authentication, AuthenticationInput, AuthLevel, SessionData } from '../core/session.js';

export type NodeSessionOptions<Data extends SessionData = SessionData> = AdapterOptions<Data> & {
  /**
   * Renders an error the handler or the session threw before the response was sent.
   * By default a `SessionError` becomes an `application/problem+json` response with its status
   * (503 when the store is down), and any other error a bare 500 that is also logged to stderr.
   */
  onError?: (error: unknown, req: IncomingMessage, res: ServerResponse) => void;
};

export type NodeSessionHandler<Data extends SessionData = SessionData> = (
  req: IncomingMessage,
  res: ServerResponse,
  session: LazySession<Data>,
) => unknown;

/**
 * Wraps a `node:http` request handler. The handler gets the session lazily as its third
 * argument; the wrapper saves it before the response headers are written.
 */
export function withSession<Data extends SessionData = SessionData>(
  options: NodeSessionOptions<Data>,
  handler: NodeSessionHandler<Data>,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { onError, ...adapterOptions } = options;
  const runtime = new SessionRuntime<Data>(adapterOptions as AdapterOptions<Data>);
  if (typeof handler !== 'function') throw new TypeError('withSession(options, handler): handler must be a function');
  const fail = (error: unknown, req: IncomingMessage, res: ServerResponse): void => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (onError) onError(error, req, res);
    else sendError(res, error);
  };
  return (req, res) => {
    const state = runtime.begin(req.headers.cookie, { isSecure: () => isSecureRequest(runtime, req), requireLoad: true, client: () => clientOf(runtime, req) });
    const gate = gateResponse(res, state, (error) => fail(error, req, res));
    Promise.resolve()
      .then(() => handler(req, res, state.lazy))
      .catch((error: unknown) => {
        gate.abort();
        fail(error, req, res);
      });
  };
}

/**
 * A guard for sensitive routes. The returned function resolves true when the session was
 * authenticated (`markAuthenticated()`) at most `seconds` ago, at `level` or higher when given;
 * otherwise it answers 401 with an `application/problem+json` body whose code is
 * ESESS_REAUTH_REQUIRED and resolves false, and the handler should return.
 *
 * @example
 * const recent = requireRecentAuth(300, { level: 'aal2' });
 * createServer(withSession(options, async (req, res, session) => {
 *   if (req.url === '/payouts' && !(await recent(session, res))) return;
 *   // ...
 * }));
 */
export function requireRecentAuth(
  seconds: number,
  options?: RecentAuthOptions,
): <Data extends SessionData>(session: LazySession<Data> | SessionObject<Data>, res: ServerResponse) => Promise<boolean> {
  const check = recentAuthCheck(seconds, options);
  return async (session, res) => {
    const refusal = check(await session);
    if (refusal === null) return true;
    const problem = errorResponse(refusal);
    res.writeHead(problem.status, problem.headers).end(problem.body);
    return false;
  };
}
