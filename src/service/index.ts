import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { SessionError } from '../core/errors.js';
import type { DataLimits } from '../core/json.js';
import { MAX_TIMEOUT_SECONDS, SessionManager } from '../core/manager.js';
import type { Clock, SessionStore } from '../core/types.js';
import { createAuthenticator } from './auth.js';
import { checkApiKeys, checkExposure, checkHost, checkPort, checkPositiveInteger, checkSecrets, checkTimeout, DEFAULT_SERVICE_CONFIG, isLoopback, optionError } from './config.js';
import { hasBody, pathnameOf, readJsonBody, Router } from './http.js';
import type { Reply, Route, RouteMatch } from './http.js';
import { stderrLogger, throttled } from './log.js';
import type { ServiceLogger } from './log.js';
import { createMetrics, errorKind } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { HttpProblem, internalProblem, problemOf } from './problem.js';
import type { Problem } from './problem.js';
import { sessionRoutes } from './routes.js';
import { adminRoutes } from './admin/index.js';
import { encryptedStore, parseEncryptionKeys } from '../stores/encrypted.js';
import type { TokenIssuer, TokenIssuerOptions } from '../tokens/issuer.js';
import { tokenKeyFromPem, tokenKeyFromSecret } from '../tokens/keys.js';
import type { TokenKeyInput } from '../tokens/keys.js';
import { tokenRoutes } from '../tokens/routes.js';
import { parseHashKey, resolveSecrets, serviceHashKey } from './secret.js';
import { openStore, parseStoreUrl, redactStoreUrl } from './stores.js';
import type { StoreSpec } from './stores.js';
import { packageVersion } from './version.js';

export { DEFAULT_SERVICE_CONFIG } from './config.js';
export { createMetrics } from './metrics.js';
export type { ServiceMetrics } from './metrics.js';
export type { Problem } from './problem.js';
export type { Route, Reply, Method } from './http.js';
export type { SessionResource, UserSessionResource } from './routes.js';
export { toResource } from './routes.js';
export { openApiDocument } from './openapi.js';
export { SECRET_FILE, storeHashKey } from './secret.js';
export { openStoreUrl, parseStoreUrl } from './stores.js';
export type { StoreSpec } from './stores.js';
export { silentLogger, stderrLogger } from './log.js';
export type { ServiceLogger } from './log.js';

export interface ServiceOptions {
  /**
   * A store URL (`sqlite:PATH`, `memory:`) that the service opens and closes, or a store
   * instance that the caller owns (the service does not close it).
   * @default 'sqlite:./data/sessions.db'
   */
  store?: string | SessionStore;
  /**
   * At least 32 bytes; several for a rotation, newest first. The first derives the key that
   * signs tokens, every one listed derives a key that verifies them. Without `hashKey` the only
   * secret also keys the store-key hash: then it must stay the same across restarts and
   * instances, and changing it ends every session. When absent it is read from (or generated
   * into) `elastic-session.secret` next to the SQLite file, or made up for this process only for
   * other stores.
   */
  secret?: string | readonly string[];
  /**
   * The key of the store-key hash (HMAC-SHA-256), 32 bytes in base64url: set it once and never
   * change it, so the secret can rotate without ending sessions. Required with several secrets.
   * @default derived from the only secret (what `elastic-session hash-key` prints)
   */
  hashKey?: string;
  /** Bearer keys accepted on `/v1` routes. Without any, the service listens on loopback only. */
  apiKeys?: readonly string[];
  /** @default '127.0.0.1', or '0.0.0.0' when API keys are configured */
  host?: string;
  /** 0 picks a free port. @default 8080 */
  port?: number;
  /** Seconds. @default 1800 */
  idleTimeout?: number;
  /** Seconds. @default 86400 */
  absoluteTimeout?: number;
  /** Largest request body in bytes. @default 262144 */
  bodyLimit?: number;
  limits?: Partial<DataLimits>;
  /** Sweep interval for stores without native expiry, in milliseconds; 0 disables. @default 60000 */
  sweepIntervalMs?: number;
  /** How long `close()` waits for in-flight requests, in milliseconds. @default 10000 */
  shutdownTimeoutMs?: number;
  /** Also export Node.js process metrics. @default false */
  defaultMetrics?: boolean;
  /** @default stderrLogger */
  log?: ServiceLogger;
  clock?: Clock;
  /** Base for a relative SQLite path. @default process.cwd() */
  cwd?: string;
  /**
   * Encrypt session contents at rest (AES-256-GCM per field): `kid:KEY` strings, KEY being 32
   * bytes in base64url, newest first (the first encrypts, all decrypt). See docs/security.md.
   */
  encryptionKeys?: readonly string[];
  /** Serve HTTPS (PEM texts); with `clientCa`, require client certificates signed by it (mTLS). */
  tls?: ServiceTlsOptions;
  /** Token mode (`/v1/sessions/{id}/tokens`, `/v1/tokens/*`). Signed with `tokens.key`, or an Ed25519 key derived from the secret. */
  tokens?: ServiceTokenOptions;
}

export interface ServiceTlsOptions {
  /** Certificate chain, PEM. */
  cert: string | Buffer;
  /** Private key, PEM. */
  key: string | Buffer;
  /** CA certificates (PEM) that client certificates must chain to; requires a client certificate on every connection. */
  clientCa?: string | Buffer;
}

export interface ServiceTokenOptions {
  /** @default 'elastic-session' */
  issuer?: string;
  /** @default 'elastic-session' */
  audience?: string | string[];
  /** Seconds. @default 300 */
  accessTtl?: number;
  /** Seconds. @default 86400 */
  refreshTtl?: number;
  /** Seconds. @default 30 */
  leeway?: number;
  /**
   * The signing key: a PEM private key, Ed25519 (tokens signed with EdDSA) or P-256 (ES256).
   * Replaces the key derived from the secret, which then only verifies tokens it signed before.
   * @default an Ed25519 key derived from the secret
   */
  key?: string | Buffer;
}

export interface ListenAddress {
  host: string;
  port: number;
  url: string;
}

export interface Service {
  readonly server: Server;
  readonly manager: SessionManager;
  readonly store: SessionStore;
  readonly metrics: Registry;
  /** The route table (what `/openapi.json` describes). */
  readonly routes: readonly Route[];
  /** Starts listening; resolves with the bound address. */
  listen(): Promise<ListenAddress>;
  /** Stops accepting, drains in-flight requests, stops sweeping and closes a store the service opened. Idempotent. */
  close(): Promise<void>;
  /** Sweeps until a batch comes back short; resolves with how many records were removed. */
  sweep(): Promise<number>;
}

const JSON_TYPE = 'application/json';
const PROBLEM_TYPE = 'application/problem+json';

/**
 * The session service: a stateless HTTP JSON API over a `SessionManager`.
 *
 * @example
 * const service = await createService({ store: 'memory:', port: 0 });
 * const { url } = await service.listen();
 * // ... fetch(`${url}/v1/sessions`, { method: 'POST' }) ...
 * await service.close();
 */
export async function createService(options: ServiceOptions = {}): Promise<Service> {
  const log = options.log ?? stderrLogger;
  const apiKeys = checkApiKeys(options.apiKeys ?? [], 'apiKeys');
  const host = checkHost(options.host ?? (apiKeys.length > 0 ? DEFAULT_SERVICE_CONFIG.hostWithApiKeys : DEFAULT_SERVICE_CONFIG.host), 'host');
  checkExposure(host, apiKeys, 'host', 'apiKeys');
  const port = checkPort(options.port ?? DEFAULT_SERVICE_CONFIG.port, 'port');
  const idleTimeout = checkTimeout(options.idleTimeout ?? DEFAULT_SERVICE_CONFIG.idleTimeout, 'idleTimeout');
  const absoluteTimeout = checkTimeout(options.absoluteTimeout ?? DEFAULT_SERVICE_CONFIG.absoluteTimeout, 'absoluteTimeout');
  const bodyLimit = checkPositiveInteger(options.bodyLimit ?? DEFAULT_SERVICE_CONFIG.bodyLimit, 'bodyLimit');
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SERVICE_CONFIG.sweepIntervalMs;
  if (sweepIntervalMs !== 0) checkPositiveInteger(sweepIntervalMs, 'sweepIntervalMs');
  if (options.secret !== undefined) checkSecrets(options.secret, 'secret');
  const hashKey = options.hashKey === undefined ? undefined : parseHashKey(options.hashKey, 'hashKey');
  const encryptionKeys = options.encryptionKeys === undefined ? null : parseEncryptionKeys(options.encryptionKeys, 'encryptionKeys');
  const tls = options.tls === undefined ? null : checkTls(options.tls);
  const tokenKey = options.tokens?.key === undefined ? null : tokenKeyFromPem(options.tokens.key, 'tokens.key');
  const shutdownTimeoutMs = checkPositiveInteger(options.shutdownTimeoutMs ?? DEFAULT_SERVICE_CONFIG.shutdownTimeoutMs, 'shutdownTimeoutMs');

  const given = options.store ?? DEFAULT_SERVICE_CONFIG.store;
  const spec: StoreSpec | null = typeof given === 'string' ? parseStoreUrl(given, 'store', options.cwd) : null;
  const opened = spec ? await openStore(spec) : (given as SessionStore);
  const ownsStore = spec !== null;
  const store = encryptionKeys ? encryptedStore(opened, { keys: encryptionKeys, production: false }) : opened;

  let manager: SessionManager;
  let tokens: TokenIssuer | null = null;
  let maxAbsoluteTimeout = MAX_TIMEOUT_SECONDS;
  try {
    const lifetimeMs = (await opened.maxLifetimeMs?.()) ?? null;
    if (lifetimeMs !== null) maxAbsoluteTimeout = Math.min(maxAbsoluteTimeout, Math.floor(lifetimeMs / 1000));
    if (absoluteTimeout > maxAbsoluteTimeout) {
      throw optionError('absoluteTimeout', `is longer than the ${opened.name} store keeps any record (${maxAbsoluteTimeout} s); shorten it or raise the store's limit`);
    }
    const secretOption = 'the secret (--secret, ELASTIC_SESSION_SECRET)';
    const given = options.secret === undefined ? undefined : typeof options.secret === 'string' ? [options.secret] : options.secret;
    const resolved = await resolveSecrets({ given, option: secretOption, spec, create: true, log });
    if (resolved === null) throw new SessionError('ESESS_CONFIG', { message: 'the secret could not be resolved' });
    const { secrets } = resolved;
    const storeKeyHash = serviceHashKey(secrets, { hashKey, hashKeyOption: 'hashKey (--hash-key, ELASTIC_SESSION_HASH_KEY)', secretOption });
    manager = new SessionManager({
      store,
      secrets,
      hashKey: storeKeyHash,
      idleTimeout,
      absoluteTimeout,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
    });
    tokens = await openTokenIssuer(manager, { secrets, hashKey: storeKeyHash, signingKey: tokenKey }, options.tokens ?? {}, options.clock, log);
  } catch (error) {
    if (ownsStore) await store.close().catch(() => {});
    throw error;
  }
  if (spec?.scheme === 'memory' || store.name === 'memory') {
    log.warn('the memory store is volatile: sessions are lost on restart and not shared between instances; use --store sqlite:PATH in production');
  }

  // Usage is the backend's: the encryption layer holds nothing of its own.
  const metrics = createMetrics({ defaultMetrics: options.defaultMetrics === true, stores: [opened] });
  const authenticate = createAuthenticator(apiKeys);
  const logError = throttled(log);
  const version = packageVersion();
  const admin = adminRoutes({ registry: metrics.registry, store, version });
  let openApiText: string | undefined;
  const maxDepth = manager.limits.maxDepth + 2;
  let closing = false;

  const routes: Route[] = [
    ...sessionRoutes(manager, maxAbsoluteTimeout),
    ...tokenRoutes(tokens),
    {
      method: 'GET',
      path: '/healthz',
      operationId: 'health',
      async handler() {
        if (closing) throw new SessionError('ESESS_STORE_CLOSED', { message: 'Shutting down' });
        return { status: 200, body: { status: 'ok' } };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      operationId: 'metrics',
      async handler() {
        return { status: 200, text: await metrics.registry.metrics(), contentType: metrics.registry.contentType };
      },
    },
    {
      method: 'GET',
      path: '/openapi.json',
      operationId: 'openapi',
      async handler() {
        openApiText ??= JSON.stringify(openApiDocument(version));
        return { status: 200, text: openApiText, contentType: JSON_TYPE };
      },
    },
    ...admin.routes,
  ];
  const router = new Router(routes);

  const listener = (req: IncomingMessage, res: ServerResponse): void => void handle(req, res);
  const server: Server = tls
    ? createTlsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, listener)
    : createServer(listener);
  server.requestTimeout = 30_000;
  server.headersTimeout = 20_000;

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
      // page and assets hold no data; the stats it polls need a key like /v1.
      if ((pathname === '/v1' || pathname.startsWith('/v1/') || pathname.startsWith('/admin/api/')) && !authenticate(req.headers.authorization)) {
        throw new HttpProblem('ESESS_UNAUTHORIZED', { message: 'A valid API key is required: Authorization: Bearer <key>', headers: { 'www-authenticate': 'Bearer realm="elastic-session"' } });
      }
      if (malformed !== undefined) throw malformed;
      if (match === null) throw new HttpProblem('ESESS_NOT_FOUND', { message: 'No such route' });
      if ('allowed' in match) {
        throw new HttpProblem('ESESS_NOT_FOUND', { message: 'No route for this method on this path', headers: { allow: match.allowed.join(', ') } });
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
    if (closing) res.setHeader('connection', 'close');
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
    const known = problemOf(error);
    let problem: Problem;
    let headers: Record<string, string> = {};
    if (known) {
      ({ problem, headers } = known);
      if (problem.status === 503 && error instanceof SessionError) {
        const cause = error.cause instanceof Error ? `: ${errorKind(error.cause)} ${error.cause.message}` : '';
        logError(`store:${error.code}`, `store ${store.name} ${error.code}${cause}`);
      }
    } else {
      problem = internalProblem();
      // Never the request path: it carries session IDs.
      logError(`internal:${routeLabel}`, `internal error on ${req.method ?? '?'} ${routeLabel}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
    metrics.countError(problem.code);
    // A body we did not read to the end (too large, wrong type, unauthorized) leaves bytes on the connection: close it.
    if (hasBody(req) && !req.complete) headers = { ...headers, connection: 'close' };
    send(res, { status: problem.status, text: JSON.stringify(problem), contentType: PROBLEM_TYPE, headers });
  }

  let sweeper: NodeJS.Timeout | undefined;
  let sweeping: Promise<number> | undefined;
  const batch = DEFAULT_SERVICE_CONFIG.sweepBatch;

  function sweep(): Promise<number> {
    sweeping ??= (async () => {
      try {
        let total = 0;
        for (;;) {
          const removed = await manager.sweep(batch);
          total += removed;
          if (removed < batch || closing) return total;
        }
      } finally {
        sweeping = undefined;
      }
    })();
    return sweeping;
  }

  if (store.capabilities.sweep && !store.capabilities.nativeTtl && sweepIntervalMs > 0) {
    sweeper = setInterval(() => {
      sweep().catch((error: unknown) => logError('sweep', `sweep failed: ${error instanceof SessionError ? error.code : errorKind(error)}`));
    }, sweepIntervalMs);
    sweeper.unref();
  }

  let closed: Promise<void> | undefined;

  async function close(): Promise<void> {
    closing = true;
    if (sweeper) clearInterval(sweeper);
    if (server.listening) {
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), shutdownTimeoutMs);
      timer.unref();
      await drained;
      clearTimeout(timer);
    }
    await sweeping?.catch(() => 0);
    admin.close();
    metrics.close();
    if (ownsStore) await manager.close();
  }

  return {
    server,
    manager,
    store,
    metrics: metrics.registry,
    routes,
    sweep,
    async listen() {
      if (closing) throw new SessionError('ESESS_STORE_CLOSED', { message: 'The service is closed' });
      await new Promise<void>((resolve, reject) => {
        const onError = (error: Error): void => reject(error);
        server.once('error', onError);
        server.listen({ port, host }, () => {
          server.off('error', onError);
          resolve();
        });
      });
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;
      if (apiKeys.length === 0) {
        log.info(`no API key configured: listening on ${host} only${isLoopback(host) ? ' (loopback)' : ''}; set --api-key or ELASTIC_SESSION_API_KEYS to accept remote clients`);
      }
      if (spec) log.info(`store ${redactStoreUrl(spec.url)}`);
      return { host: address.address, port: address.port, url: `${tls ? 'https' : 'http'}://${shown}:${address.port}` };
    },
    close() {
      closed ??= close();
      return closed;
    },
  };
}

function checkTls(tls: ServiceTlsOptions): ServiceTlsOptions {
  if (typeof tls !== 'object' || tls === null) throw optionError('tls', 'must be { cert, key, clientCa? } (PEM)');
  const pem = (value: unknown, option: string, what: string): void => {
    const text = Buffer.isBuffer(value) ? value.toString('latin1') : value;
    if (typeof text !== 'string' || !text.includes(`-----BEGIN `) || !text.includes(what)) throw optionError(option, `must be PEM text holding ${what}`);
  };
  pem(tls.cert, 'tls.cert', 'CERTIFICATE');
  pem(tls.key, 'tls.key', 'PRIVATE KEY');
  if (tls.clientCa !== undefined) pem(tls.clientCa, 'tls.clientCa', 'CERTIFICATE');
  return tls;
}

/** The token issuer, or null (token routes answer 501) when the optional jose package is missing. */
async function openTokenIssuer(
  manager: SessionManager,
  keyring: { secrets: readonly string[]; hashKey: Buffer; signingKey: TokenKeyInput | null },
  options: ServiceTokenOptions,
  clock: Clock | undefined,
  log: ServiceLogger,
): Promise<TokenIssuer | null> {
  if (!manager.store.capabilities.cas) {
    log.info(`token mode is off: it needs a store with compare-and-swap, which the ${manager.store.name} store lacks`);
    return null;
  }
  let module: { createTokenIssuer(options: TokenIssuerOptions): TokenIssuer };
  try {
    module = await import('../tokens/issuer.js');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException | null)?.code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes("'jose'");
    if (!missing) throw error;
    log.info('token mode is off: it needs the optional dependency jose (npm install jose)');
    return null;
  }
  // A configured key signs, else the newest secret's; the keys of the others only verify, so
  // tokens issued before a switch or rotation keep working until they expire.
  const derived = keyring.secrets.map((secret) => tokenKeyFromSecret(secret));
  const signing = keyring.signingKey ?? derived.shift();
  if (signing === undefined) throw new SessionError('ESESS_CONFIG', { message: 'the secret could not be resolved' });
  const keys: TokenKeyInput[] = [signing, ...derived.map((key) => ({ ...key, key: createPublicKey(key.key as KeyObject) }))];
  return module.createTokenIssuer({
    manager,
    hashKey: keyring.hashKey,
    keys,
    issuer: options.issuer ?? 'elastic-session',
    audience: options.audience ?? 'elastic-session',
    ...(options.accessTtl === undefined ? {} : { accessTtl: options.accessTtl }),
    ...(options.refreshTtl === undefined ? {} : { refreshTtl: options.refreshTtl }),
    ...(options.leeway === undefined ? {} : { leeway: options.leeway }),
    ...(clock ? { clock } : {}),
  });
}
