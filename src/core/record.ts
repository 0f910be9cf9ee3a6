import { wallOf } from './hlc.js';
import type { KeyState, LiveState, SessionDelta, StoredField, StoredSession, TombstoneState, Watermark } from './types.js';
import { expiresAt, MAX_TIMEOUT_SECONDS, TOMBSTONE_GRACE_MS } from './types.js';

/**
 * The record model: what a key holds and how two replicas' views of it merge. Every replica
 * (a quorum member, a region, a store rebuilt from the change log) converges by these rules
 * alone, so they live here once, as pure functions; stores apply them atomically, and the
 * conformance suite checks each store against this module.
 *
 * `mergeRecords` is commutative, associative and idempotent (a join): any order and any
 * repetition of the same states gives the same result.
 * - Destroy wins: a tombstone merged with anything is a tombstone, whatever the stamps; it
 *   guards the key at least until the merged record's absolute expiry plus the tolerated skew.
 * - Each field is a last-writer-wins register by stamp; a deletion is a stamped `null`.
 * - The principal (`userId`) is a register with its own stamp (`userStamp`).
 * - `lastSeenAt` takes the maximum; the creation-time fields are fixed at creation. Should two
 *   replicas ever disagree, the earlier `createdAt` and `idleTimeout` win and the later
 *   `absoluteExpiresAt` (so that the guard a tombstone takes from a record stays a join).
 * - `version` is local to a replica (compare-and-swap holds within one, not across them).
 *
 * Expiry and revoke watermarks depend on the time and on per-user state, not on the two
 * records, so they are applied by `settle` after a merge.
 */

/** `a` orders after `b`. Stamps are fixed-width ASCII, so string order is stamp order. */
export function newer(a: string, b: string): boolean {
  return a > b;
}

/** Merges two states of one key. Pure; never mutates its arguments. */
export function mergeRecords(a: KeyState, b: KeyState): KeyState {
  if (a === null) return b;
  if (b === null) return a;
  if (a.kind === 'tombstone' || b.kind === 'tombstone') return joinTombstones(asTombstone(a), asTombstone(b));

  return { kind: 'live', record: mergeLive(a.record, b.record) };
}

function joinTombstones(a: TombstoneState, b: TombstoneState): TombstoneState {
  return { kind: 'tombstone', stamp: max(a.stamp, b.stamp), until: Math.max(a.until, b.until) };
}

/** A live record as the least tombstone it implies: no stamp of its own, its absolute expiry guarded. */
function asTombstone(state: LiveState | TombstoneState): TombstoneState {
  return state.kind === 'tombstone' ? state : revokedTombstone(state.record);
}

function mergeLive(a: StoredSession, b: StoredSession): StoredSession {
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const [name, field] of Object.entries(a.fields)) fields[name] = { value: field.value, stamp: field.stamp };
  for (const [name, field] of Object.entries(b.fields)) {
    const current = fields[name];
    if (!current || wins(field.stamp, field.value, current.stamp, current.value)) fields[name] = { value: field.value, stamp: field.stamp };
  }
  const bUser = wins(b.userStamp, b.userId, a.userStamp, a.userId);
  return {
    createdAt: Math.min(a.createdAt, b.createdAt),
    lastSeenAt: Math.max(a.lastSeenAt, b.lastSeenAt),
    idleTimeout: Math.min(a.idleTimeout, b.idleTimeout),
    absoluteExpiresAt: Math.max(a.absoluteExpiresAt, b.absoluteExpiresAt),
    userId: bUser ? b.userId : a.userId,
    userStamp: bUser ? b.userStamp : a.userStamp,
    version: Math.max(a.version, b.version),
    fields,
  };
}

/** Register order: the later stamp; equal stamps (one write seen twice, or a forged tie) by value, so every replica picks the same. */
function wins(stamp: string, value: string | null, otherStamp: string, otherValue: string | null): boolean {
  if (stamp !== otherStamp) return newer(stamp, otherStamp);
  return (value ?? '') > (otherValue ?? '');
}

function max(a: string, b: string): string {
  return newer(a, b) ? a : b;
}

/**
 * Applies a request's delta to a live record in place: per field the later stamp wins; the
 * principal changes only when the delta's `userStamp` is newer; `lastSeenAt` only moves forward;
 * the version rises by one. For stores that merge in the client.
 */
export function mergeDelta(session: StoredSession, delta: SessionDelta): void {
  for (const [name, change] of Object.entries(delta.fields ?? {})) {
    const current = session.fields[name];
    if (!current || newer(change.stamp, current.stamp)) session.fields[name] = { value: change.value, stamp: change.stamp };
  }
  if (delta.lastSeenAt !== undefined) session.lastSeenAt = Math.max(session.lastSeenAt, delta.lastSeenAt);
  if (delta.userId !== undefined && delta.userStamp !== undefined && newer(delta.userStamp, session.userStamp)) {
    session.userId = delta.userId;
    session.userStamp = delta.userStamp;
  }
  session.version += 1;
}

/**
 * Whether a revoke watermark kills this record: a session of the user created at or before the
 * revoke (by the wall-clock part of its stamp; a session created in the same millisecond dies, the
 * safe side). It depends only on the principal and the creation time, not on when the principal
 * was last written, so replicas decide alike whichever arrived first. The exception: a principal
 * moved from the user to another (or to none) without regenerate, concurrently with the revoke, ends
 * dead on replicas that saw the old principal with the watermark and alive elsewhere, until the
 * tombstone travels (destroy wins). Regenerate on every principal change (login, logout) avoids it.
 */
export function covers(watermark: Watermark | null, record: StoredSession): boolean {
  return watermark !== null && record.userId !== null && record.createdAt <= wallOf(watermark.stamp);
}

/** The watermark of a revoke-all at `stamp`: it must outlive every session that could be bound before it. */
export function watermarkAt(stamp: string): Watermark {
  return { stamp, until: wallOf(stamp) + MAX_TIMEOUT_SECONDS * 1000 + TOMBSTONE_GRACE_MS };
}

export function mergeWatermarks(a: Watermark | null, b: Watermark | null): Watermark | null {
  if (a === null) return b;
  if (b === null) return a;
  return { stamp: max(a.stamp, b.stamp), until: Math.max(a.until, b.until) };
}

/** The tombstone a destroy leaves: it guards the key until the absolute expiry plus the tolerated clock skew. */
export function tombstoneOf(record: StoredSession, stamp: string, graceMs = TOMBSTONE_GRACE_MS): TombstoneState {
  return { kind: 'tombstone', stamp, until: record.absoluteExpiresAt + graceMs };
}

/**
 * The tombstone a revoke watermark leaves. It carries no stamp of its own (the watermark has it),
 * so a replica that saw the watermark kill the record and one that got a destroy's tombstone first
 * end with the same tombstone.
 */
export function revokedTombstone(record: StoredSession): TombstoneState {
  return tombstoneOf(record, '');
}

/**
 * What a merged state is at `now` under the user's watermark: a live record the watermark covers
 * becomes its `revokedTombstone`; an expired record or a tombstone past its
 * guard is nothing. `watermark` must be the one of the record's own `userId`.
 */
export function settle(state: KeyState, watermark: Watermark | null, now: number): KeyState {
  if (state === null) return null;
  if (state.kind === 'tombstone') return state.until <= now ? null : state;
  if (expiresAt(state.record) <= now) return null;
  if (covers(watermark, state.record)) return revokedTombstone(state.record);
  return state;
}

/** Two states hold the same thing, stamps included; `version` (local to a replica) is ignored. */
export function sameState(a: KeyState, b: KeyState): boolean {
  if (a === null || b === null) return a === b;
  if (a.kind === 'tombstone' || b.kind === 'tombstone') {
    return a.kind === 'tombstone' && b.kind === 'tombstone' && a.stamp === b.stamp && a.until === b.until;
  }
  const x = a.record;
  const y = b.record;
  if (
    x.createdAt !== y.createdAt ||
    x.lastSeenAt !== y.lastSeenAt ||
    x.idleTimeout !== y.idleTimeout ||
    x.absoluteExpiresAt !== y.absoluteExpiresAt ||
    x.userId !== y.userId ||
    x.userStamp !== y.userStamp
  ) {
    return false;
  }
  const names = Object.keys(x.fields);
  if (names.length !== Object.keys(y.fields).length) return false;
  return names.every((name) => {
    const other = y.fields[name];
    return other !== undefined && Object.hasOwn(y.fields, name) && other.value === x.fields[name]?.value && other.stamp === x.fields[name]?.stamp;
  });
}

/** A deep copy of a state, with prototype-free field maps. */
export function copyState<S extends KeyState>(state: S): S {
  if (state === null || state.kind === 'tombstone') return (state === null ? null : { ...state }) as S;
  return { kind: 'live', record: copyRecord(state.record) } as S;
}

export function copyRecord(record: StoredSession): StoredSession {
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const [name, field] of Object.entries(record.fields)) fields[name] = { value: field.value, stamp: field.stamp };
  return { ...record, fields };
}
