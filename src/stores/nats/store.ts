import type { KV } from 'nats';
import { configError, SessionError } from '../../core/errors.js';
import { covers, mergeDelta, mergeWatermarks, newer, revokedTombstone, tombstoneOf, watermarkAt } from '../../core/record.js';
import { publishCorrupt } from '../../core/telemetry.js';
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
import { casLoop, RETRY } from '../kit/cas.js';
import { checkDelta, checkForeignState, checkGrace, checkLimit, checkRecord, checkStamp, checkSweepLimit } from '../kit/checks.js';
import { mergeForeign } from '../kit/replica.js';
import { once, StoreShell } from '../kit/shell.js';
import {
  ABSENT,
  decodeCursor,
  decodeRecord,
  decodeWatermark,
  encodeIndexEntry,
  encodeSession,
  encodeTombstone,
  encodeWatermark,
  indexDeadline,
  indexItem,
  indexPrefix,
  SESSION_PREFIX,
  sessionItem,
  watermarkItem,
} from './codec.js';
import type { Decoded } from './codec.js';
import { natsError, STORE } from './errors.js';
import { NATS_STORE_DEFAULTS } from './url.js';
import { removeEntry, walkBucket, writeEntry } from './bucket.js';
import { sweepBatch } from './sweep.js';

/** What the store uses of a NATS KV bucket view (`await js.views.kv(name)`). */
export type NatsKv = Pick<KV, 'get' | 'put' | 'delete' | 'watch' | 'status'>;

export interface NatsStoreOptions {
  /**
   * A KV bucket with history 1, e.g. `await js.views.kv('sessions', { history: 1, ttl, allow_direct: false })`.
   * The application owns its connection: `close()` leaves it open.
   */
  kv: NatsKv;
  /** Compare-and-swap attempts of one write before ESESS_CONFLICT. @default 32 */
  maxAttempts?: number;
  /**
   * How long one walk of the bucket (a `scan` page, a `sweep` batch, the user-index listing of
   * `listByUser`/`destroyByUser`) may read. A scan page or sweep batch then returns what it has
   * and continues from there next time; a user-index listing fails with ESESS_STORE_UNAVAILABLE.
   * @default 5000
   */
  walkBudgetMs?: number;
  /** Time source for expiry decisions. @default Date.now */
  clock?: Clock;
}

/**
 * Sessions in a NATS JetStream KV bucket (NATS 2.9 or later). One entry per session,
 * `s.<store key>`, holding the record as two lines of JSON (the SQL stores' row, then the fields
 * document). KV has no server-side merge, so a delta is a bounded compare-and-swap loop: `get`
 * (value and revision), merge by stamp here, `update` on that revision.
 *
 * NATS 2.9 has no per-key TTL. Records carry their deadlines and read as absent once dead by the
 * store's clock; `sweep()` deletes expired sessions, dead tombstones, dead watermarks and dead
 * user-index entries (one instance at a time, under a lease in the bucket), and the bucket's
 * `max_age` bounds how long anything lingers. Destroy writes a tombstone `s.<key>` that holds the
 * key until the absolute expiry plus the grace.
 *
 * User index: one entry per (user, session), `u.<sha256(userId)>.<store key>`, written before
 * the session names the user, so a crash between the two leaves an extra entry (filtered when
 * listing: the session must be live and still name the user), never a missing one. A user's
 * revoke watermark is the entry `w.<sha256(userId)>`. See docs/nats.md for the round trips and
 * the trade-offs.
 */
export class NatsStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true };
  readonly #kv: NatsKv;
  readonly #shell = new StoreShell(STORE, { classify: natsError });
  readonly #maxAttempts: number;
  readonly #walkBudgetMs: number;
  readonly #clock: Clock;
  readonly #onClose: (() => Promise<void>) | undefined;
  /** The bucket's `max_age` in milliseconds (0: none), read once before the first operation. */
  #maxAgeMs = 0;
  readonly #ready = once(async () => {
    const status = await this.#kv.status();
    // Walks read every message of the stream: older revisions would pass for current records.
    if (status.history !== 1) throw configError('kv', `the bucket must keep history 1 (it keeps ${status.history})`);
    this.#maxAgeMs = status.ttl;
  });

  constructor(options: NatsStoreOptions, onClose?: () => Promise<void>) {
    const kv = options?.kv;
    if (!kv || (['get', 'put', 'delete', 'watch', 'status'] as const).some((method) => typeof kv[method] !== 'function')) throw configError('kv', 'must be a NATS KV bucket (await js.views.kv(name))');
    const maxAttempts = options.maxAttempts ?? NATS_STORE_DEFAULTS.maxAttempts;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw configError('maxAttempts', 'must be a positive integer');
    const walkBudgetMs = options.walkBudgetMs ?? NATS_STORE_DEFAULTS.walkBudgetMs;
    if (!Number.isInteger(walkBudgetMs) || walkBudgetMs < 1) throw configError('walkBudgetMs', 'must be a positive integer of milliseconds');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw configError('clock', 'must be a function returning milliseconds');
    this.#kv = kv;
    this.#maxAttempts = maxAttempts;
    this.#walkBudgetMs = walkBudgetMs;
    this.#clock = options.clock ?? systemClock;
    this.#onClose = onClose;
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#op('load', async () => this.#live((await this.#read(sessionItem(key))).record));
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#op('create', async () => {
      checkRecord(session);
      const item = sessionItem(key);
      const value = encodeSession(session);
      if (this.#maxAgeMs > 0 && session.absoluteExpiresAt - this.#clock() > this.#maxAgeMs) {
        throw new SessionError('ESESS_CONFIG', {
          message: `The session's absolute timeout exceeds the NATS bucket's max_age (${this.#maxAgeMs} ms), which would drop its user-index entry and tombstone early: raise max_age`,
          context: { store: STORE, maxAgeMs: this.#maxAgeMs },
        });
      }
      if (typeof session.userId === 'string') await this.#index(session.userId, key, session.absoluteExpiresAt);
      return casLoop(STORE, 'create', this.#maxAttempts, async () => {
        if ((await this.#write(item, value, 0)) !== null) return true;
        // Taken: by a live record or tombstone (the key stays taken), or by a dead, unreadable
        // or deleted one (taken over on its revision).
        const found = await this.#read(item, false);
        if (this.#stateOf(found.record) !== null) return false;
        if (found.revision > 0 && (await this.#write(item, value, found.revision)) !== null) return true;
        return RETRY;
      });
    });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#op('apply', async () => {
      checkDelta(delta);
      const item = sessionItem(key);
      let indexed = false;
      return casLoop<ApplyResult>(STORE, 'apply', this.#maxAttempts, async () => {
        const { revision, record } = await this.#read(item);
        const session = this.#live(record);
        if (!session) return { status: 'gone' };
        if (delta.expectVersion !== undefined && delta.expectVersion !== session.version) return { status: 'conflict', version: session.version };
        const moves = typeof delta.userId === 'string' && delta.userId !== session.userId && delta.userStamp !== undefined && newer(delta.userStamp, session.userStamp);
        if (!indexed && moves) {
          await this.#index(delta.userId as string, key, session.absoluteExpiresAt);
          indexed = true;
        }
        mergeDelta(session, delta);
        return (await this.#write(item, encodeSession(session), revision)) === null ? RETRY : { status: 'ok', version: session.version };
      });
    });
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp = ''): Promise<boolean> {
    return this.#op('destroy', async () => {
      const grace = checkGrace(tombstoneGraceMs);
      checkStamp(stamp, 'A destroy stamp', true);
      return this.#kill('destroy', key, (session) => tombstoneOf(session, stamp, grace));
    });
  }

  /** Live sessions of a user, oldest first. */
  async listByUser(userId: string): Promise<StoredSummary[]> {
    return this.#op('listByUser', async () => {
      const keys = await this.#indexed(userId);
      const found = await Promise.all(keys.map(async (key) => ({ key, session: this.#live((await this.#read(sessionItem(key))).record) })));
      const summaries: StoredSummary[] = [];
      for (const { key, session } of found) {
        if (session?.userId === userId) summaries.push({ key, createdAt: session.createdAt, lastSeenAt: session.lastSeenAt, expiresAt: expiresAt(session) });
      }
      return summaries.sort((a, b) => a.createdAt - b.createdAt);
    });
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    return this.#op('destroyByUser', async () => {
      const grace = checkGrace(tombstoneGraceMs);
      if (stamp !== undefined) await this.#raiseWatermark('destroyByUser', userId, checkStamp(stamp, 'A revoke stamp'));
      const keys = await this.#indexed(userId);
      const destroyed = await Promise.all(keys.map((key) => this.#kill('destroyByUser', key, (session) => (session.userId === userId ? tombstoneOf(session, stamp ?? '', grace) : null))));
      return destroyed.filter(Boolean).length;
    });
  }

  /**
   * Deletes up to `limit` expired sessions, dead tombstones, dead watermarks and dead user-index
   * entries, each on the revision it was read at (a record written meanwhile stays). Batches walk
   * the bucket in stream order from where the previous batch of any instance stopped (the lease
   * entry keeps the position); at the end of the stream the next batch starts over. Returns 0 at
   * once while another instance holds the lease (`sweep.ts`).
   */
  async sweep(limit: number): Promise<number> {
    return this.#op('sweep', async () => {
      checkSweepLimit(limit, STORE);
      if (limit === 0) return 0;
      return sweepBatch(this.#kv, this.#walkBudgetMs, this.#clock, limit);
    });
  }

  /**
   * Up to `limit` keys of live sessions, walking the bucket in stream order (the order of each
   * record's last write) from `cursor`. A record written during the walk moves to the end of the
   * stream and is visited again there, so a key may come twice (work per key should be
   * idempotent) but none that lives throughout the walk is missed. A page may hold fewer keys,
   * even none, when the walk ran out of `walkBudgetMs`; the walk is done when the cursor is null.
   */
  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    return this.#op('scan', async () => {
      checkLimit(limit, STORE);
      const keys = new Set<string>();
      const walked = await walkBucket(this.#kv, this.#walkBudgetMs, `${SESSION_PREFIX}>`, decodeCursor(cursor), (entry) => {
        if (entry.operation === 'PUT' && this.#live(decodeRecord(entry.value))) keys.add(entry.key.slice(SESSION_PREFIX.length));
        return keys.size < limit;
      });
      return { keys: [...keys], cursor: walked.next === null ? null : `n1.${walked.next}` };
    });
  }

  /** The bucket's `max_age`, or null when it has none: records never outlive it. */
  async maxLifetimeMs(): Promise<number | null> {
    return this.#op('maxLifetimeMs', async () => (this.#maxAgeMs > 0 ? this.#maxAgeMs : null));
  }

  async readState(key: string): Promise<KeyState> {
    return this.#op('readState', async () => this.#stateOf((await this.#read(sessionItem(key))).record));
  }

  /**
   * Merges in a compare-and-swap loop: `get` (value and revision), `mergeForeign` here, then the
   * result written on that revision (0 when the key has no entry: a create), or the entry deleted
   * when nothing is left. A record that gets a user is indexed first, as in `create`.
   */
  async mergeState(key: string, state: LiveState | TombstoneState): Promise<MergeOutcome> {
    return this.#op('mergeState', async () => {
      checkForeignState(state);
      const item = sessionItem(key);
      const { next, outcome } = await casLoop(STORE, 'mergeState', this.#maxAttempts, async () => {
        const { revision, record } = await this.#read(item);
        const current = this.#stateOf(record);
        const merged = await mergeForeign(current, state, (user) => this.#watermark(user), this.#clock());
        const { next: result } = merged;
        if (!merged.outcome.changed) return merged;
        const before = current?.kind === 'live' ? current.record.userId : null;
        if (result?.kind === 'live' && result.record.userId !== null && result.record.userId !== before) await this.#index(result.record.userId, key, result.record.absoluteExpiresAt);
        if (result === null) {
          if (!(await this.#remove(item, revision))) return RETRY;
        } else {
          const value = result.kind === 'live' ? encodeSession(result.record) : encodeTombstone(result.stamp, result.until);
          if ((await this.#write(item, value, revision)) === null) return RETRY;
        }
        // Only tidies the index, as in destroy.
        if (before !== null && result?.kind !== 'live') await this.#kv.delete(indexItem(before, key)).catch(() => undefined);
        return merged;
      });
      // A revoke raised after the merge read the watermark walked the index before this record
      // was written, perhaps: read it again, and the record dies if it is covered now.
      const user = next?.kind === 'live' ? next.record.userId : null;
      if (!outcome.changed || next?.kind !== 'live' || user === null) return outcome;
      const watermark = await this.#watermark(user);
      if (!covers(watermark, next.record)) return outcome;
      const killed = await this.#kill('mergeState', key, (session) => (session.userId === user && covers(watermark, session) ? revokedTombstone(session) : null));
      return killed ? { state: 'tombstone', changed: true } : outcome;
    });
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    return this.#op('readWatermark', async () => this.#watermark(userId));
  }

  /** Raises the user's watermark entry, then destroys the user's indexed sessions it covers. */
  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    return this.#op('mergeWatermark', async () => {
      const watermark = await this.#raiseWatermark('mergeWatermark', userId, checkStamp(stamp, 'A watermark stamp'));
      const keys = await this.#indexed(userId);
      const killed = await Promise.all(
        keys.map((key) => this.#kill('mergeWatermark', key, (session) => (session.userId === userId && covers(watermark, session) ? revokedTombstone(session) : null))),
      );
      return killed.filter(Boolean).length;
    });
  }

  async close(): Promise<void> {
    if (!this.#shell.close()) return;
    await this.#onClose?.();
  }

  /** Every operation: refused after close, run once the bucket is checked, and any failure typed with the operation. */
  async #op<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return this.#shell.run(operation, async () => {
      try {
        await this.#whenReady();
        return await fn();
      } catch (error) {
        throw error instanceof SessionError ? natsError(error, operation) : error;
      }
    });
  }

  /** Reads the bucket's settings once; a failure is retried by the next call. */
  #whenReady(): Promise<void> {
    return this.#ready();
  }

  async #read(item: string, count = true): Promise<{ revision: number; record: Decoded }> {
    const entry = await this.#kv.get(item);
    if (!entry || entry.operation !== 'PUT') return { revision: entry?.revision ?? 0, record: ABSENT };
    const record = decodeRecord(entry.value);
    if (record.kind === 'corrupt' && count) publishCorrupt(STORE);
    return { revision: entry.revision, record };
  }

  #write(item: string, value: string, previous: number | undefined): Promise<number | null> {
    return writeEntry(this.#kv, item, value, previous);
  }

  #remove(item: string, revision: number): Promise<boolean> {
    return removeEntry(this.#kv, item, revision);
  }

  /**
   * Replaces the live session under `key` by the tombstone `decide` gives it (none: leave it) in
   * a compare-and-swap loop; whether it destroyed a live session. Destroy must win: after losing
   * the race this often, it writes the tombstone over whatever is there.
   */
  async #kill(operation: string, key: string, decide: (session: StoredSession) => TombstoneState | null): Promise<boolean> {
    const item = sessionItem(key);
    return casLoop(STORE, operation, this.#maxAttempts, async (attempt) => {
      const { revision, record } = await this.#read(item);
      const session = this.#live(record);
      const tombstone = session && decide(session);
      if (!session || !tombstone) return false;
      const previous = attempt >= this.#maxAttempts ? undefined : revision;
      if ((await this.#write(item, encodeTombstone(tombstone.stamp, tombstone.until), previous)) === null) return RETRY;
      if (session.userId !== null) {
        // Only tidies the index: an entry of a dead session is skipped when listing and swept at
        // the session's absolute expiry, so a failure here must not undo a destroy that happened.
        await this.#kv.delete(indexItem(session.userId, key)).catch(() => undefined);
      }
      return true;
    });
  }

  async #index(userId: string, key: string, absoluteExpiresAt: number): Promise<void> {
    await this.#kv.put(indexItem(userId, key), encodeIndexEntry(absoluteExpiresAt));
  }

  /** The store keys in a user's index whose sessions may still be live. */
  async #indexed(userId: string): Promise<string[]> {
    const prefix = indexPrefix(userId);
    const now = this.#clock();
    const keys = new Set<string>();
    const walked = await walkBucket(this.#kv, this.#walkBudgetMs, `${prefix}>`, 1, (entry) => {
      if (entry.operation === 'PUT' && indexDeadline(entry.value) > now) keys.add(entry.key.slice(prefix.length));
      else keys.delete(entry.key.slice(prefix.length));
      return true;
    });
    if (walked.next !== null) {
      throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: `The user index could not be read within ${this.#walkBudgetMs} ms`, context: { store: STORE, kind: 'timeout' } });
    }
    return [...keys];
  }

  /** The user's watermark, or null (none, past its time, or unreadable: counted as corrupt). */
  async #watermark(userId: string): Promise<Watermark | null> {
    const entry = await this.#kv.get(watermarkItem(userId));
    if (entry?.operation !== 'PUT') return null;
    const watermark = decodeWatermark(entry.value);
    if (!watermark) publishCorrupt(STORE);
    return watermark && watermark.until > this.#clock() ? watermark : null;
  }

  /** Raises the user's watermark entry to `stamp` (compare-and-swap); the watermark now stored. */
  async #raiseWatermark(operation: string, userId: string, stamp: string): Promise<Watermark> {
    const item = watermarkItem(userId);
    return casLoop(STORE, operation, this.#maxAttempts, async () => {
      const entry = await this.#kv.get(item);
      const read = entry?.operation === 'PUT' ? decodeWatermark(entry.value) : null;
      const stored = read && read.until > this.#clock() ? read : null;
      const raised = mergeWatermarks(stored, watermarkAt(stamp)) as Watermark;
      if (stored?.stamp === raised.stamp && stored.until === raised.until) return raised;
      return (await this.#write(item, encodeWatermark(raised), entry?.revision ?? 0)) === null ? RETRY : raised;
    });
  }

  #live(record: Decoded): StoredSession | null {
    return record.kind === 'live' && expiresAt(record.session) > this.#clock() ? record.session : null;
  }

  /** What a key holds by the store's clock: a live session, a tombstone before its time, else nothing. Also what keeps a key from `create`. */
  #stateOf(record: Decoded): KeyState {
    const session = this.#live(record);
    if (session) return { kind: 'live', record: session };
    return record.kind === 'tombstone' && record.until > this.#clock() ? { kind: 'tombstone', stamp: record.stamp, until: record.until } : null;
  }
}

export function natsStore(options: NatsStoreOptions): NatsStore {
  return new NatsStore(options);
}
