import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { SessionError } from '../core/errors.js';
import type { SessionManager } from '../core/manager.js';
import type { SessionStore } from '../core/types.js';
import { importOptional } from '../stores/kit/driver.js';
import type { TokenIssuer } from '../tokens/issuer.js';
import { adminRoutes } from './admin/index.js';
import { createAuthenticator } from './auth.js';
import { DEFAULT_SERVICE_CONFIG, isLoopback } from './config.js';
import { createHttpServer, hostCheck, requestListener } from './handler.js';
import { Router } from './http.js';
import type { Route } from './http.js';
import { throttled } from './log.js';
import type { ServiceMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { resolveConfig } from './options.js';
import type { ServiceOptions } from './options.js';
import { sessionRoutes } from './routes.js';
import { buildManager, openServiceStore } from './setup.js';
import { redactStoreUrl } from './stores.js';
import { startSweeper } from './sweeper.js';
import { tokenRoutes } from './token-routes.js';
import { packageVersion } from './version.js';

export { DEFAULT_SERVICE_CONFIG } from './config.js';
export type { ServiceMetrics } from './metrics.js';
export type { ServiceOptions, ServiceTlsOptions, ServiceTokenOptions } from './options.js';
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

// prom-client is an optional peer that the service needs: without it, importing the service
// fails with ESESS_CONFIG saying what to install, not with a bare ERR_MODULE_NOT_FOUND.
const { createMetrics } = await importOptional(() => import('./metrics.js'), 'The session service (its metrics)', 'prom-client', 'metrics');
export { createMetrics };

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
  const config = resolveConfig(options);
  const { log } = config;
  const stores = await openServiceStore(options.store ?? DEFAULT_SERVICE_CONFIG.store, config, options.cwd, options.nearCache);
  const { spec, opened, store, owned } = stores;
  const { manager, tokens, maxAbsoluteTimeout } = await buildManager(options, config, stores);
  if (spec?.scheme === 'memory' || store.name === 'memory') {
    log.warn('the memory store is volatile: sessions are lost on restart and not shared between instances; use --store sqlite:PATH in production');
  }

  // Usage is the backend's: the encryption layer holds nothing of its own.
  const metrics = createMetrics({ defaultMetrics: options.defaultMetrics === true, stores: [opened] });
  const logError = throttled(log);
  const version = packageVersion();
  const admin = adminRoutes({ registry: metrics.registry, store, version });
  let closing = false;
  const isClosing = (): boolean => closing;

  const routes = buildRoutes({ manager, maxAbsoluteTimeout, tokens, metrics, version, admin: admin.routes, closing: isClosing });
  const server = createHttpServer(
    config.tls,
    requestListener({
      router: new Router(routes),
      hostAllowed: hostCheck({ allowedHosts: config.allowedHosts, always: config.apiKeys.length === 0, tls: config.tls !== null, address: () => server.address() }),
      authenticate: createAuthenticator(config.apiKeys),
      publicMetrics: config.publicMetrics,
      metrics,
      logError,
      store,
      bodyLimit: config.bodyLimit,
      maxDepth: manager.limits.maxDepth + 2,
      closing: isClosing,
    }),
  );
  const sweeper = startSweeper(manager, store, { intervalMs: config.sweepIntervalMs, closing: isClosing, logError });

  let closed: Promise<void> | undefined;

  async function close(): Promise<void> {
    closing = true;
    sweeper.stop();
    if (server.listening) {
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs);
      timer.unref();
      await drained;
      clearTimeout(timer);
    }
    await sweeper.idle();
    admin.close();
    metrics.close();
    if (owned) await manager.close();
  }

  return {
    server,
    manager,
    store,
    metrics: metrics.registry,
    routes,
    sweep: sweeper.sweep,
    async listen() {
      if (closing) throw new SessionError('ESESS_STORE_CLOSED', { message: 'The service is closed' });
      const { host, port } = config;
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
      if (config.apiKeys.length === 0) {
        log.info(`no API key configured: listening on ${host} only${isLoopback(host) ? ' (loopback)' : ''}; set --api-key (or ELASTIC_SESSION_API_KEYS) and --host 0.0.0.0 to accept remote clients`);
      } else if (isLoopback(host)) {
        log.info(`listening on ${host} only (loopback); set --host 0.0.0.0 (or an interface address) to accept remote clients`);
      }
      if (spec) log.info(`store ${redactStoreUrl(spec.url)}`);
      return { host: address.address, port: address.port, url: `${config.tls ? 'https' : 'http'}://${shown}:${address.port}` };
    },
    close() {
      closed ??= close();
      return closed;
    },
  };
}

interface RouteParts {
  manager: SessionManager;
  maxAbsoluteTimeout: number;
  tokens: TokenIssuer | null;
  metrics: ServiceMetrics;
  version: string;
  admin: readonly Route[];
  closing: () => boolean;
}

/** Step 4 of `createService`: the route table, the session and token API first. */
function buildRoutes({ manager, maxAbsoluteTimeout, tokens, metrics, version, admin, closing }: RouteParts): Route[] {
  let openApiText: string | undefined;
  return [
    ...sessionRoutes(manager, maxAbsoluteTimeout),
    ...tokenRoutes(tokens),
    {
      method: 'GET',
      path: '/healthz',
      operationId: 'health',
      async handler() {
        if (closing()) throw new SessionError('ESESS_STORE_CLOSED', { message: 'Shutting down' });
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
        return { status: 200, text: openApiText, contentType: 'application/json' };
      },
    },
    ...admin,
  ];
}
