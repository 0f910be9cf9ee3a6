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
  /** Increases with every applied write; the basis of compare-and-swap. */
  version: number;
  fields: Record<string, StoredField>;
}

/** A change to one session: only the fields a request touched. */
export interface SessionDelta {
  /** Field writes; a `null` value deletes. Each is applied only if its stamp is newer than the stored one. */
  fields: Record<string, StoredField>;
  /** Move the sliding window: stores keep the maximum of the stored and the given value. */
  lastSeenAt?: number;
  /** Set or clear the principal. */
  userId?: string | null;
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
   * so no later write can revive it. Returns whether a live record was destroyed.
   */
  destroy(key: string, tombstoneGraceMs: number): Promise<boolean>;
  /** Live sessions of a user. Requires `capabilities.userIndex`. */
  listByUser(userId: string): Promise<StoredSummary[]>;
  /** Destroys all live sessions of a user, each with a tombstone. Requires `capabilities.userIndex`. */
  destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number>;
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
  close(): Promise<void>;
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
