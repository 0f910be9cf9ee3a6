import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { SessionError } from '../core/errors.js';
import type { SessionStore } from '../core/types.js';
import { PROBLEM_CONTENT_TYPE, problemOf } from '../problem.js';
import { errorKind } from '../telemetry-labels.js';
import { isLoopback, parseAuthority } from './config.js';
import type { AllowedHost } from './config.js';
import { hasBody, pathnameOf, readJsonBody } from './http.js';
import type { Reply, RouteMatch, Router } from './http.js';
import type { ServiceMetrics } from './metrics.js';
import type { ServiceTlsOptions } from './options.js';
import { HttpProblem, problemReply } from './problem.js';

const JSON_TYPE = 'application/json';

export interface RequestHandlerOptions {
  router: Router;
  /** Whether the request names a host the service answers to (see `hostCheck`). */
  hostAllowed: (req: IncomingMessage) => boolean;
  authenticate: (header: string | undefined) => boolean;
  /** Serve `/metrics` without an API key. */
  publicMetrics: boolean;
  metrics: ServiceMetrics;
  /** Throttled: one line per kind and interval. */
  logError: (kind: string, line: string) => void;
  /** The store whose failures are logged (by name). */
  store: SessionStore;
  bodyLimit: number;
  maxDepth: number;
  /** True once the service is closing: each response then ends its connection. */
  closing: () => boolean;
}

/** Step 5 of `createService`: the HTTP server (HTTPS, with mTLS when a client CA is given). */
export function createHttpServer(tls: ServiceTlsOptions | null, listener: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const server: Server = tls
    ? createTlsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, listener)
    : createServer(listener);
  server.requestTimeout = 30_000;
  server.headersTimeout = 20_000;
  return server;
}

export interface HostCheckOptions {
  /** `--allowed-host`: names the service answers to besides its listen address. */
  allowedHosts: readonly AllowedHost[];
  /** True without API keys: then every request is checked, else only when names are configured. */
  always: boolean;
  /** The port a `Host` without one means: 443 over TLS, else 80. */
  tls: boolean;
  /** Where the server listens (`server.address()`), known once it does. */
  address: () => AddressInfo | string | null;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];
const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * The DNS-rebinding guard. A browser page on `attacker.example` that re-points its name at
 * 127.0.0.1 reaches a loopback service with the page's own origin, so CORS and the same-origin
 * policy let it through; what it cannot change is `Host: attacker.example`. So a request is
 * answered only when its host (the `Host` header, or the authority of an absolute-form target,
 * which takes precedence per RFC 9112 §3.2.2) is an allowed name, or the listen address on the
 * listen port: for a loopback address also `localhost`, `127.0.0.1` and `[::1]`; for a wildcard
 * bind every local interface address. A missing or malformed host is refused too. A server on a
 * Unix socket or named pipe (`service.server.listen(path)`) is not checked: no browser reaches it.
 */
export function hostCheck(options: HostCheckOptions): (req: IncomingMessage) => boolean {
  const { allowedHosts, tls } = options;
  if (!options.always && allowedHosts.length === 0) return () => true;
  let own: { key: string; port: number; names: ReadonlySet<string> } | null = null;
  const ownNames = (): { port: number; names: ReadonlySet<string> } | 'pipe' | null => {
    const address = options.address();
    // A Unix socket or named pipe: no browser reaches it, so no page can rebind to it.
    if (typeof address === 'string') return 'pipe';
    if (address === null) return null;
    const key = `${address.address}|${address.port}`;
    if (own?.key !== key) {
      const names = new Set([address.address.toLowerCase()]);
      if (isLoopback(address.address) || WILDCARDS.has(address.address)) for (const name of LOOPBACK_NAMES) names.add(name);
      if (WILDCARDS.has(address.address)) {
        for (const entries of Object.values(networkInterfaces())) for (const entry of entries ?? []) names.add(entry.address.toLowerCase());
      }
      own = { key, port: address.port, names };
    }
    return own;
  };
  return (req) => {
    const bound = ownNames();
    if (bound === 'pipe') return true;
    const absolute = /^https?:\/\/([^/?#]*)/i.exec(req.url ?? '');
    const authority = absolute ? absolute[1] : req.headers.host;
    const asked = authority === undefined ? null : parseAuthority(authority);
    if (asked === null) return false;
    const port = asked.port ?? (tls ? 443 : 80);
    if (allowedHosts.some((allowed) => allowed.host === asked.host && (allowed.port === null || allowed.port === port))) return true;
    return bound !== null && port === bound.port && bound.names.has(asked.host);
  };
}

/**
 * 421 Misdirected Request (RFC 9110 §15.5.20), as a problem document. The connection is closed:
 * the client may retry on another one.
 */
function misdirected(): Reply {
  const { problem } = problemOf(
    new SessionError('ESESS_MISDIRECTED', { message: 'The Host header names neither this service\'s listen address nor an allowed host (--allowed-host)' }),
  );
  return { status: 421, text: JSON.stringify(problem), contentType: PROBLEM_CONTENT_TYPE, headers: { connection: 'close' } };
}

/** The request listener: the Host check, authentication, routing, the JSON body, the reply or its problem, and request metrics. */
export function requestListener(options: RequestHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { router, hostAllowed, authenticate, publicMetrics, metrics, logError, store, bodyLimit, maxDepth, closing } = options;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    let routeLabel = 'unmatched';
    metrics.requestStarted();
    res.once('close', () => {
      metrics.requestEnded();
      metrics.observeRequest(method, routeLabel, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    });
    try {
      // Before anything else: a request for another host learns nothing, not even which routes exist.
      if (!hostAllowed(req)) {
        metrics.countError('ESESS_MISDIRECTED');
        send(res, misdirected());
        return;
      }
      const pathname = pathnameOf(req.url);
      if (pathname === null) throw new HttpProblem('ESESS_NOT_FOUND', { message: 'No such route' });
      let match: RouteMatch = null;
      let malformed: unknown;
      try {
        match = router.match(method, pathname);
      } catch (error) {
        malformed = error;
      }
      if (match !== null && 'route' in match) routeLabel = match.route.path;
      // Before any 400 or 404, so that without a key nothing about /v1 is revealed. The dashboard's
      // page and assets hold no data; the stats it polls and /metrics (the same counters) need a
      // key like /v1, unless the operator made the metrics public for a scraper.
      const guarded = pathname === '/v1' || pathname.startsWith('/v1/') || pathname.startsWith('/admin/api/') || (pathname === '/metrics' && !publicMetrics);
      if (guarded && !authenticate(req.headers.authorization)) {
        throw new HttpProblem('ESESS_UNAUTHORIZED', { message: 'A valid API key is required: Authorization: Bearer <key>', headers: { 'www-authenticate': 'Bearer realm="elastic-session"' } });
      }
      if (malformed !== undefined) throw malformed;
      if (match === null) throw new HttpProblem('ESESS_NOT_FOUND', { message: 'No such route' });
      if ('allowed' in match) {
        throw new HttpProblem('ESESS_METHOD_NOT_ALLOWED', { message: `This path allows ${match.allowed.join(', ')}`, headers: { allow: match.allowed.join(', ') } });
      }
      const { route, params } = match;
      const reply = await route.handler({ req, params, body: () => readJsonBody(req, { limit: bodyLimit, maxDepth }) });
      send(res, reply);
    } catch (error) {
      sendProblem(req, res, error, routeLabel);
    }
  }

  function send(res: ServerResponse, reply: Reply): void {
    if (res.headersSent || res.destroyed) return;
    res.statusCode = reply.status;
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    // Draining: no keep-alive, so the connection ends with this response.
    if (closing()) res.setHeader('connection', 'close');
    for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
    const text = reply.text ?? (reply.body === undefined ? undefined : JSON.stringify(reply.body));
    if (text === undefined) {
      res.end();
      return;
    }
    res.setHeader('content-type', reply.contentType ?? JSON_TYPE);
    res.setHeader('content-length', Buffer.byteLength(text));
    res.end(text);
  }

  function sendProblem(req: IncomingMessage, res: ServerResponse, error: unknown, routeLabel: string): void {
    const { reply, problem, known } = problemReply(error);
    if (!known) {
      // Never the request path: it carries session IDs.
      logError(`internal:${routeLabel}`, `internal error on ${req.method ?? '?'} ${routeLabel}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    } else if (problem.status === 503 && error instanceof SessionError) {
      const cause = error.cause instanceof Error ? `: ${errorKind(error.cause)} ${error.cause.message}` : '';
      logError(`store:${error.code}`, `store ${store.name} ${error.code}${cause}`);
    }
    metrics.countError(problem.code);
    // A body we did not read to the end (too large, wrong type, unauthorized) leaves bytes on the connection: close it.
    if (hasBody(req) && !req.complete) reply.headers = { ...reply.headers, connection: 'close' };
    send(res, reply);
  }

  return (req, res) => void handle(req, res);
}
