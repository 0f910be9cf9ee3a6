import diagnostics from 'node:diagnostics_channel';
import { CHANNELS } from '../../core/telemetry.js';

/**
 * Near-cache telemetry on `node:diagnostics_channel`, as `src/core/telemetry.ts` does for the
 * rest: nothing is built when nobody listens, and payloads carry counts, the inner store's name
 * and fixed words only, never a store key, user or field value.
 */
export const NEAR_CACHE_CHANNELS = {
  /** Every cache event: `NearCacheEvent`. One channel, so a subscriber sees them in order. */
  event: CHANNELS.nearCache,
} as const;

export type NearCacheEventType = 'hit' | 'miss' | 'invalidation' | 'eviction' | 'flush';

export interface NearCacheEvent {
  /** The inner store's name. */
  store: string;
  event: NearCacheEventType;
  /**
   * `invalidation`: `local` (a write through this near-cache) or `remote` (the invalidation
   * source: another instance's write, an expiry on the server).
   */
  origin?: 'local' | 'remote';
  /**
   * `eviction`: `capacity` (maxEntries or maxBytes), `expired` (the record's deadline passed),
   * `age` (held longer than maxAgeMs). `flush`: `invalidation-lost` (the source went down),
   * `server-flush` (the source says every key changed), or the source's own word.
   */
  reason?: string;
  /** Cached entries this event dropped (`invalidation`, `eviction`, `flush`); 1 for `hit` and `miss`. */
  count: number;
  /** `remote` invalidation: keys the source named (cached here or not). */
  keys?: number;
  /** Entries and approximate bytes held after the event. */
  entries: number;
  bytes: number;
}

const channel = diagnostics.channel(NEAR_CACHE_CHANNELS.event);

/** Built only when someone listens: a hit must stay allocation-free otherwise. */
export function publishNearCache(event: () => NearCacheEvent): void {
  if (channel.hasSubscribers) channel.publish(event());
}
