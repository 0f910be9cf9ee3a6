/**
 * `elastic-session/changelog`: every change a store acknowledged, on a durable stream
 * (docs/change-log.md). The Redis store writes it in the same script as the change
 * (`redisStore({ client, changeLog: { stream } })`); this module reads it — a consumer-group
 * reader, the relay to lifecycle events, replay into any store with the replica powers, and the
 * expiry reconciler.
 */
export type { ChangeEntry, EntryOp, ReplayAction } from './entry.js';
export { decodeEntry, encodeEntry, ENTRY_OPS, ENTRY_VERSION, entryFrom, replayAction } from './entry.js';
export { decodeStreamEntry } from './redis-entry.js';
export type { LifecycleEvent, LifecycleEventType } from './events.js';
export { encodeEvent, eventOf } from './events.js';
export type { ChangeLogReaderOptions, ReadEntry } from './reader.js';
export { CHANGE_LOG_READER_DEFAULTS, ChangeLogReader } from './reader.js';
export type { EventRelayOptions, RelayRound } from './relay.js';
export { EVENT_RELAY_DEFAULTS, EventRelay } from './relay.js';
export type { ReplayOptions, ReplayReport } from './replay.js';
export { replay, REPLAY_DEFAULTS } from './replay.js';
export type { ExpiryReconciler, ExpiryReconcilerOptions, ExpiryReconciling } from './reconciler.js';
export { EXPIRY_RECONCILER_DEFAULTS, startExpiryReconciler } from './reconciler.js';
export type { RedisStreamSource, StreamUrl } from './redis-source.js';
export { idAtOrAfter, openStreamUrl, parseStreamUrl } from './redis-source.js';
export { trimByAge } from './trim.js';
export type { ChangeLogTransport, FailureStage } from './telemetry.js';
export { CHANGE_LOG_CHANNELS } from './telemetry.js';
export type { RedisChangeLogOptions } from '../stores/redis/config.js';
export { CHANGE_LOG_DEFAULTS } from '../stores/redis/config.js';
