import { configError, SessionError } from '../core/errors.js';
import type { SessionStore } from '../core/types.js';
import type { ChangeEntry } from './entry.js';
import { replayAction } from './entry.js';
import { decodeStreamEntry } from './redis-entry.js';
import type { RedisStreamSource } from './redis-source.js';
import { idAtOrAfter, rangeAfter } from './redis-source.js';
import { publishFailed } from './telemetry.js';

/**
 * Rebuilds a store from the change log by merging: every entry's state goes through
 * `mergeState`, every watermark through `mergeWatermark`. Merging is a join (commutative,
 * associative, idempotent), so replay is safe over a live or partly filled store, may run twice,
 * and may apply entries concurrently and in any order. Entries carry post-write states, so
 * replaying from a time rebuilds every key written since then.
 */

export interface ReplayOptions {
  /** Start at the first entry written at or after this time (ISO-8601 text, Date or ms). @default the oldest entry kept */
  since?: Date | number | string;
  /** Merges in flight at once. @default 64 */
  concurrency?: number;
  /** Entries read per `XRANGE`. @default 1000 */
  batch?: number;
  /** Called after each batch with the report so far. */
  onProgress?: (report: ReplayReport) => void;
  signal?: AbortSignal;
}

export interface ReplayReport {
  /** Entries read. */
  entries: number;
  /** States merged (`mergeState` calls). */
  merged: number;
  /** Of those, merges that changed the store. */
  changed: number;
  /** Watermarks merged (`mergeWatermark` calls). */
  watermarks: number;
  /** Sessions the merged watermarks destroyed. */
  revoked: number;
  /** Entries with nothing to merge (expirations; merges that left nothing). */
  skipped: number;
  /** Entries that could not be read (counted on `elastic-session:changelog:failed`, stage `decode`). */
  malformed: number;
  /** Stream IDs of the first and last entries read. */
  first: string | null;
  last: string | null;
}

export const REPLAY_DEFAULTS = { concurrency: 64, batch: 1_000 } as const;

type ReplicaStore = SessionStore & Required<Pick<SessionStore, 'mergeState' | 'mergeWatermark'>>;

export async function replay(from: RedisStreamSource, store: SessionStore, options: ReplayOptions = {}): Promise<ReplayReport> {
  if (!store.capabilities.replica || typeof store.mergeState !== 'function' || typeof store.mergeWatermark !== 'function') {
    throw new SessionError('ESESS_UNSUPPORTED', { message: `The ${store.name} store has no replica powers (mergeState, mergeWatermark): it cannot be rebuilt by replay`, context: { store: store.name } });
  }
  const target = store as ReplicaStore;
  const concurrency = options.concurrency ?? REPLAY_DEFAULTS.concurrency;
  const batch = options.batch ?? REPLAY_DEFAULTS.batch;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw configError('concurrency', 'must be a positive integer');
  if (!Number.isSafeInteger(batch) || batch < 1) throw configError('batch', 'must be a positive integer');
  const start = options.since === undefined ? '-' : idAtOrAfter(options.since);
  const report: ReplayReport = { entries: 0, merged: 0, changed: 0, watermarks: 0, revoked: 0, skipped: 0, malformed: 0, first: null, last: null };
  let after: string | null = null;
  for (;;) {
    if (options.signal?.aborted) break;
    const raw = await rangeAfter(from.client, from.stream, after, batch, start);
    if (raw.length === 0) break;
    const entries: ChangeEntry[] = [];
    for (const [id, fields] of raw) {
      try {
        entries.push(decodeStreamEntry(fields, id));
      } catch {
        report.malformed++;
        publishFailed('redis-streams', 'decode');
      }
      report.first ??= id;
    }
    await pool(entries, concurrency, (entry) => apply(target, entry, report));
    report.entries += raw.length;
    after = raw[raw.length - 1]?.[0] as string;
    report.last = after;
    options.onProgress?.({ ...report });
    if (raw.length < batch) break;
  }
  return report;
}

async function apply(store: ReplicaStore, entry: ChangeEntry, report: ReplayReport): Promise<void> {
  const action = replayAction(entry);
  try {
    if (action.kind === 'state') {
      const outcome = await store.mergeState(action.key, action.state);
      report.merged++;
      if (outcome.changed) report.changed++;
    } else if (action.kind === 'watermark') {
      report.revoked += await store.mergeWatermark(action.userId, action.stamp);
      report.watermarks++;
    } else {
      report.skipped++;
    }
  } catch (error) {
    publishFailed('redis-streams', 'apply');
    throw error;
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; the first failure rejects (after the others settle). */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async () => {
    while (next < items.length && failure === null) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}
