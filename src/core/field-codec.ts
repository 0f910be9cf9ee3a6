import { SessionError } from './errors.js';
import type { DataLimits } from './json.js';
import { encodeValue, isUnsafeKey, safeJsonParse } from './json.js';
import { authenticationOf, DELETED, Session } from './session.js';
import type { SessionData, StoredAuthentication, Written } from './session.js';
import type { Clock, SessionMeta, StoredField, StoredSession } from './types.js';
import { systemClock } from './types.js';

/** Between a request's session and a store record: the manager's encoding of field values (the stores' JSON record codec is src/stores/kit/record-codec.ts). */

export const MAX_FIELD_NAME = 256;

/**
 * Field names the library keeps for itself: callers can neither write nor read them as data.
 * Beside the manager's own, `encryptedStore` keeps its bindings here (`$es.principal`,
 * `$es.deadlines`) and removes them before a record reaches the manager.
 */
export const RESERVED_PREFIX = '$es.';

/** The session's latest authentication (`markAuthenticated()`), a field of the record like any other. */
export const AUTH_FIELD = `${RESERVED_PREFIX}auth`;

/** A stored authentication is a few dozen bytes; anything much longer was not written by a manager. */
const MAX_AUTH_TEXT = 256;

export function isReservedField(field: string): boolean {
  return field.startsWith(RESERVED_PREFIX);
}

/**
 * Encodes the named fields and checks the limits on the whole session after the change.
 * `withAuth` adds the session's authentication (or its deletion) under `AUTH_FIELD`; it counts
 * against no limit, so marking a session authenticated never makes a save fail on size.
 */
export function encodeChanges<Data extends SessionData>(
  session: Session<Data>,
  names: string[],
  stamp: string,
  limits: DataLimits,
  withAuth = false,
): { fields: Record<string, StoredField>; written: Map<string, Written>; auth: StoredAuthentication | null | undefined } {
  const fields: Record<string, StoredField> = Object.create(null) as Record<string, StoredField>;
  const written = new Map<string, Written>();
  const changes = session.changes();
  let total = 0;
  const named = new Set(names);
  for (const field of session.keys()) if (!named.has(field)) total += session.loadedSize(field);
  for (const field of names) {
    if (field.length === 0 || field.length > MAX_FIELD_NAME) throw new SessionError('ESESS_INVALID_INPUT', { message: `Field names must be 1 to ${MAX_FIELD_NAME} characters` });
    if (isUnsafeKey(field)) throw new SessionError('ESESS_UNSAFE_KEY', { message: `Forbidden field name "${field}"`, context: { key: field } });
    if (isReservedField(field)) throw new SessionError('ESESS_INVALID_INPUT', { message: `Field names starting with "${RESERVED_PREFIX}" are reserved by elastic-session`, context: { key: field } });
    const value = changes.has(field) ? changes.get(field) : session.values().get(field);
    if (value === DELETED || value === undefined) {
      fields[field] = { value: null, stamp };
      written.set(field, { value: DELETED, size: 0 });
      continue;
    }
    const text = encodeValue(field, value, limits.maxDepth);
    const size = Buffer.byteLength(text) + Buffer.byteLength(field);
    fields[field] = { value: text, stamp };
    written.set(field, { value, size });
    total += size;
  }
  if (total > limits.maxBytes) {
    throw new SessionError('ESESS_TOO_LARGE', { message: `Session data is larger than limits.maxBytes (${limits.maxBytes}) allows`, context: { limit: 'maxBytes', maxBytes: limits.maxBytes } });
  }
  if (session.keys().length > limits.maxFields) {
    throw new SessionError('ESESS_TOO_LARGE', { message: `Session data has more fields than limits.maxFields (${limits.maxFields}) allows`, context: { limit: 'maxFields', maxFields: limits.maxFields } });
  }
  let auth: StoredAuthentication | null | undefined;
  if (withAuth) {
    auth = session.storedAuthentication;
    fields[AUTH_FIELD] = { value: auth === null ? null : JSON.stringify({ at: auth.at, method: auth.method, level: auth.level }), stamp };
  }
  return { fields, written, auth };
}

/**
 * A stored record as a request's session, and the latest stamp in it (the manager's clock must
 * order its next writes after it); null when a value cannot be decoded or the record exceeds the
 * size or field-count limits (the caller counts it as corrupt). Reserved fields never become
 * data; the authentication must be well formed, or the record is unreadable (fail closed).
 */
export function decodeRecord<Data extends SessionData>(
  id: string,
  record: StoredSession,
  limits: DataLimits,
  clock: Clock = systemClock,
): { session: Session<Data>; latest: string } | null {
  const values = new Map<string, unknown>();
  const sizes = new Map<string, number>();
  let latest = record.userStamp;
  let total = 0;
  let count = 0;
  let auth: StoredAuthentication | null = null;
  try {
    for (const [field, stored] of Object.entries(record.fields)) {
      if (stored.stamp > latest) latest = stored.stamp;
      if (stored.value === null) continue;
      if (field === AUTH_FIELD) {
        auth = stored.value.length <= MAX_AUTH_TEXT ? authenticationOf(safeJsonParse(stored.value, 1)) : null;
        if (auth === null) throw new SessionError('ESESS_INVALID_INPUT');
        continue;
      }
      if (isUnsafeKey(field)) throw new SessionError('ESESS_UNSAFE_KEY');
      const size = Buffer.byteLength(stored.value) + Buffer.byteLength(field);
      total += size;
      count++;
      // Writes are bounded by the limits; a record beyond them was written past this manager (or
      // under larger limits): refused before its values are parsed, like any unreadable record.
      // Reserved names no manager wrote count too, so they cannot carry a record past the bounds.
      if (count > limits.maxFields || total > limits.maxBytes) throw new SessionError('ESESS_TOO_LARGE');
      if (isReservedField(field)) continue;
      values.set(field, safeJsonParse(stored.value, limits.maxDepth));
      sizes.set(field, size);
    }
  } catch {
    return null;
  }
  const meta: SessionMeta = {
    createdAt: record.createdAt,
    lastSeenAt: record.lastSeenAt,
    idleTimeout: record.idleTimeout,
    absoluteExpiresAt: record.absoluteExpiresAt,
    userId: record.userId,
  };
  return { session: new Session<Data>(id, meta, values, sizes, record.version, false, auth, clock), latest };
}
