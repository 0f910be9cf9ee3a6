/**
 * `elastic-session/stores/redis`: sessions in Redis (standalone, Sentinel or Cluster) over an
 * ioredis client. The implementation lives in `./redis/`, split by concern: options, key and
 * record codec, the Lua scripts, transport (WAIT, redirections, typed errors), scan, the user
 * index and watermarks, the replica powers, and URLs.
 */
export type { RedisClient, RedisStoreOptions, RedisUsage, WaitForReplicas } from './redis/config.js';
export { RECOMMENDED_CLIENT_OPTIONS, RECOMMENDED_CLUSTER_OPTIONS, REDIS_STORE_DEFAULTS } from './redis/config.js';
export { RedisStore, redisStore } from './redis/store.js';
export type { OpenRedisStoreOptions } from './redis/open.js';
export { openRedisStore } from './redis/open.js';
export type { RedisAddress, RedisTarget } from './redis/url.js';
export { parseRedisUrl } from './redis/url.js';
export type { RedisChangeLogOptions } from './redis/config.js';
export { CHANGE_LOG_DEFAULTS } from './redis/config.js';
