import { configError } from '../core/errors.js';
import { copyRecord, covers, mergeDelta, mergeWatermarks, revokedTombstone, tombstoneOf, watermarkAt } from '../core/record.js';
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
} from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';
import { checkDelta, checkForeignState, checkGrace, checkLimit, checkRecord, checkStamp, checkSweepLimit } from './kit/checks.js';
import { mergeForeignSync } from './kit/replica.js';
import { StoreShell } from './kit/shell.js';

export interface MemoryStoreOptions {
  /** Most records (sessions and tombstones) kept; the least recently used go first. @default 10000 */
  maxEntries?: number;
  /** Most bytes kept (approximate: field names and JSON text plus a fixed overhead). @default 64 MiB */
  maxBytes?: number;
  /** @default Date.now */
  clock?: Clock;
}

type Entry = { kind: 'live'; session: StoredSession; bytes: number } | { kind: 'tombstone'; stamp: string; until: number; bytes: number };

const RECORD_OVERHEAD = 128;

/**
 * Sessions in this process's memory: for tests and development. Nothing survives a restart and
 * nothing is shared between instances. Bounded by entries and bytes with LRU eviction.
 */
export class MemoryStore implements SessionStore {
  readonly name = 'memory';
  readonly capabilities: StoreCapabilities = { nativeTtl: true, cas: true, userIndex: true, sweep: true, scan: true, replica: true };
  readonly #entries = new Map<string, Entry>();
  readonly #byUser = new Map<string, Set<string>>();
  readonly #watermarks = new Map<string, Watermark>();
  readonly #shell = new StoreShell('memory');
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  #bytes = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 1) throw configError('maxEntries', 'must be a positive integer');
    if (!Number.isInteger(this.#maxBytes) || this.#maxBytes < 1) throw configError('maxBytes', 'must be a positive integer');
    this.#clock = options.clock ?? systemClock;
  }

  /** Records held now (live sessions and tombstones), their approximate bytes, the live sessions among them, and the expired ones not yet dropped. */
  get usage(): { entries: number; bytes: number; sessions: number; expired: number } {
    let sessions = 0;
    let expired = 0;
    for (const entry of this.#entries.values()) {
      if (entry.kind !== 'live') continue;
      if (this.#isDead(entry)) expired++;
      else sessions++;
    }
    return { entries: this.#entries.size, bytes: this.#bytes, sessions, expired };
  }

  async load(key: string): Promise<StoredSession | null> {
    const session = this.#live(key);
    if (!session) return null;
    this.#promote(key);
    return copyRecord(session);
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    this.#shell.open();
    checkRecord(session);
    const entry = this.#entries.get(key);
    if (entry && !this.#isDead(entry)) return false;
    if (entry) this.#remove(key);
    this.#putLive(key, copyRecord(session));
    return true;
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    checkDelta(delta);
    const session = this.#live(key);
    if (!session) return { status: 'gone' };
    if (delta.expectVersion !== undefined && delta.expectVersion !== session.version) return { status: 'conflict', version: session.version };
    const previousUser = session.userId;
    mergeDelta(session, delta);
    if (session.userId !== previousUser) {
      this.#unindex(key, previousUser);
      this.#index(key, session.userId);
    }
    const entry = this.#entries.get(key) as Entry;
    this.#bytes += sizeOf(session) - entry.bytes;
    entry.bytes = sizeOf(session);
    this.#promote(key);
    this.#evict();
    return { status: 'ok', version: session.version };
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp = ''): Promise<boolean> {
    checkGrace(tombstoneGraceMs);
    checkStamp(stamp, 'A destroy stamp', true);
    const session = this.#live(key);
    if (!session) return false;
    this.#putTombstone(key, tombstoneOf(session, stamp, tombstoneGraceMs));
    return true;
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    this.#shell.open();
    const summaries: StoredSummary[] = [];
    for (const key of this.#byUser.get(userId) ?? []) {
      const session = this.#live(key);
      if (session) summaries.push({ key, createdAt: session.createdAt, lastSeenAt: session.lastSeenAt, expiresAt: expiresAt(session) });
    }
    return summaries;
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    checkGrace(tombstoneGraceMs);
    if (stamp !== undefined) this.#raiseWatermark(userId, checkStamp(stamp, 'A revoke stamp'));
    let count = 0;
    for (const key of [...(this.#byUser.get(userId) ?? [])]) {
      if (await this.destroy(key, tombstoneGraceMs, stamp)) count++;
    }
    return count;
  }

  async readState(key: string): Promise<KeyState> {
    return this.#state(key);
  }

  async mergeState(key: string, state: LiveState | TombstoneState): Promise<MergeOutcome> {
    checkForeignState(state);
    // Synchronous from read to write: concurrent calls cannot interleave.
    const { next, outcome } = mergeForeignSync(this.#state(key), state, (user) => this.#watermark(user), this.#clock());
    if (!outcome.changed) return outcome;
    this.#remove(key);
    if (next?.kind === 'live') this.#putLive(key, next.record);
    else if (next?.kind === 'tombstone') this.#putTombstone(key, next);
    return outcome;
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    this.#shell.open();
    return this.#watermark(userId);
  }

  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    this.#shell.open();
    const watermark = this.#raiseWatermark(userId, checkStamp(stamp, 'A watermark stamp'));
    let count = 0;
    for (const key of [...(this.#byUser.get(userId) ?? [])]) {
      const session = this.#live(key);
      if (session && covers(watermark, session)) {
        this.#putTombstone(key, revokedTombstone(session));
        count++;
      }
    }
    return count;
  }

  async sweep(limit: number): Promise<number> {
    this.#shell.open();
    checkSweepLimit(limit, this.name);
    let removed = 0;
    for (const [key, entry] of this.#entries) {
      if (removed >= limit) break;
      if (this.#isDead(entry)) {
        this.#remove(key);
        removed++;
      }
    }
    return removed;
  }

  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    this.#shell.open();
    checkLimit(limit, this.name);
    // A development store: sorting on every page is fine at its size.
    const keys = [...this.#entries.keys()].filter((key) => (cursor === null || key > cursor) && this.#live(key) !== null).sort();
    const page = keys.slice(0, limit);
    return { keys: page, cursor: keys.length > page.length ? (page.at(-1) ?? null) : null };
  }

  async close(): Promise<void> {
    this.#shell.close();
    this.#entries.clear();
    this.#byUser.clear();
    this.#watermarks.clear();
    this.#bytes = 0;
  }

  #state(key: string): KeyState {
    const session = this.#live(key);
    if (session) return { kind: 'live', record: copyRecord(session) };
    const entry = this.#entries.get(key);
    return entry?.kind === 'tombstone' ? { kind: 'tombstone', stamp: entry.stamp, until: entry.until } : null;
  }

  #watermark(userId: string): Watermark | null {
    const watermark = this.#watermarks.get(userId);
    if (watermark && watermark.until <= this.#clock()) this.#watermarks.delete(userId);
    return this.#watermarks.get(userId) ?? null;
  }

  #raiseWatermark(userId: string, stamp: string): Watermark {
    const watermark = mergeWatermarks(this.#watermark(userId), watermarkAt(stamp)) as Watermark;
    this.#watermarks.set(userId, watermark);
    return watermark;
  }

  #putLive(key: string, session: StoredSession): void {
    this.#put(key, { kind: 'live', session, bytes: sizeOf(session) });
  }

  #putTombstone(key: string, tombstone: TombstoneState): void {
    this.#remove(key);
    this.#put(key, { kind: 'tombstone', stamp: tombstone.stamp, until: tombstone.until, bytes: RECORD_OVERHEAD });
  }

  /** The live record (not a copy), or null; dead entries are dropped on the way. */
  #live(key: string): StoredSession | null {
    this.#shell.open();
    const entry = this.#entries.get(key);
    if (!entry || entry.kind === 'tombstone') {
      if (entry && this.#isDead(entry)) this.#remove(key);
      return null;
    }
    if (this.#isDead(entry)) {
      // Deltas never create records, so an expired session needs no tombstone to stay dead.
      this.#remove(key);
      return null;
    }
    return entry.session;
  }

  #isDead(entry: Entry): boolean {
    const now = this.#clock();
    return entry.kind === 'tombstone' ? entry.until <= now : expiresAt(entry.session) <= now;
  }

  #put(key: string, entry: Entry): void {
    this.#entries.set(key, entry);
    this.#bytes += entry.bytes;
    if (entry.kind === 'live') this.#index(key, entry.session.userId);
    this.#evict();
  }

  #remove(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
    if (entry.kind === 'live') this.#unindex(key, entry.session.userId);
  }

  #promote(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
  }

  #evict(): void {
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) return;
      this.#remove(oldest.value);
    }
  }

  #index(key: string, userId: string | null): void {
    if (userId === null) return;
    let keys = this.#byUser.get(userId);
    if (!keys) this.#byUser.set(userId, (keys = new Set()));
    keys.add(key);
  }

  #unindex(key: string, userId: string | null): void {
    if (userId === null) return;
    const keys = this.#byUser.get(userId);
    keys?.delete(key);
    if (keys?.size === 0) this.#byUser.delete(userId);
  }
}

export function memoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}

function sizeOf(session: StoredSession): number {
  let bytes = RECORD_OVERHEAD + (session.userId?.length ?? 0);
  for (const [name, field] of Object.entries(session.fields)) bytes += name.length + (field.value?.length ?? 0) + field.stamp.length;
  return bytes;
}
