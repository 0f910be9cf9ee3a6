import { resolve } from 'node:path';
import { SessionError } from '../core/errors.js';
import type { SessionStore } from '../core/types.js';
import { optionError } from './config.js';

/** Stores on a server, shared by every instance of the service. */
export type NetworkScheme = 'redis' | 'postgres' | 'mysql' | 'memcached' | 'nats';

/** A parsed `--store` URL. */
export type StoreSpec =
  | { scheme: 'memory'; url: string }
  /** `path` is absolute, or `:memory:` for a private in-memory SQLite database. */
  | { scheme: 'sqlite'; url: string; path: string }
  | { scheme: NetworkScheme; url: string };

const NETWORK_SCHEMES: Record<string, NetworkScheme> = {
  'redis:': 'redis',
  'rediss:': 'redis',
  'redis-sentinel:': 'redis',
  'rediss-sentinel:': 'redis',
  'redis-cluster:': 'redis',
  'rediss-cluster:': 'redis',
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql',
  'memcached:': 'memcached',
  'nats:': 'nats',
};

/** Each network store's module opens its own client from the URL and loads its driver lazily. */
const NETWORK_OPENERS: Record<NetworkScheme, (url: string) => Promise<SessionStore>> = {
  redis: async (url) => (await import('../stores/redis.js')).openRedisStore(url),
  postgres: async (url) => (await import('../stores/postgres.js')).openPostgresStore(url),
  mysql: async (url) => (await import('../stores/mysql.js')).openMysqlStore(url.replace(/^mariadb:/i, 'mysql:')),
  memcached: async (url) => (await import('../stores/memcached.js')).openMemcachedStore(url),
  nats: async (url) => (await import('../stores/nats.js')).openNatsStore(url),
};

interface SqliteModule {
  sqliteStore(options: { path?: string }): SessionStore;
}

const SUPPORTED = 'sqlite:, memory:, redis:, rediss:, redis-sentinel:, redis-cluster:, postgres:, mysql:, memcached:, nats:';

/**
 * The URL with any credentials removed, for messages. A store URL may carry a password
 * (`redis://:pw@host`), which must never reach a log line.
 */
export function redactStoreUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/?#]*@/i, '$1***@').replace(/([?&][a-z]*password=)[^&#]*/gi, '$1***');
}

/**
 * Parses a store URL: `sqlite:PATH` (relative to `cwd`; `sqlite:///abs/path` also works),
 * `sqlite::memory:`, or `memory:`.
 */
export function parseStoreUrl(value: unknown, option: string, cwd = process.cwd()): StoreSpec {
  if (typeof value !== 'string' || value.trim() === '') throw optionError(option, 'must be a store URL such as sqlite:./data/sessions.db or memory:');
  const url = value.trim();
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'memory:') {
    if (url.length !== 'memory:'.length) throw optionError(option, 'must be exactly "memory:" for the memory store');
    return { scheme: 'memory', url: 'memory:' };
  }
  if (scheme === 'sqlite:') {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path === '') throw optionError(option, 'needs a file path after "sqlite:" (e.g. sqlite:./data/sessions.db)');
    if (path.includes('\0')) throw optionError(option, 'has an invalid file path');
    return { scheme: 'sqlite', url, path: path === ':memory:' ? path : resolve(cwd, path) };
  }
  const network = scheme === undefined ? undefined : NETWORK_SCHEMES[scheme];
  if (network !== undefined) {
    if (!url.slice(scheme?.length).startsWith('//')) throw optionError(option, `must be a URL such as ${network}://host:port`);
    return { scheme: network, url };
  }
  throw optionError(option, `must start with one of ${SUPPORTED} (e.g. sqlite:./data/sessions.db)`);
}

/** Whether sessions in this store outlive this process (and so need a secret that does too). */
export function isDurable(spec: StoreSpec): boolean {
  return spec.scheme === 'sqlite' ? spec.path !== ':memory:' : spec.scheme !== 'memory';
}

/**
 * Opens the store a spec names. Store modules load lazily, so a missing optional driver is a
 * clear error naming the store URL instead of a crash at startup.
 */
/** How a store is opened besides its URL. */
export interface OpenStoreOptions {
  /** Put a near-cache of this many entries in front (Redis standalone or Sentinel: invalidated by client tracking). */
  nearCache?: number;
}

export async function openStore(spec: StoreSpec, options: OpenStoreOptions = {}): Promise<SessionStore> {
  if (options.nearCache !== undefined) return openNearCached(spec, options.nearCache);
  if (spec.scheme === 'memory') {
    const { memoryStore } = await import('../stores/memory.js');
    return memoryStore();
  }
  if (spec.scheme !== 'sqlite') return openNetworkStore(spec.scheme, spec.url);
  let sqlite: SqliteModule;
  try {
    sqlite = await import('../stores/sqlite.js');
  } catch (error) {
    throw new SessionError('ESESS_CONFIG', {
      message: `store ${redactStoreUrl(spec.url)}: the SQLite store cannot be loaded; it needs the optional dependency better-sqlite3 (npm install better-sqlite3)`,
      cause: error,
      context: { option: 'store' },
    });
  }
  try {
    return sqlite.sqliteStore({ path: spec.path });
  } catch (error) {
    const code = error instanceof SessionError && error.code === 'ESESS_CONFIG' ? 'ESESS_CONFIG' : 'ESESS_STORE_UNAVAILABLE';
    const reason = error instanceof SessionError ? `: ${error.message}` : '';
    throw new SessionError(code, { message: `store ${redactStoreUrl(spec.url)} cannot be opened${reason}`, cause: error, context: { store: 'sqlite' } });
  }
}

/** Parses and opens a store URL in one step (for apps and examples that take the service's `--store` URLs). */
export async function openStoreUrl(url: string, option = 'store', options: OpenStoreOptions = {}): Promise<SessionStore> {
  return openStore(parseStoreUrl(url, option), options);
}

/**
 * A near-cached store. Only Redis tells other instances' writes (client tracking) today; any other
 * store would serve another instance's stale copy unbounded, so it is refused until the change log
 * feeds invalidations.
 */
async function openNearCached(spec: StoreSpec, maxEntries: number): Promise<SessionStore> {
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new SessionError('ESESS_CONFIG', { message: 'near-cache must be a positive number of entries', context: { option: 'near-cache' } });
  if (spec.scheme !== 'redis' || /^rediss?-cluster:/.test(spec.url)) {
    throw new SessionError('ESESS_CONFIG', {
      message: `near-cache needs a standalone or Sentinel Redis store (invalidated by client tracking), not ${redactStoreUrl(spec.url)}`,
      context: { option: 'near-cache' },
    });
  }
  const { openRedisNearCache } = await import('../stores/near-cache.js');
  return openNetworkStoreWith(spec.url, () => openRedisNearCache(spec.url, { maxEntries }));
}

function openNetworkStore(scheme: NetworkScheme, url: string): Promise<SessionStore> {
  return openNetworkStoreWith(url, () => NETWORK_OPENERS[scheme](url), scheme);
}

/** Opens a networked store; failures are typed and name the URL redacted (it may carry a password). */
async function openNetworkStoreWith(url: string, open: () => Promise<SessionStore>, scheme = 'redis'): Promise<SessionStore> {
  try {
    return await open();
  } catch (error) {
    if (error instanceof SessionError) {
      // The opener's message names the problem; the URL may carry a password, so only the redacted form is shown.
      throw new SessionError(error.code === 'ESESS_CONFIG' ? 'ESESS_CONFIG' : 'ESESS_STORE_UNAVAILABLE', {
        message: `store ${redactStoreUrl(url)}: ${error.message}`,
        cause: error,
        context: { option: 'store' },
      });
    }
    throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: `store ${redactStoreUrl(url)} cannot be opened`, cause: error, context: { store: scheme } });
  }
}
