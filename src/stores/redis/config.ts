import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { configError } from '../../core/errors.js';

/** An ioredis client: a `Redis` (standalone or Sentinel-managed) or a `Cluster`. */
export type RedisClient = Redis | Cluster;

export interface WaitForReplicas {
  /** Replicas that must acknowledge each write. */
  replicas: number;
  /** How long `WAIT` may block, in milliseconds (at least 1; `WAIT` with 0 would block forever). */
  timeoutMs: number;
}

export interface RedisStoreOptions {
  /** The application's ioredis client. Without `ownsClient`, `close()` leaves it open. */
  client: RedisClient;
  /**
   * Prefix of every key this store writes. Must not contain `{` or `}` (hash tags).
   * @default "es:"
   */
  prefix?: string;
  /**
   * After each write, `WAIT replicas timeoutMs` on the node that took the write, in the same
   * round trip. When fewer replicas acknowledge in time the write still happened on the
   * primary, and the call fails with ESESS_STORE_UNAVAILABLE, context `{ reason: 'replication' }`.
   */
  waitForReplicas?: WaitForReplicas;
  /**
   * Upper bound of one store operation in milliseconds; past it the call fails with
   * ESESS_STORE_UNAVAILABLE (kind "timeout") whatever the client's own settings. A write that
   * timed out may still land.
   * @default 10000
   */
  operationTimeoutMs?: number;
  /** Whether `close()` quits the client. @default false */
  ownsClient?: boolean;
  /**
   * Write every acknowledged change to a Redis stream in the same script as the change
   * (docs/change-log.md), so a crash right after the reply cannot lose it. Standalone and
   * Sentinel only: a Cluster client is refused (a script touches keys of one slot only).
   * @example { stream: 'es:log', maxAgeMs: 7 * 24 * 3600 * 1000 }
   */
  changeLog?: RedisChangeLogOptions;
}

export interface RedisChangeLogOptions {
  /** Name of the stream; `<stream>:deadlines` and `<stream>:owners` track expirations beside it. */
  stream: string;
  /**
   * Entries older than this are trimmed (`XTRIM MINID ~`) by every round of the expiry
   * reconciler (`reconcileExpirations`). Keep it above the absolute timeout of your sessions if a
   * store must be rebuildable by replay from the log alone. 0 keeps every entry.
   * @default 604800000 (7 days)
   */
  maxAgeMs?: number;
  /** Written into every entry and event (`region`), for active-active deployments. @default null */
  region?: string | null;
}

export const CHANGE_LOG_DEFAULTS = {
  maxAgeMs: 7 * 24 * 3600 * 1000,
  region: null,
} as const;

/** The change-log option, checked: the three keys every logged script takes in front. */
export interface ChangeLogSettings {
  stream: string;
  keys: readonly [stream: string, deadlines: string, owners: string];
  maxAgeMs: number;
  region: string | null;
}

export const REDIS_STORE_DEFAULTS = {
  prefix: 'es:',
  operationTimeoutMs: 10_000,
  ownsClient: false,
} as const;

/**
 * ioredis settings that bound how long a command can wait during an outage, a failover or a
 * reconnect; `openRedisStore` applies them, applications that build their own client should.
 */
export const RECOMMENDED_CLIENT_OPTIONS = {
  /** Fail queued commands after this many reconnect attempts instead of queueing forever. */
  maxRetriesPerRequest: 2,
  /** Fail a command that got no reply in this many milliseconds (must exceed `waitForReplicas.timeoutMs`). */
  commandTimeout: 5_000,
  connectTimeout: 5_000,
  /** A primary demoted by a failover answers READONLY: reconnect (Sentinel finds the new one) and resend. */
  reconnectOnError: (error: Error): 2 | false => (error.message.startsWith('READONLY') ? 2 : false),
} as const satisfies RedisOptions;

export const RECOMMENDED_CLUSTER_OPTIONS = {
  retryDelayOnFailover: 100,
  retryDelayOnClusterDown: 100,
  retryDelayOnTryAgain: 100,
  maxRedirections: 16,
  slotsRefreshTimeout: 2_000,
  redisOptions: RECOMMENDED_CLIENT_OPTIONS,
} as const satisfies ClusterOptions;

/** What `INFO` and `DBSIZE` tell, where the server allows them (null where it does not). */
export interface RedisUsage {
  /** `used_memory`, summed over primaries in a cluster. */
  memoryBytes: number | null;
  /** `DBSIZE`: every key of the database, not only this store's. Summed over primaries in a cluster. */
  keys: number | null;
}

/** The options of a store, checked once. */
export interface RedisSettings {
  client: RedisClient;
  cluster: boolean;
  prefix: string;
  wait: WaitForReplicas | null;
  timeoutMs: number;
  ownsClient: boolean;
  changeLog: ChangeLogSettings | null;
}

export function isClusterClient(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/** Validates the options at construction, naming the option and the fix. */
export function resolveOptions(options: RedisStoreOptions): RedisSettings {
  const client = options?.client as RedisClient | undefined;
  if (!client || typeof client.hgetall !== 'function' || typeof client.pipeline !== 'function') throw configError('client', 'an ioredis Redis or Cluster instance is required');
  const cluster = isClusterClient(client);
  const clientOptions = client.options as {
    keyPrefix?: string;
    commandTimeout?: number;
    scaleReads?: unknown;
    role?: string;
    redisOptions?: { keyPrefix?: string; commandTimeout?: number };
  };
  if (clientOptions.keyPrefix || clientOptions.redisOptions?.keyPrefix) {
    throw configError('client', 'ioredis keyPrefix is not supported (scripts derive keys); use the store option "prefix" instead');
  }
  // Replicas lag: reading from them would break read-your-writes and make sessions flicker.
  if (cluster && clientOptions.scaleReads !== undefined && clientOptions.scaleReads !== 'master') {
    throw configError('client', 'ioredis scaleReads must be "master" (the default): session reads must see the latest write');
  }
  if (clientOptions.role === 'slave') throw configError('client', 'a Sentinel client must connect to the primary (role "master")');
  const prefix = options.prefix ?? REDIS_STORE_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) throw configError('prefix', 'must be a string without "{" or "}"');
  const timeoutMs = options.operationTimeoutMs ?? REDIS_STORE_DEFAULTS.operationTimeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw configError('operationTimeoutMs', 'must be a positive integer of milliseconds');
  const wait = options.waitForReplicas ?? null;
  if (wait) {
    const { replicas, timeoutMs: waitMs } = wait;
    if (!Number.isInteger(replicas) || replicas < 1) throw configError('waitForReplicas.replicas', 'must be a positive integer');
    if (!Number.isInteger(waitMs) || waitMs < 1) throw configError('waitForReplicas.timeoutMs', 'must be a positive integer of milliseconds');
    if (waitMs >= timeoutMs) throw configError('waitForReplicas.timeoutMs', 'must be less than operationTimeoutMs');
    const commandTimeout = clientOptions.commandTimeout ?? clientOptions.redisOptions?.commandTimeout;
    if (commandTimeout !== undefined && commandTimeout <= waitMs) {
      throw configError('waitForReplicas.timeoutMs', 'must be less than the client option commandTimeout, or WAIT itself times out');
    }
  }
  const changeLog = options.changeLog === undefined ? null : resolveChangeLog(options.changeLog, cluster, prefix);
  return { client, cluster, prefix, wait, timeoutMs, ownsClient: options.ownsClient ?? REDIS_STORE_DEFAULTS.ownsClient, changeLog };
}

function resolveChangeLog(options: RedisChangeLogOptions, cluster: boolean, prefix: string): ChangeLogSettings {
  if (cluster) {
    throw configError('changeLog', 'is not supported with a Redis Cluster client: a script can only write keys of one slot, so the entry cannot be written atomically with the session; use a standalone or Sentinel-managed Redis for a store with a change log (see docs/change-log.md)');
  }
  if (typeof options !== 'object' || options === null) throw configError('changeLog', 'must be an object such as { stream: "es:log" }');
  const { stream } = options;
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 256) throw configError('changeLog.stream', 'must be a stream name of 1 to 256 characters');
  // scan() walks `<prefix>{*}`: a stream there would be taken for a session.
  if (stream.startsWith(`${prefix}{`)) throw configError('changeLog.stream', `must not start with the store prefix followed by "{" (that is where sessions live)`);
  const maxAgeMs = options.maxAgeMs ?? CHANGE_LOG_DEFAULTS.maxAgeMs;
  if (!Number.isSafeInteger(maxAgeMs) || maxAgeMs < 0) throw configError('changeLog.maxAgeMs', 'must be a non-negative integer of milliseconds (0 keeps every entry)');
  const region = options.region ?? CHANGE_LOG_DEFAULTS.region;
  if (region !== null && (typeof region !== 'string' || region.length === 0 || region.length > 64)) throw configError('changeLog.region', 'must be null or a name of 1 to 64 characters');
  return { stream, keys: [stream, `${stream}:deadlines`, `${stream}:owners`], maxAgeMs, region };
}
