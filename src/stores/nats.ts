/**
 * `elastic-session/stores/nats`: sessions in a NATS JetStream KV bucket. The store lives in
 * `nats/` (store, entry codec, bucket walk, URL, errors, opening a connection).
 */
export { NatsStore, natsStore } from './nats/store.js';
export type { NatsKv, NatsStoreOptions } from './nats/store.js';
export { NATS_STORE_DEFAULTS, parseNatsUrl } from './nats/url.js';
export type { NatsTarget } from './nats/url.js';
export { openNatsStore } from './nats/open.js';
export type { OpenNatsStoreOptions } from './nats/open.js';
