import { publishCorrupt } from '../../core/telemetry.js';
import type { KeyState, StoredSession, Watermark } from '../../core/types.js';
import { readSession, toInteger } from './record-codec.js';
import type { RecordRow } from './record-codec.js';

/**
 * Rows of the SQL stores that keep a key's state in one row (PostgreSQL, MySQL): the metadata
 * columns `readSession` reads, a `tombstone` flag (boolean or 0/1) with its `tombstone_stamp`,
 * `expires_at` (for a tombstone: the until it guards), and watermark rows `(stamp, until)`.
 */

/**
 * What a row holds at `now`: nothing (no row, or dead: `expires_at` passed), a tombstone, or a
 * live record; an unreadable live row is nothing, counted as corrupt.
 */
export function stateOfRow(store: string, row: RecordRow | undefined, now: number): KeyState {
  if (!row) return null;
  const until = toInteger(row.expires_at);
  if (until === undefined || until <= now) return null;
  if (row.tombstone === true || toInteger(row.tombstone) === 1) return typeof row.tombstone_stamp === 'string' ? { kind: 'tombstone', stamp: row.tombstone_stamp, until } : null;
  const record = sessionOfRow(store, row);
  return record ? { kind: 'live', record } : null;
}

/** A live row's record, or null (published as corrupt) when it is unreadable. */
export function sessionOfRow(store: string, row: RecordRow): StoredSession | null {
  const session = readSession(row);
  if (!session) publishCorrupt(store);
  return session;
}

/** A watermark row, or null when there is none or it is past its time. */
export function watermarkOfRow(row: RecordRow | undefined, now: number): Watermark | null {
  if (!row) return null;
  const until = toInteger(row.until);
  if (typeof row.stamp !== 'string' || until === undefined || until <= now) return null;
  return { stamp: row.stamp, until };
}
