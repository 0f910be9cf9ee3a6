/**
 * Express middleware (Express 4 and 5).
 *
 * @example
 * import express from 'express';
 * import { session } from 'elastic-session/express';
 *
 * const app = express();
 * app.use(session({ store, secrets: [process.env.SESSION_SECRET] }));
 * app.post('/cart/:item', (req, res) => {
 *   req.session.cart ??= [];
 *   req.session.cart.push(req.params.item); // in-place changes are saved too
 *   res.redirect(303, '/cart');              // sent only after the write is in the store
 * });
 *
 * @example
 * // Typed fields, by declaration merging:
 * declare module 'elastic-session/express' {
 *   interface SessionData { cart: string[] }
 * }
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { SessionError } from '../core/errors.js';
import type { SessionData } from '../core/session.js';
import { clientOf, gateResponse, isSecureRequest } from './node.js';
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

export type ExpressSessionOptions<Data extends SessionData = SessionData> = AdapterOptions<Data> & {
  /**
   * `false` (default): the middleware loads the session before your handlers run when the
   * request carries a valid session cookie (one store read), so `req.session.field` works
   * synchronously, as with express-session; requests without one cost no store call.
   * `true`: nothing is read until a handler calls `await req.loadSession()`, so routes that
   * never use the session never touch the store, cookie or not.
   * @default false
   */
  lazy?: boolean;
};

declare global {
  // Express types its request through this global namespace; merging into it is the only way.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /**
       * This request's session: data fields as properties, plus `regenerate()`, `destroy()`,
       * `save()` and `touch()` returning promises. Saved before the response headers leave.
       */
      session: SessionObject<SessionData>;
      /** Loads the session (required before `req.session` in `lazy` mode; harmless otherwise). */
      loadSession(): Promise<SessionObject<SessionData>>;
    }
  }
}

const states = new WeakMap<object, RequestSession<SessionData>>();

/**
 * The session middleware. Errors (store down: `SessionError` ESESS_STORE_UNAVAILABLE, 503) go
 * to Express's error handling, both when loading and when saving, so an error middleware can
 * render them; without one Express answers with the error's status.
 */
export function session<Data extends SessionData = SessionData>(options: ExpressSessionOptions<Data>): RequestHandler {
  const { lazy = false, ...adapterOptions } = options;
  if (typeof lazy !== 'boolean') throw new TypeError('Invalid option "lazy": must be a boolean');
  const runtime = new SessionRuntime<Data>(adapterOptions as AdapterOptions<Data>);

  return function elasticSession(req: Request, res: Response, next: NextFunction): void {
    if (states.has(req)) {
      next();
      return;
    }
    const state = runtime.begin(req.headers.cookie, { isSecure: () => isSecureRequest(runtime, req), requireLoad: lazy, client: () => clientOf(runtime, req) }) as unknown as RequestSession<SessionData>;
    states.set(req, state);
    req.session = state.view;
    req.loadSession = () => state.load();
    // A failed save is reported through the same next(): Express goes on to the error
    // middleware after the route, exactly as if the handler had called next(error).
    gateResponse(res, state, (error) => next(error));
    if (!lazy && state.hasCookie) {
      state.load().then(() => next(), next);
      return;
    }
    next();
  };
}

/**
 * Guards a sensitive route: unless the session was authenticated (`markAuthenticated()`) at most
 * `seconds` ago, at `level` or higher when given, it answers 401 with an
 * `application/problem+json` body whose code is ESESS_REAUTH_REQUIRED, and the route never runs.
 * Register it after `session()`.
 *
 * @example
 * app.post('/account/email', requireRecentAuth(300), changeEmail);
 * app.post('/payouts', requireRecentAuth(120, { level: 'aal2' }), payout);
 */
export function requireRecentAuth(seconds: number, options?: RecentAuthOptions): RequestHandler {
  const check = recentAuthCheck(seconds, options);
  return function recentAuth(req: Request, res: Response, next: NextFunction): void {
    const state = states.get(req);
    if (!state) {
      next(new SessionError('ESESS_USAGE', { message: 'requireRecentAuth() runs after the session() middleware: register session() first' }));
      return;
    }
    state.load().then((view) => {
      const refusal = check(view);
      if (refusal === null) {
        next();
        return;
      }
      const problem = errorResponse(refusal);
      res.writeHead(problem.status, problem.headers).end(problem.body);
    }, next);
  };
}
