import { configError, SessionError } from '../../core/errors.js';
import { copyRecord } from '../../core/record.js';
import type {
  ApplyResult,
  Clock,
  KeyState,
  LiveState,
  MergeOutcome,
  SessionDelta,
  SessionStore,
  StoreCapabilities,
  StoredSession,
  StoredSummary,
  TombstoneState,
  Watermark,
} from '../../core/types.js';
import { expiresAt, systemClock } from '../../core/types.js';
import { StoreShell } from '../kit/shell.js';
import type { InvalidationSink, InvalidationSource } from './invalidation.js';
import { EntryTable } from './table.js';
import { publishNearCache } from './telemetry.js';
import type { NearCacheEvent } from './telemetry.js';

export interface NearCacheOptions {
  /** Most records cached; the least recently used go first. @default 10000 */
  maxEntries?: number;
  /** Most approximate bytes cached (field names, JSON text and stamps, plus 128 per record). @default 32 MiB */
  maxBytes?: number;
  /**
   * Longest a cached copy is served after it was read from the store, in milliseconds: the
   * staleness bound of last resort, should invalidations go missing without the source noticing
   * (and the only one without a source). `Infinity` turns it off.
   * @default 60000
   */
  maxAgeMs?: number;
  /**
   * Tells the cache about writes by other instances (`redisInvalidation` for Redis). Without
   * one, only this instance's writes invalidate: use that only when nothing else writes the
   * sessions this instance serves.
   */
  invalidation?: InvalidationSource;
  /** @default Date.now */
  clock?: Clock;
}

export const NEAR_CACHE_DEFAULTS = {
  maxEntries: 10_000,
  maxBytes: 32 * 1024 * 1024,
  maxAgeMs: 60_000,
} as const;

export interface NearCacheStats {
  hits: number;
  misses: number;
  invalidations: { local: number; remote: number };
  /** Entries dropped for capacity, for an expired deadline, or for age. */
  evictions: number;
  /** Whole-cache drops: the invalidation source went down, or the server was flushed. */
  flushes: number;
  entries: number;
  bytes: number;
  /** Whether hits are served now (false while the invalidation source is down or not yet up). */
  caching: boolean;
}

/** A load from the inner store in flight. `stale` once anything may have changed the key since it was issued. */
interface Flight {
  stale: boolean;
  readonly fetchedAt: number;
  promise?: Promise<StoredSession | null>;
}

/**
 * A store made of a store: an in-process cache of records in front of `inner`, for deployments
 * with session affinity. A hit costs no round trip; every write goes to `inner` and drops the
 * key's cached copy, so nothing this instance wrote (create, apply, destroy, regenerate, revoke,
 * merge) is ever served stale here; writes elsewhere reach it through the invalidation source.
 *
 * Why a write drops the copy rather than applying the delta to it: that would be exact only if
 * `inner.apply` were exactly `mergeDelta` on the cached copy, and stores made of stores need not
 * be (`encryptedStore` re-seals stale fields in the same write). One miss after a write is the
 * price of never guessing.
 *
 * Why loads carry a flight: a load that was in flight while the key was written or invalidated
 * may bring back the state from before; it answers its caller (it was concurrent with the
 * write) but is not cached.
 */
export class NearCacheStore implements SessionStore {
  readonly name: string;
  readonly capabilities: StoreCapabilities;
  readonly inner: SessionStore;
  readonly scan?: (cursor: string | null, limit: number) => Promise<{ keys: string[]; cursor: string | null }>;
  readonly maxLifetimeMs?: () => Promise<number | null>;
  readonly readState?: (key: string) => Promise<KeyState>;
  readonly mergeState?: (key: string, state: LiveState | TombstoneState) => Promise<MergeOutcome>;
  readonly readWatermark?: (userId: string) => Promise<Watermark | null>;
  readonly mergeWatermark?: (userId: string, stamp: string) => Promise<number>;
  /** The inner store's usage, for the metrics (present when the inner store tells it). */
  readonly usage?: () => unknown;

  readonly #table: EntryTable;
  readonly #flights = new Map<string, Flight>();
  readonly #shell: StoreShell;
  readonly #clock: Clock;
  readonly #maxAgeMs: number;
  readonly #source: InvalidationSource | undefined;
  #caching: boolean;
  readonly #ready: Promise<void>;
  #settleReady: (error?: SessionError) => void = () => {};
  readonly #counts = { hits: 0, misses: 0, local: 0, remote: 0, evictions: 0, flushes: 0 };

  constructor(inner: SessionStore, options: NearCacheOptions = {}) {
    if (!inner || typeof inner.load !== 'function' || typeof inner.apply !== 'function') throw configError('store', 'a SessionStore is required');
    const maxEntries = options.maxEntries ?? NEAR_CACHE_DEFAULTS.maxEntries;
    const maxBytes = options.maxBytes ?? NEAR_CACHE_DEFAULTS.maxBytes;
    const maxAgeMs = options.maxAgeMs ?? NEAR_CACHE_DEFAULTS.maxAgeMs;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw configError('maxEntries', 'must be a positive integer');
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw configError('maxBytes', 'must be a positive integer of bytes');
    if (!(maxAgeMs === Number.POSITIVE_INFINITY || (Number.isSafeInteger(maxAgeMs) && maxAgeMs > 0))) {
      throw configError('maxAgeMs', 'must be a positive integer of milliseconds, or Infinity');
    }
    const source = options.invalidation;
    if (source !== undefined && (typeof source?.start !== 'function' || typeof source.close !== 'function')) {
      throw configError('invalidation', 'must be an invalidation source (start(sink) and close()), e.g. redisInvalidation({ client, prefix })');
    }
    this.inner = inner;
    this.name = inner.name;
    this.capabilities = inner.capabilities;
    this.#shell = new StoreShell(inner.name);
    this.#table = new EntryTable(maxEntries, maxBytes);
    this.#clock = options.clock ?? systemClock;
    this.#maxAgeMs = maxAgeMs;
    this.#source = source;
    this.#caching = source === undefined;
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = (error) => (error ? reject(error) : resolve());
    });
    // Nobody may be awaiting ready(); a close() before the source came up must not be unhandled.
    this.#ready.catch(() => {});
    if (this.#caching) this.#settleReady();

    if (inner.capabilities.scan && typeof inner.scan === 'function') {
      const scan = inner.scan;
      this.scan = (cursor, limit) => this.#pass('scan', () => scan.call(inner, cursor, limit));
    }
    if (typeof inner.maxLifetimeMs === 'function') {
      const maxLifetime = inner.maxLifetimeMs;
      this.maxLifetimeMs = () => this.#pass('maxLifetimeMs', () => maxLifetime.call(inner));
    }
    const { readState, mergeState, readWatermark, mergeWatermark } = inner;
    if (inner.capabilities.replica && readState && mergeState && readWatermark && mergeWatermark) {
      // readState is served by the inner store: it shows tombstones and stamps, which the cache
      // does not keep, and callers of it (replication) want the store's truth, not a copy.
      this.readState = (key) => this.#pass('readState', () => readState.call(inner, key));
      this.mergeState = (key, state) => this.#writeKey('mergeState', key, () => mergeState.call(inner, key, state));
      this.readWatermark = (userId) => this.#pass('readWatermark', () => readWatermark.call(inner, userId));
      this.mergeWatermark = (userId, stamp) => this.#writeUser('mergeWatermark', userId, () => mergeWatermark.call(inner, userId, stamp));
    }
    const innerUsage = (inner as { usage?: unknown }).usage;
    if (innerUsage !== undefined) {
      this.usage = () => {
        const usage = (inner as { usage?: unknown }).usage;
        return typeof usage === 'function' ? (usage as () => unknown).call(inner) : usage;
      };
    }

    source?.start(this.#sink());
  }

  /** Counters since construction, and what the cache holds now. */
  get stats(): NearCacheStats {
    const c = this.#counts;
    return {
      hits: c.hits,
      misses: c.misses,
      invalidations: { local: c.local, remote: c.remote },
      evictions: c.evictions,
      flushes: c.flushes,
      entries: this.#table.size,
      bytes: this.#table.bytes,
      caching: this.#caching,
    };
  }

  /**
   * Resolves once hits are served: at once without an invalidation source, else when the source
   * is first up. Until then every load goes to the inner store. Rejects with ESESS_STORE_CLOSED
   * if the store is closed first.
   */
  ready(): Promise<void> {
    return this.#ready;
  }

  async load(key: string): Promise<StoredSession | null> {
    this.#shell.open('load');
    if (this.#caching) {
      const entry = this.#table.get(key);
      if (entry) {
        const now = this.#clock();
        // The deadline is checked on every hit: no timer, and a record past it is never served.
        const reason = expiresAt(entry.record) <= now ? 'expired' : entry.fetchedAt + this.#maxAgeMs <= now ? 'age' : null;
        if (reason === null) {
          this.#table.promote(key, entry);
          this.#counts.hits++;
          publishNearCache(() => this.#event('hit', 1));
          return copyRecord(entry.record);
        }
        this.#table.delete(key);
        this.#counts.evictions++;
        publishNearCache(() => this.#event('eviction', 1, { reason }));
      }
    }
    this.#counts.misses++;
    publishNearCache(() => this.#event('miss', 1));
    const current = this.#flights.get(key);
    // Joining a load issued after every write and invalidation seen so far answers as that load would.
    const flight = current && !current.stale && current.promise ? current : this.#fly(key);
    const record = await (flight.promise as Promise<StoredSession | null>);
    return record && copyRecord(record);
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#writeKey('create', key, () => this.inner.create(key, session));
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#writeKey('apply', key, () => this.inner.apply(key, delta));
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp?: string): Promise<boolean> {
    return this.#writeKey('destroy', key, () => this.inner.destroy(key, tombstoneGraceMs, stamp));
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    return this.#pass('listByUser', () => this.inner.listByUser(userId));
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    return this.#writeUser('destroyByUser', userId, () => this.inner.destroyByUser(userId, tombstoneGraceMs, stamp));
  }

  /** Sweeps the inner store; cached records past their deadline are dropped too (they were never served). */
  async sweep(limit: number): Promise<number> {
    this.#shell.open('sweep');
    const removed = await this.inner.sweep(limit);
    const now = this.#clock();
    const expired = this.#table.deleteWhere((entry) => expiresAt(entry.record) <= now);
    if (expired > 0) {
      this.#counts.evictions += expired;
      publishNearCache(() => this.#event('eviction', expired, { reason: 'expired' }));
    }
    return removed;
  }

  async close(): Promise<void> {
    if (!this.#shell.close()) return;
    this.#caching = false;
    this.#table.clear();
    this.#staleAll();
    this.#settleReady(new SessionError('ESESS_STORE_CLOSED', { context: { store: this.name, operation: 'ready' } }));
    try {
      await this.#source?.close();
    } finally {
      await this.inner.close();
    }
  }

  #fly(key: string): Flight {
    const flight: Flight = { stale: !this.#caching, fetchedAt: this.#clock() };
    this.#flights.set(key, flight);
    flight.promise = (async () => {
      try {
        const record = await this.inner.load(key);
        // `stale` is re-read after the await: a write, an invalidation or the source going down meanwhile sets it.
        if (record && !flight.stale && this.#caching && expiresAt(record) > this.#clock()) {
          const evicted = this.#table.set(key, copyRecord(record), flight.fetchedAt);
          if (evicted > 0) {
            this.#counts.evictions += evicted;
            publishNearCache(() => this.#event('eviction', evicted, { reason: 'capacity' }));
          }
        }
        return record;
      } finally {
        if (this.#flights.get(key) === flight) this.#flights.delete(key);
      }
    })();
    return flight;
  }

  /**
   * A write of one key: its copy is dropped before the write (so no load in flight caches the
   * state from before) and again after it, whether it succeeded or failed (a failed write may
   * still have landed).
   */
  async #writeKey<T>(operation: string, key: string, write: () => Promise<T>): Promise<T> {
    this.#shell.open(operation);
    this.#dropLocal(key);
    try {
      return await write();
    } finally {
      this.#dropLocal(key);
    }
  }

  /**
   * A write of every session of a user (revoke-all, a revoke watermark): the keys are the inner
   * store's user index's, unknown here, so the cached records of the user are dropped and every
   * load in flight, whatever its key, is kept from caching what it brings back.
   */
  async #writeUser<T>(operation: string, userId: string, write: () => Promise<T>): Promise<T> {
    this.#shell.open(operation);
    this.#dropUser(userId, 'local');
    try {
      return await write();
    } finally {
      this.#dropUser(userId, 'local');
    }
  }

  async #pass<T>(operation: string, call: () => Promise<T>): Promise<T> {
    this.#shell.open(operation);
    return call();
  }

  #dropLocal(key: string): void {
    const flight = this.#flights.get(key);
    if (flight) flight.stale = true;
    if (this.#table.delete(key)) {
      this.#counts.local++;
      publishNearCache(() => this.#event('invalidation', 1, { origin: 'local' }));
    }
  }

  #dropUser(userId: string, origin: 'local' | 'remote'): void {
    this.#staleAll();
    const dropped = this.#table.deleteWhere((entry) => entry.record.userId === userId);
    if (dropped === 0) return;
    this.#counts[origin] += dropped;
    publishNearCache(() => this.#event('invalidation', dropped, { origin }));
  }

  #staleAll(): void {
    for (const flight of this.#flights.values()) flight.stale = true;
  }

  #flush(reason: string): void {
    this.#staleAll();
    const dropped = this.#table.clear();
    this.#counts.flushes++;
    publishNearCache(() => this.#event('flush', dropped, { reason }));
  }

  #sink(): InvalidationSink {
    return {
      invalidate: (keys) => {
        if (this.#shell.closed) return;
        let dropped = 0;
        for (const key of keys) {
          const flight = this.#flights.get(key);
          if (flight) flight.stale = true;
          if (this.#table.delete(key)) dropped++;
        }
        this.#counts.remote += dropped;
        publishNearCache(() => this.#event('invalidation', dropped, { origin: 'remote', keys: keys.length }));
      },
      invalidateUser: (userId) => {
        if (!this.#shell.closed) this.#dropUser(userId, 'remote');
      },
      flush: (reason) => {
        if (!this.#shell.closed) this.#flush(reason);
      },
      down: (reason) => {
        if (this.#shell.closed || !this.#caching) return;
        this.#caching = false;
        this.#flush(reason);
      },
      up: () => {
        if (this.#shell.closed || this.#caching) return;
        // Loads issued while the source was down may hold writes it never reported.
        this.#staleAll();
        this.#table.clear();
        this.#caching = true;
        this.#settleReady();
      },
    };
  }

  #event(event: NearCacheEvent['event'], count: number, extra: Partial<NearCacheEvent> = {}): NearCacheEvent {
    return { store: this.name, event, count, ...extra, entries: this.#table.size, bytes: this.#table.bytes };
  }
}

/**
 * An in-process cache in front of `store`, for deployments with session affinity.
 *
 * @example
 * const client = new Redis(url);
 * const store = nearCache(redisStore({ client }), {
 *   maxEntries: 10_000,
 *   invalidation: redisInvalidation({ client }),
 * });
 */
export function nearCache(store: SessionStore, options?: NearCacheOptions): NearCacheStore {
  return new NearCacheStore(store, options);
}
