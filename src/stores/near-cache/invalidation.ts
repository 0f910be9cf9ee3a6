/**
 * How a near-cache learns that a cached key changed elsewhere. A source watches the writes of
 * other instances (Redis client tracking, the change log) and calls the sink; the near-cache is
 * the sink. The contract a source keeps is what makes the cache safe to serve: while it is `up`,
 * every write by another writer to a key is eventually reported by `invalidate` (or `flush`);
 * when it can no longer promise that (a dropped connection, a gap in a log), it calls `down`
 * first, and `up` again only once it promises it for every write from then on.
 */
export interface InvalidationSink {
  /** Store keys another writer changed (or the server expired): their cached copies are dropped. */
  invalidate(keys: readonly string[]): void;
  /** Every cached session of this user may be stale (a revoke-all seen on a change log). */
  invalidateUser(userId: string): void;
  /** Every cached copy may be stale (the server was flushed): drop them all; caching goes on. */
  flush(reason: string): void;
  /** The source stops knowing about writes: drop everything and stop caching until `up()`. */
  down(reason: string): void;
  /** The source reports every write from now on: caching (re)starts. */
  up(): void;
}

export interface InvalidationSource {
  /** A short name for messages ("redis-tracking"). */
  readonly name: string;
  /**
   * Starts reporting to `sink`; called once, by the near-cache's constructor. The source calls
   * `up()` when it is ready (never synchronously inside `start`) and reports its failures as
   * `down()`, never by throwing.
   */
  start(sink: InvalidationSink): void;
  /** Stops reporting and releases what the source opened. */
  close(): Promise<void>;
}
