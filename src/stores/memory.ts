import { configError, SessionError } from '../core/errors.js';
import type { ApplyResult, Clock, SessionDelta, SessionStore, StoreCapabilities, StoredField, StoredSession, StoredSummary } from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';
import { mergeDelta } from './delta.js';

export interface MemoryStoreOptions {
  /** Most records (sessions and tombstones) kept; the least recently used go first. @default 10000 */
  maxEntries?: number;
  /** Most bytes kept (approximate: field names and JSON text plus a fixed overhead). @default 64 MiB */
  maxBytes?: number;
  /** @default Date.now */
  clock?: Clock;
}

type Entry = { kind: 'live'; session: StoredSession; bytes: number } | { kind: 'tombstone'; until: number; bytes: number };

const RECORD_OVERHEAD = 128;

/**
 * Sessions in this process's memory: for tests and development. Nothing survives a restart and
 * nothing is shared between instances. Bounded by entries and bytes with LRU eviction.
 */
export class MemoryStore implements SessionStore {
  readonly name = 'memory';
  readonly capabilities: StoreCapabilities = { nativeTtl: true, cas: true, userIndex: true, sweep: true };
  readonly #entries = new Map<string, Entry>();
  readonly #byUser = new Map<string, Set<string>>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  #bytes = 0;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 1) throw configError('maxEntries', 'must be a positive integer');
    if (!Number.isInteger(this.#maxBytes) || this.#maxBytes < 1) throw configError('maxBytes', 'must be a positive integer');
    this.#clock = options.clock ?? systemClock;
  }

  /** Records held now (live sessions and tombstones), their approximate bytes, and the live sessions among them. */
  get usage(): { entries: number; bytes: number; sessions: number } {
    let sessions = 0;
    for (const entry of this.#entries.values()) if (entry.kind === 'live' && !this.#isDead(entry)) sessions++;
    return { entries: this.#entries.size, bytes: this.#bytes, sessions };
  }

  async load(key: string): Promise<StoredSession | null> {
    const session = this.#live(key);
    if (!session) return null;
    this.#promote(key);
    return copy(session);
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    this.#open();
    const entry = this.#entries.get(key);
    if (entry && !this.#isDead(entry)) return false;
    if (entry) this.#remove(key);
    const stored = copy(session);
    this.#put(key, { kind: 'live', session: stored, bytes: sizeOf(stored) });
    return true;
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
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

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    const session = this.#live(key);
    if (!session) return false;
    this.#remove(key);
    this.#put(key, { kind: 'tombstone', until: session.absoluteExpiresAt + tombstoneGraceMs, bytes: RECORD_OVERHEAD });
    return true;
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    this.#open();
    const summaries: StoredSummary[] = [];
    for (const key of this.#byUser.get(userId) ?? []) {
      const session = this.#live(key);
      if (session) summaries.push({ key, createdAt: session.createdAt, lastSeenAt: session.lastSeenAt, expiresAt: expiresAt(session) });
    }
    return summaries;
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number> {
    let count = 0;
    for (const key of [...(this.#byUser.get(userId) ?? [])]) {
      if (await this.destroy(key, tombstoneGraceMs)) count++;
    }
    return count;
  }

  async sweep(limit: number): Promise<number> {
    this.#open();
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
    this.#open();
    if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() limit must be a positive integer' });
    // A development store: sorting on every page is fine at its size.
    const keys = [...this.#entries.keys()].filter((key) => (cursor === null || key > cursor) && this.#live(key) !== null).sort();
    const page = keys.slice(0, limit);
    return { keys: page, cursor: keys.length > page.length ? (page.at(-1) ?? null) : null };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#entries.clear();
    this.#byUser.clear();
    this.#bytes = 0;
  }

  #open(): void {
    if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: this.name } });
  }

  /** The live record (not a copy), or null; dead entries are dropped on the way. */
  #live(key: string): StoredSession | null {
    this.#open();
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

function copy(session: StoredSession): StoredSession {
  const fields: Record<string, StoredField> = Object.create(null) as Record<string, StoredField>;
  for (const [name, field] of Object.entries(session.fields)) fields[name] = { ...field };
  return { ...session, fields };
}

function sizeOf(session: StoredSession): number {
  let bytes = RECORD_OVERHEAD + (session.userId?.length ?? 0);
  for (const [name, field] of Object.entries(session.fields)) bytes += name.length + (field.value?.length ?? 0) + field.stamp.length;
  return bytes;
}
