/**
 * `elastic-session/stores/near-cache`: an in-process cache of session records in front of any
 * store, for deployments with session affinity, and the sources that invalidate it across
 * instances (Redis client tracking). The implementation lives in `./near-cache/`. See
 * docs/near-cache.md.
 */
export type { NearCacheOptions, NearCacheStats } from './near-cache/store.js';
export { NEAR_CACHE_DEFAULTS, NearCacheStore, nearCache } from './near-cache/store.js';
export type { InvalidationSink, InvalidationSource } from './near-cache/invalidation.js';
export type { RedisInvalidationOptions, RedisInvalidationStatus } from './near-cache/redis-invalidation.js';
export { REDIS_INVALIDATION_DEFAULTS, RedisInvalidation, redisInvalidation } from './near-cache/redis-invalidation.js';
export type { OpenRedisNearCacheOptions } from './near-cache/open.js';
export { openRedisNearCache } from './near-cache/open.js';
export type { NearCacheEvent, NearCacheEventType } from './near-cache/telemetry.js';
export { NEAR_CACHE_CHANNELS } from './near-cache/telemetry.js';
