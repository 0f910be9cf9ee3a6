import type { StoredField, StoredSession } from '../../core/types.js';
import { invalidInput } from './checks.js';

/**
 * The JSON record codec shared by the stores that keep a record's fields as one JSON document
 * (PostgreSQL, MySQL, SQLite's fields column, NATS and Memcached values).
 */

/** A row or decoded document: metadata under the SQL column names. */
export type RecordRow = Record<string, unknown>;

/** Fields as the JSON document `{ name: { v: JSON text | null, s: stamp } }`. */
export function encodeFields(fields: Record<string, StoredField>): string {
  const out = Object.create(null) as Record<string, { v: string | null; s: string }>;
  for (const [name, field] of Object.entries(fields ?? {})) {
    if (!field || (typeof field.value !== 'string' && field.value !== null) || typeof field.stamp !== 'string') {
      throw invalidInput('A stored field needs a string or null value and a string stamp');
    }
    out[name] = { v: field.value, s: field.stamp };
  }
  return JSON.stringify(out);
}

/** The fields document as written by `encodeFields`, or null when it is anything else. */
export function decodeFields(text: unknown): Record<string, StoredField> | null {
  const source = Buffer.isBuffer(text) ? text.toString('utf8') : text;
  if (typeof source !== 'string') return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch {
    return null;
  }
  if (!isObject(parsed)) return null;
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const [name, entry] of Object.entries(parsed)) {
    if (!isObject(entry)) return null;
    const { v, s } = entry;
    if ((typeof v !== 'string' && v !== null) || typeof s !== 'string') return null;
    fields[name] = { value: v, stamp: s };
  }
  return fields;
}

/**
 * A row as these stores write it, or null when anything in it is not (corrupt). A row without
 * `user_stamp` (written before principals were stamped) reads with the empty stamp, which orders
 * before every other.
 */
export function readSession(row: RecordRow): StoredSession | null {
  const createdAt = toInteger(row.created_at);
  const lastSeenAt = toInteger(row.last_seen_at);
  const idleTimeout = toInteger(row.idle_timeout);
  const absoluteExpiresAt = toInteger(row.absolute_expires_at);
  const version = toInteger(row.version);
  const userId = row.user_id;
  const userStamp = row.user_stamp ?? '';
  if (createdAt === undefined || lastSeenAt === undefined || idleTimeout === undefined || absoluteExpiresAt === undefined || version === undefined) return null;
  if (typeof userId !== 'string' && userId !== null) return null;
  if (typeof userStamp !== 'string') return null;
  const fields = decodeFields(row.fields);
  if (!fields) return null;
  return { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, userStamp, version, fields };
}

/** BIGINT columns arrive as text or bigint depending on driver settings. */
export function toInteger(value: unknown): number | undefined {
  const n = typeof value === 'string' || typeof value === 'bigint' ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
