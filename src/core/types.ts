/**
 * The store contract. Stores only ever see store keys (hashes of session IDs), never raw IDs.
 * All times are milliseconds since the Unix epoch.
 */

/** One top-level field as kept by a store: its JSON text and the clock stamp of its last write. */
export interface StoredField {
  /** JSON text of the value, or `null` for a deleted field (kept so older writes cannot revive it). */
  value: string | null;
  /** Hybrid-logical-clock stamp (fixed width, compares as a string). */
  stamp: string;
}

export interface SessionMeta {
  createdAt: number;
  lastSeenAt: number;
  /** Idle timeout in milliseconds. */
  idleTimeout: number;
  absoluteExpiresAt: number;
  userId: string | null;
}

/** A live session record as a store returns it. */
export interface StoredSession extends SessionMeta {
  /** Increases with every applied write; the basis of compare-and-swap. Local to one store (replica). */
  version: number;
  fields: Record<string, StoredField>;
  /**
   * Stamp of the last write of `userId`: the principal is a last-writer-wins register of its own.
   * `''` for records written before principals were stamped; it orders before every stamp.
   */
  userStamp: string;
}

/** A change to one session: only the fields a request touched. */
export interface SessionDelta {
  /** Field writes; a `null` value deletes. Each is applied only if its stamp is newer than the stored one. */
  fields: Record<string, StoredField>;
  /** Move the sliding window: stores keep the maximum of the stored and the given value. */
  lastSeenAt?: number;
  /** Set or clear the principal; applied only if `userStamp` is newer than the stored one. */
  userId?: string | null;
  /** Stamp of the `userId` write; required when `userId` is given. */
  userStamp?: string;
  /** Compare-and-swap: apply only if the stored version equals this. */
  expectVersion?: number;
}

export type ApplyResult =
  | { status: 'ok'; version: number }
  /** Absent, expired or destroyed: deltas never create or revive a session. */
  | { status: 'gone' }
  /** `expectVersion` did not match. */
  | { status: 'conflict'; version: number };

export interface StoredSummary {
  key: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
}

export interface StoreCapabilities {
  /** The store expires records by itself (TTL); otherwise `sweep` must be called. */
  nativeTtl: boolean;
  /** `expectVersion` in `apply` is honoured. */
  cas: boolean;
  /** `listByUser` and `destroyByUser` work. */
  userIndex: boolean;
  /** `sweep` removes expired records and dead tombstones. */
  sweep: boolean;
  /** `scan` walks every live record. */
  scan: boolean;
  /** The replica powers: `readState`, `mergeState`, `readWatermark` and `mergeWatermark`. */
  replica: boolean;
}

export interface SessionStore {
  /** A short, stable name for metrics and messages ("memory", "sqlite", "redis"). */
  readonly name: string;
  readonly capabilities: StoreCapabilities;
  /** The live record, or `null` when absent, expired, destroyed or unreadable (unreadable is counted). */
  load(key: string): Promise<StoredSession | null>;
  /** Creates the record if the key is free; `false` if a record or tombstone holds it. */
  create(key: string, session: StoredSession): Promise<boolean>;
  /** Applies a delta atomically; never creates or revives. */
  apply(key: string, delta: SessionDelta): Promise<ApplyResult>;
  /**
   * Destroys the record and leaves a tombstone until its absolute expiry plus `tombstoneGraceMs`,
   * so no later write can revive it. `stamp` (the destroy's clock stamp) is kept on the tombstone
   * by stores with the replica powers. Returns whether a live record was destroyed.
   */
  destroy(key: string, tombstoneGraceMs: number, stamp?: string): Promise<boolean>;
  /** Live sessions of a user. Requires `capabilities.userIndex`. */
  listByUser(userId: string): Promise<StoredSummary[]>;
  /**
   * Destroys all live sessions of a user, each with a tombstone. Requires `capabilities.userIndex`.
   * With `stamp`, a store with the replica powers also raises the user's revoke watermark to it
   * (as `mergeWatermark` does), so sessions of the user that arrive later from other replicas die too.
   */
  destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number>;
  /** Removes up to `limit` expired records and dead tombstones; returns how many. Requires `capabilities.sweep`. */
  sweep(limit: number): Promise<number>;
  /**
   * Optional: up to `limit` keys of live records after `cursor` (null: from the start) in key
   * order (Redis: SCAN order, see below), and the cursor of the next page (null when the walk is complete). Records created
   * during a walk may or may not be visited. Tools that must visit every record (re-encryption
   * after a key rotation) need it; the manager never calls it.
   *
   * `limit` is a hard upper bound on `keys.length`, never a hint. A page may hold fewer keys,
   * even none, while the cursor is not null: walk until it is null. Cursors are opaque: pass
   * back only one the store returned. Memory, SQLite, PostgreSQL, MySQL and Memcached use the
   * last key returned and walk in key order; Redis walks in SCAN order (its cursor encodes the
   * primary and that primary's SCAN cursor) and NATS in stream order; both may return a key
   * twice (Redis when its keyspace shrinks, NATS when a record is rewritten during the walk), so
   * work done per key should be idempotent.
   */
  scan?(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }>;
  /**
   * Optional: the longest the store keeps any record whatever its deadlines (a NATS bucket's
   * `max_age`), in milliseconds, or null for no limit. A session must not outlive it; the
   * session service checks its absolute timeout against it at startup and per request.
   */
  maxLifetimeMs?(): Promise<number | null>;
  /**
   * Replica power: the raw state of a key, tombstones and every stamp included; `null` when the
   * key holds nothing (never written, expired, or a tombstone past its guard). Requires
   * `capabilities.replica`.
   */
  readState?(key: string): Promise<KeyState>;
  /**
   * Replica power: merges a state from another replica into the key atomically, by
   * `mergeRecords` (`src/core/record.ts`): creates the record if the key is free, never revives
   * past a tombstone, and turns a live result into a tombstone when the user's revoke watermark
   * covers it. The foreign `version` is ignored; the store's own rises when the state changes.
   */
  mergeState?(key: string, state: LiveState | TombstoneState): Promise<MergeOutcome>;
  /** Replica power: the user's revoke watermark, or null. */
  readWatermark?(userId: string): Promise<Watermark | null>;
  /**
   * Replica power: raises the user's revoke watermark to `stamp` (it never goes down) and destroys
   * the user's live sessions whose principal was written at or before it (`covers`). Stores
   * without a user index keep the watermark for sessions that arrive later and destroy none now.
   * Returns how many sessions it destroyed.
   */
  mergeWatermark?(userId: string, stamp: string): Promise<number>;
  close(): Promise<void>;
}

/** A live record, as `readState` returns it and `mergeState` takes it. */
export interface LiveState {
  kind: 'live';
  record: StoredSession;
}

/** A destroyed key: it guards the key against every later write until `until`. */
export interface TombstoneState {
  kind: 'tombstone';
  /** The destroy's clock stamp (`''` for tombstones written before they were stamped). */
  stamp: string;
  /** Milliseconds since the epoch: the absolute expiry it guards plus the tolerated clock skew. */
  until: number;
}

/** What a key holds: nothing (`null`), a live record, or a tombstone. */
export type KeyState = LiveState | TombstoneState | null;

/** A revoke-all of one user: every session bound to the user at or before `stamp` is dead. */
export interface Watermark {
  stamp: string;
  /** Milliseconds since the epoch after which no session it covers can be alive. */
  until: number;
}

/** What `mergeState` left in the key, and whether the merge changed anything. */
export interface MergeOutcome {
  state: 'absent' | 'live' | 'tombstone';
  changed: boolean;
}

/** Milliseconds-since-epoch clock; injectable for tests. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/** When a record is dead: the earlier of its idle and absolute deadlines. */
export function expiresAt(meta: Pick<SessionMeta, 'lastSeenAt' | 'idleTimeout' | 'absoluteExpiresAt'>): number {
  return Math.min(meta.lastSeenAt + meta.idleTimeout, meta.absoluteExpiresAt);
}

/**
 * How long a tombstone outlives the session's absolute expiry: the clock skew we tolerate
 * between instances and regions.
 */
export const TOMBSTONE_GRACE_MS = 5 * 60 * 1000;

/** Longest timeout accepted, in seconds (one year). */
export const MAX_TIMEOUT_SECONDS = 366 * 24 * 3600;
