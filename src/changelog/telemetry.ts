import diagnostics from 'node:diagnostics_channel';
import { CHANNELS } from '../core/telemetry.js';

/**
 * Change-log metrics on `node:diagnostics_channel`, as `src/core/telemetry.ts` does for the rest:
 * nothing is built when nobody listens, and payloads carry counts and configured names only,
 * never a session ID, store key, user or field value.
 */
export const CHANGE_LOG_CHANNELS = {
  /** Entries a store wrote to its change log in the same script as the write: `{ transport, count }`. */
  appended: CHANNELS.changeLogAppended,
  /** Lifecycle events a relay wrote to the events stream: `{ transport, count }`. */
  relayed: CHANNELS.changeLogRelayed,
  /**
   * Entries that could not be used: `{ transport, stage, count }`; stage `decode` (a malformed
   * entry, acknowledged and skipped), `apply` (a consumer's handler or a replay merge threw; the
   * entry stays pending), `trimmed` (entries trimmed by age before the relay read them).
   */
  failed: CHANNELS.changeLogFailed,
  /**
   * How far a consumer is behind: `{ transport, consumer, entries, ageMs }`; `consumer` is the
   * group name (or `relay`), `entries` the entries not yet read (null where Redis cannot tell),
   * `ageMs` the age of the oldest of them (0 when none).
   */
  lag: CHANNELS.changeLogLag,
  /** Expirations found by the reconciler and written as `expire` entries: `{ transport, count }`. */
  expired: CHANNELS.changeLogExpired,
} as const;

export type ChangeLogTransport = 'redis-streams';
export type FailureStage = 'decode' | 'apply' | 'trimmed';

const appended = diagnostics.channel(CHANGE_LOG_CHANNELS.appended);
const relayed = diagnostics.channel(CHANGE_LOG_CHANNELS.relayed);
const failed = diagnostics.channel(CHANGE_LOG_CHANNELS.failed);
const lag = diagnostics.channel(CHANGE_LOG_CHANNELS.lag);
const expired = diagnostics.channel(CHANGE_LOG_CHANNELS.expired);

export function publishAppended(transport: ChangeLogTransport, count: number): void {
  if (count > 0 && appended.hasSubscribers) appended.publish({ transport, count });
}

export function publishRelayed(transport: ChangeLogTransport, count: number): void {
  if (count > 0 && relayed.hasSubscribers) relayed.publish({ transport, count });
}

export function publishFailed(transport: ChangeLogTransport, stage: FailureStage, count = 1): void {
  if (count > 0 && failed.hasSubscribers) failed.publish({ transport, stage, count });
}

export function publishLag(transport: ChangeLogTransport, consumer: string, entries: number | null, ageMs: number): void {
  if (lag.hasSubscribers) lag.publish({ transport, consumer, entries, ageMs });
}

export function publishExpired(transport: ChangeLogTransport, count: number): void {
  if (count > 0 && expired.hasSubscribers) expired.publish({ transport, count });
}

/** Whether anyone listens for lag: computing it costs a command. */
export function lagWanted(): boolean {
  return lag.hasSubscribers;
}
