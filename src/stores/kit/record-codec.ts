import { SessionError } from '../core/errors.js';
import type { StoredField, StoredSession } from '../core/types.js';

/** Row shape shared by the SQL stores that keep fields as one JSON document (PostgreSQL, MySQL). */
export type SqlRow = Record<string, unknown>;

/** Fields as the JSON document `{ name: { v: JSON text | null, s: stamp } }`. */
export function encodeFields(fields: Record<string, StoredField>): string {
  const out = Object.create(null) as Record<string, { v: string | null; s: string }>;
  for (const [name, field] of Object.entries(fields ?? {})) {
    if (!field || (typeof field.value !== 'string' && field.value !== null) || typeof field.stamp !== 'string') {
      throw new SessionError('ESESS_INVALID_INPUT', { message: 'A stored field needs a string or null value and a string stamp' });
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

/** A row as these stores write it, or null when anything in it is not (corrupt). */
export function readSession(row: SqlRow): StoredSession | null {
  const createdAt = toInteger(row.created_at);
  const lastSeenAt = toInteger(row.last_seen_at);
  const idleTimeout = toInteger(row.idle_timeout);
  const absoluteExpiresAt = toInteger(row.absolute_expires_at);
  const version = toInteger(row.version);
  const userId = row.user_id;
  if (createdAt === undefined || lastSeenAt === undefined || idleTimeout === undefined || absoluteExpiresAt === undefined || version === undefined) return null;
  if (typeof userId !== 'string' && userId !== null) return null;
  const fields = decodeFields(row.fields);
  if (!fields) return null;
  return { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version, fields };
}

/** BIGINT columns arrive as text or bigint depending on driver settings. */
export function toInteger(value: unknown): number | undefined {
  const n = typeof value === 'string' || typeof value === 'bigint' ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : undefined;
}

export function checkGrace(ms: number): number {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'tombstoneGraceMs must be a non-negative integer' });
  return ms;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A stored schema version, refused when unreadable or newer than this release's `supported`. */
export function readSchemaVersion(store: string, found: unknown, supported: number): number {
  const version = toInteger(found ?? 0);
  if (version === undefined || version < 0) {
    throw new SessionError('ESESS_CONFIG', { message: 'The session tables have an unreadable schema version', context: { store } });
  }
  if (version > supported) {
    throw new SessionError('ESESS_CONFIG', {
      message: `The session tables have schema version ${version}, newer than this elastic-session understands (${supported}); upgrade elastic-session`,
      context: { store, schemaVersion: version, supportedVersion: supported },
    });
  }
  return version;
}

/** With `migrate: false`, tables behind this release are a configuration error that says what to run. */
export function schemaBehindError(store: string, found: number, supported: number): SessionError {
  return new SessionError('ESESS_CONFIG', {
    message: `The session tables are at schema version ${found}, this elastic-session needs ${supported}: run "elastic-session migrate" or set migrate: true`,
    context: { store, schemaVersion: found, supportedVersion: supported },
  });
}
