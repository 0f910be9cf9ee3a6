/**
 * `elastic-session/stores/memcached`: sessions in Memcached over memjs. The store lives in
 * `memcached/` (store, item codec, binary protocol, key walk, client with TLS).
 */
export { MemcachedStore, memcachedStore } from './memcached/store.js';
export type { MemcachedStoreOptions } from './memcached/store.js';
export type { MemcachedServerAddress, MemjsClient } from './memcached/protocol.js';
export type { MemcachedScanPage } from './memcached/scan.js';
export { memcachedClient, openMemcachedStore } from './memcached/client.js';
export type { MemcachedClientOptions } from './memcached/client.js';
