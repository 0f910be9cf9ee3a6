/** How token state lives in the store: records under their own keys, with JSON fields. */
import { createHash } from 'node:crypto';
import { safeJsonParse } from '../core/json.js';
import type { StoredSession } from '../core/types.js';

/** The store key of a token record: a digest in its own namespace, never a session's key. */
export function tokenKey(kind: 'rt' | 'fam' | 'jti', value: string): string {
  return createHash('sha256').update(`elastic-session/token\0${kind}\0${value}`).digest('base64url');
}

/**
 * A token record: lives until `until`, never idles out first, belongs to no user. `stamp` (a
 * clock stamp, as the manager gives a new session) stamps its empty principal, which stores that
 * bind the principal to its stamp (`encryptedStore`) require.
 */
export function tokenRecord(now: number, until: number, fields: StoredSession['fields'], stamp: string): StoredSession {
  return { createdAt: now, lastSeenAt: now, idleTimeout: Math.max(1, until - now) + 1, absoluteExpiresAt: until, userId: null, userStamp: stamp, version: 1, fields };
}

/** A field of a token record, parsed; undefined when absent or unreadable. */
export function readField(record: StoredSession, name: string): unknown {
  const value = record.fields[name]?.value;
  if (typeof value !== 'string') return undefined;
  try {
    return safeJsonParse(value, 4);
  } catch {
    return undefined;
  }
}

export function readString(record: StoredSession, name: string): string | null {
  const value = readField(record, name);
  return typeof value === 'string' ? value : null;
}
