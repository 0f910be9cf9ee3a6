import { createHash } from 'node:crypto';
import type { KvEntry } from 'nats';
import { SessionError } from '../../core/errors.js';
import type { StoredSession, Watermark } from '../../core/types.js';
import { encodeFields, readSession, toInteger } from '../kit/record-codec.js';
import { STORE } from './errors.js';

/**
 * The bucket's entries:
 * - `s.<store key>`: a live session, the SQL stores' row (with `user_stamp`, which releases
 *   before stamped principals did not write: it reads as `''`) as one line of JSON, then the
 *   fields document; or a tombstone `{"tombstone_until":N,"stamp":S}` (`stamp` left out when
 *   empty, as the previous release wrote every tombstone);
 * - `u.<sha256(userId)>.<store key>`: a user-index entry `{"absolute_expires_at":N}`;
 * - `w.<sha256(userId)>`: the user's revoke watermark `{"stamp":S,"until":N}`;
 * - `m.sweep`: the sweep lease.
 */

export const SESSION_PREFIX = 's.';
export const INDEX_PREFIX = 'u.';
export const WATERMARK_PREFIX = 'w.';
export const SWEEP_LEASE = 'm.sweep';
/** Store keys as the manager makes them (base64url hashes), in characters that NATS keys allow. */
const STORE_KEY = /^[A-Za-z0-9_=-]{1,512}$/;
const CURSOR = /^n1\.([1-9]\d{0,15})$/;

export type Decoded = { kind: 'absent' } | { kind: 'live'; session: StoredSession } | { kind: 'tombstone'; stamp: string; until: number } | { kind: 'corrupt' };

export const ABSENT: Decoded = { kind: 'absent' };
const CORRUPT: Decoded = { kind: 'corrupt' };

export function sessionItem(key: string): string {
  if (typeof key !== 'string' || !STORE_KEY.test(key)) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A NATS store key must be 1 to 512 characters of A-Z, a-z, 0-9, "-", "_" or "="', context: { store: STORE } });
  }
  return SESSION_PREFIX + key;
}

function userHash(userId: string): string {
  if (typeof userId !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'userId must be a string', context: { store: STORE, field: 'userId' } });
  return createHash('sha256').update(userId, 'utf8').digest('base64url');
}

export function indexPrefix(userId: string): string {
  return `${INDEX_PREFIX}${userHash(userId)}.`;
}

export function indexItem(userId: string, key: string): string {
  return indexPrefix(userId) + sessionItem(key).slice(SESSION_PREFIX.length);
}

export function watermarkItem(userId: string): string {
  return WATERMARK_PREFIX + userHash(userId);
}

/** A live record: the SQL stores' row without its fields as one line of JSON, then the fields document. */
export function encodeSession(session: StoredSession): string {
  const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, userStamp, version } = session;
  if (
    ![createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, version].every((n) => Number.isSafeInteger(n)) ||
    (typeof userId !== 'string' && userId !== null && userId !== undefined) ||
    (typeof userStamp !== 'string' && userStamp !== undefined)
  ) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A stored session needs integer times and version and a string or null userId', context: { store: STORE } });
  }
  const row = { created_at: createdAt, last_seen_at: lastSeenAt, idle_timeout: idleTimeout, absolute_expires_at: absoluteExpiresAt, user_id: userId ?? null, user_stamp: userStamp ?? '', version };
  // JSON.stringify escapes line breaks, so the first one ends the row.
  return `${JSON.stringify(row)}\n${encodeFields(session.fields)}`;
}

export function encodeTombstone(stamp: string, until: number): string {
  return JSON.stringify(stamp === '' ? { tombstone_until: until } : { tombstone_until: until, stamp });
}

export function decodeRecord(value: Uint8Array): Decoded {
  const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  const newline = text.indexOf('\n');
  const head = parseObject(newline < 0 ? text : text.slice(0, newline));
  if (!head) return CORRUPT;
  if (newline < 0) {
    const until = toInteger(head.tombstone_until);
    const stamp = head.stamp ?? '';
    return until === undefined || typeof stamp !== 'string' ? CORRUPT : { kind: 'tombstone', stamp, until };
  }
  const session = readSession({ ...head, fields: text.slice(newline + 1) });
  return session ? { kind: 'live', session } : CORRUPT;
}

export function encodeWatermark(watermark: Watermark): string {
  return JSON.stringify({ stamp: watermark.stamp, until: watermark.until });
}

/** A watermark entry's value, or null when it is unreadable. */
export function decodeWatermark(value: Uint8Array): Watermark | null {
  const parsed = parseObject(Buffer.from(value).toString('utf8'));
  const until = toInteger(parsed?.until);
  return typeof parsed?.stamp === 'string' && until !== undefined ? { stamp: parsed.stamp, until } : null;
}

/** When an index entry's session is dead at the latest; an unreadable entry is kept for the session itself to decide. */
export function indexDeadline(value: Uint8Array): number {
  return toInteger(parseObject(Buffer.from(value).toString('utf8'))?.absolute_expires_at) ?? Number.POSITIVE_INFINITY;
}

export function encodeIndexEntry(absoluteExpiresAt: number): string {
  return JSON.stringify({ absolute_expires_at: absoluteExpiresAt });
}

/** The sweep lease: where the next batch starts and until when an instance holds it. */
export function readLease(entry: KvEntry | null): { next: number; heldUntil: number } {
  const lease = entry?.operation === 'PUT' ? parseObject(Buffer.from(entry.value).toString('utf8')) : null;
  const next = toInteger(lease?.next_sequence);
  return { next: next !== undefined && next > 0 ? next : 1, heldUntil: toInteger(lease?.held_until) ?? 0 };
}

export function encodeLease(next: number, heldUntil: number): string {
  return JSON.stringify({ next_sequence: next, held_until: heldUntil });
}

export function decodeCursor(cursor: string | null): number {
  if (cursor === null) return 1;
  const match = typeof cursor === 'string' ? CURSOR.exec(cursor) : null;
  if (!match) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor is not one this store returned', context: { store: STORE } });
  return Number(match[1]);
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
