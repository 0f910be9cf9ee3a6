import type { KeyState, SessionMeta, StoredField, StoredSession, Watermark } from '../../core/types.js';

/** A raw result row; its columns are listed by the constants below, in order. */
export type Row = unknown[];

export type StoredMeta = SessionMeta & { version: number; userStamp: string };

export const META_COLUMNS = 'created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, user_stamp';
/** One row per field (the LEFT JOIN gives one all-null field for none), the meta and tombstone on each. */
export const RECORD_COLUMNS = `${META_COLUMNS}, tombstone_until, tombstone_stamp, name, value, stamp`;
const TOMBSTONE_UNTIL = 8;
const TOMBSTONE_STAMP = 9;
const FIELD = 10;

/** A record from rows of RECORD_COLUMNS, or null when any column holds what this store never writes. */
export function readRecord(rows: Row[]): StoredSession | null {
  const meta = readMeta(rows[0] as Row);
  if (!meta) return null;
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const row of rows) {
    const [name, value, stamp] = row.slice(FIELD);
    if (name === null && rows.length === 1) break;
    if (typeof name !== 'string' || (typeof value !== 'string' && value !== null) || typeof stamp !== 'string') return null;
    fields[name] = { value, stamp };
  }
  return { ...meta, fields };
}

/**
 * What rows of RECORD_COLUMNS (all rows of a key) hold at `now`, as `readState` returns it: an
 * expired record or a tombstone past its guard is nothing. `undefined` when the row is unreadable.
 */
export function readKeyState(rows: Row[], now: number): KeyState | undefined {
  const first = rows[0];
  if (first === undefined) return null;
  const until = first[TOMBSTONE_UNTIL];
  if (until !== null) {
    const stamp = first[TOMBSTONE_STAMP];
    if (!isTime(until) || typeof stamp !== 'string') return undefined;
    return until > now ? { kind: 'tombstone', stamp, until } : null;
  }
  const record = readRecord(rows);
  if (!record) return undefined;
  return (first[4] as number) > now ? { kind: 'live', record } : null;
}

/** A row of META_COLUMNS, or null when any column holds what this store never writes. */
export function readMeta(row: Row): StoredMeta | null {
  const [createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expires, userId, version, userStamp] = row;
  if (!isTime(createdAt) || !isTime(lastSeenAt) || !isTime(idleTimeout) || !isTime(absoluteExpiresAt) || !isTime(expires)) return null;
  if ((typeof userId !== 'string' && userId !== null) || typeof version !== 'number' || !Number.isSafeInteger(version) || typeof userStamp !== 'string') return null;
  return { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version, userStamp };
}

/** A row of (stamp, until), or null when it is anything else. */
export function readWatermarkRow(row: Row): Watermark | null {
  const [stamp, until] = row;
  return typeof stamp === 'string' && isTime(until) ? { stamp, until } : null;
}

export function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
