import type { StoredSession } from '../../core/types.js';

/** One cached record: a private copy (never handed out), its approximate size, when it was read. */
export interface Entry {
  readonly record: StoredSession;
  readonly bytes: number;
  /** The clock when the read that brought it was issued (so `maxAgeMs` errs on the early side). */
  readonly fetchedAt: number;
}

const ENTRY_OVERHEAD = 128;

/**
 * The cached records, least recently used first (a Map keeps insertion order, so a hit moves its
 * entry to the end), bounded by entries and by approximate bytes.
 */
export class EntryTable {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxEntries: number, maxBytes: number) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get(key: string): Entry | undefined {
    return this.#entries.get(key);
  }

  /** Marks a hit: the entry becomes the most recently used. */
  promote(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
  }

  /**
   * Caches `record` (already a private copy) and returns how many entries it evicted; a record
   * larger than the whole byte budget is not cached (and evicts nothing).
   */
  set(key: string, record: StoredSession, fetchedAt: number): number {
    const bytes = sizeOf(record);
    this.delete(key);
    if (bytes > this.#maxBytes) return 0;
    this.#entries.set(key, { record, bytes, fetchedAt });
    this.#bytes += bytes;
    let evicted = 0;
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
      evicted++;
    }
    return evicted;
  }

  delete(key: string): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
    return true;
  }

  /** Drops the entries `drop` picks; returns how many. */
  deleteWhere(drop: (entry: Entry) => boolean): number {
    let count = 0;
    for (const [key, entry] of this.#entries) {
      if (drop(entry)) {
        this.delete(key);
        count++;
      }
    }
    return count;
  }

  clear(): number {
    const count = this.#entries.size;
    this.#entries.clear();
    this.#bytes = 0;
    return count;
  }
}

/** Approximate bytes of a record, counted as the memory store counts them: its text plus a fixed overhead. */
export function sizeOf(record: StoredSession): number {
  let bytes = ENTRY_OVERHEAD + (record.userId?.length ?? 0) + record.userStamp.length;
  for (const [name, field] of Object.entries(record.fields)) bytes += name.length + (field.value?.length ?? 0) + field.stamp.length;
  return bytes;
}
