import { SessionError } from '../../core/errors.js';
import { STAMP_PATTERN } from '../../core/hlc.js';
import type { LiveState, SessionDelta, StoredSession, TombstoneState } from '../../core/types.js';

/**
 * Input checks every store makes the same way: a store is a public entry (third-party code may
 * call it), so malformed input is a typed ESESS_INVALID_INPUT, never a corrupt record.
 */

export function invalidInput(message: string, store?: string): SessionError {
  return new SessionError('ESESS_INVALID_INPUT', { message, ...(store === undefined ? {} : { context: { store } }) });
}

/** `scan()`'s limit: a hard bound on the page, so it must be a positive integer. */
export function checkLimit(limit: number, store: string): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw invalidInput('scan() limit must be a positive integer', store);
  return limit;
}

/** `sweep()`'s limit: how many dead records one batch may remove (0 removes none). */
export function checkSweepLimit(limit: number, store: string): number {
  if (!Number.isSafeInteger(limit) || limit < 0) throw invalidInput('sweep() limit must be a non-negative integer', store);
  return limit;
}

export function checkGrace(ms: number): number {
  if (!Number.isSafeInteger(ms) || ms < 0) throw invalidInput('tombstoneGraceMs must be a non-negative integer');
  return ms;
}

/** A clock stamp as `formatStamp` writes it; `''` (no stamp) only where `allowEmpty`. */
export function checkStamp(stamp: unknown, what: string, allowEmpty = false): string {
  if (typeof stamp !== 'string' || !(STAMP_PATTERN.test(stamp) || (allowEmpty && stamp === ''))) throw invalidInput(`${what} must be a clock stamp`);
  return stamp;
}

/** A delta's principal write carries its stamp: without one it could not be ordered against other replicas. */
export function checkDelta(delta: SessionDelta): SessionDelta {
  if (delta.userId !== undefined) {
    if (delta.userId !== null && typeof delta.userId !== 'string') throw invalidInput('A delta userId must be a string or null');
    checkStamp(delta.userStamp, 'The userStamp of a delta that sets userId');
  }
  return delta;
}

/** A state from another replica, checked before it is merged. */
export function checkForeignState(state: LiveState | TombstoneState): LiveState | TombstoneState {
  if (state?.kind === 'tombstone') {
    checkStamp(state.stamp, 'A tombstone stamp', true);
    if (!Number.isSafeInteger(state.until)) throw invalidInput('A tombstone needs an integer until');
    return state;
  }
  if (state?.kind !== 'live' || typeof state.record !== 'object' || state.record === null) throw invalidInput('A foreign state is a live record or a tombstone');
  checkRecord(state.record);
  return state;
}

/** A whole record (create, or a foreign live state): integer times, string-or-null values, stamps. */
export function checkRecord(record: StoredSession): StoredSession {
  for (const name of ['createdAt', 'lastSeenAt', 'idleTimeout', 'absoluteExpiresAt', 'version'] as const) {
    if (!Number.isSafeInteger(record[name])) throw invalidInput(`A record's ${name} must be an integer`);
  }
  if (record.userId !== null && typeof record.userId !== 'string') throw invalidInput("A record's userId must be a string or null");
  checkStamp(record.userStamp, "A record's userStamp", true);
  if (typeof record.fields !== 'object' || record.fields === null) throw invalidInput("A record's fields must be an object");
  for (const field of Object.values(record.fields)) {
    if (!field || (typeof field.value !== 'string' && field.value !== null)) throw invalidInput('A stored field needs a string or null value');
    checkStamp(field.stamp, 'A stored field stamp');
  }
  return record;
}
