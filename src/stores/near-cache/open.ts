import type { Redis } from 'ioredis';
import { configError } from '../../core/errors.js';
import { REDIS_STORE_DEFAULTS } from '../redis/config.js';
import type { OpenRedisStoreOptions } from '../redis/open.js';
import { openRedisClient } from '../redis/open.js';
import { RedisStore } from '../redis/store.js';
import { parseRedisUrl } from '../redis/url.js';
import { redisInvalidation } from './redis-invalidation.js';
import type { RedisInvalidationOptions } from './redis-invalidation.js';
import { nearCache } from './store.js';
import type { NearCacheOptions, NearCacheStore } from './store.js';

export interface OpenRedisNearCacheOptions extends Omit<NearCacheOptions, 'invalidation'>, Omit<OpenRedisStoreOptions, 'clusterOptions'>, Pick<RedisInvalidationOptions, 'healthCheckMs'> {}

/**
 * A near-cache over a Redis store opened from a URL (`redis://`, `rediss://`, `redis-sentinel://`, see
 * `parseRedisUrl`), invalidated by client tracking: one owned client for the store, one owned
 * subscriber beside it; `close()` closes all of it. What the service's `--near-cache` and the
 * examples' `ELASTIC_SESSION_NEAR_CACHE` open. A Cluster URL is refused: tracking follows one
 * connection, and a Cluster client has one per node.
 */
export async function openRedisNearCache(url: string, options: OpenRedisNearCacheOptions = {}): Promise<NearCacheStore> {
  const target = parseRedisUrl(url);
  if (target.mode === 'cluster') {
    throw configError('near-cache', 'needs a standalone or Sentinel Redis store: client tracking cannot follow a Redis Cluster (one connection per node)');
  }
  const { clientOptions, maxEntries, maxBytes, maxAgeMs, clock, healthCheckMs, ...storeOptions } = options;
  const client = (await openRedisClient(target, clientOptions)) as Redis;
  try {
    const prefix = storeOptions.prefix ?? target.prefix ?? REDIS_STORE_DEFAULTS.prefix;
    const store = new RedisStore({ ...storeOptions, prefix, client, ownsClient: true });
    return nearCache(store, { maxEntries, maxBytes, maxAgeMs, clock, invalidation: redisInvalidation({ client, prefix, healthCheckMs }) });
  } catch (error) {
    client.disconnect();
    throw error;
  }
}
