import type { SessionMeta } from './types.js';
import { expiresAt } from './types.js';

/**
 * The shape of session data. Extend it by declaration merging:
 *
 * @example
 * declare module 'elastic-session' {
 *   interface SessionData { cart: string[]; visits: number }
 * }
 */
export interface SessionData {
  [field: string]: unknown;
}

/** Marks a field deleted in the change set. */
export const DELETED: unique symbol = Symbol('deleted');

/** @internal What a write carried for one field: the value encoded (or DELETED) and its encoded size. */
export interface Written {
  value: unknown;
  size: number;
}

/**
 * One session as seen by one request: its data, metadata, and what this request changed.
 * Only the manager reads and writes stores; a Session is plain state.
 */
export class Session<Data extends SessionData = SessionData> {
  #id: string;
  #meta: SessionMeta;
  readonly #values: Map<string, unknown>;
  /** Encoded size of each field as loaded, for size limits without re-encoding untouched fields. */
  readonly #loadedSizes: Map<string, number>;
  /** Field names set or deleted by this request. */
  readonly #changed = new Set<string>();
  #userIdChanged = false;
  #isNew: boolean;
  #destroyed = false;
  /** Store version this state was loaded at (compare-and-swap). */
  version: number;

  /** @internal Sessions are made by the manager. */
  constructor(id: string, meta: SessionMeta, values: Map<string, unknown>, loadedSizes: Map<string, number>, version: number, isNew: boolean) {
    this.#id = id;
    this.#meta = meta;
    this.#values = values;
    this.#loadedSizes = loadedSizes;
    this.version = version;
    this.#isNew = isNew;
  }

  /** The session ID. Secret: it belongs in the cookie only, never in logs. */
  get id(): string {
    return this.#id;
  }

  get isNew(): boolean {
    return this.#isNew;
  }

  get isDestroyed(): boolean {
    return this.#destroyed;
  }

  /** Whether this request changed data or the principal. */
  get isDirty(): boolean {
    return this.#changed.size > 0 || this.#userIdChanged;
  }

  get createdAt(): Date {
    return new Date(this.#meta.createdAt);
  }

  get lastSeenAt(): Date {
    return new Date(this.#meta.lastSeenAt);
  }

  get expiresAt(): Date {
    return new Date(expiresAt(this.#meta));
  }

  get absoluteExpiresAt(): Date {
    return new Date(this.#meta.absoluteExpiresAt);
  }

  get userId(): string | null {
    return this.#meta.userId;
  }

  set userId(value: string | null) {
    if (value === this.#meta.userId) return;
    this.#meta = { ...this.#meta, userId: value };
    this.#userIdChanged = true;
  }

  get<K extends keyof Data & string>(field: K): Data[K] | undefined {
    return this.#values.get(field) as Data[K] | undefined;
  }

  has(field: string): boolean {
    return this.#values.has(field);
  }

  set<K extends keyof Data & string>(field: K, value: Data[K]): void {
    if (value === undefined) {
      this.delete(field);
      return;
    }
    this.#values.set(field, value);
    this.#changed.add(field);
  }

  /**
   * Marks a field changed after mutating its value in place (`session.get('cart').push(x)`),
   * so the next save writes it.
   */
  markChanged(field: keyof Data & string): void {
    if (this.#values.has(field)) this.#changed.add(field);
  }

  delete(field: keyof Data & string): void {
    this.#values.delete(field);
    this.#changed.add(field);
  }

  keys(): string[] {
    return [...this.#values.keys()];
  }

  /** A plain-object copy of the data. */
  toJSON(): Partial<Data> {
    return Object.fromEntries(this.#values) as Partial<Data>;
  }

  /** @internal */
  get meta(): SessionMeta {
    return this.#meta;
  }

  /** @internal The changed fields: their current value, or DELETED. */
  changes(): Map<string, unknown> {
    const changes = new Map<string, unknown>();
    for (const field of this.#changed) changes.set(field, this.#values.has(field) ? this.#values.get(field) : DELETED);
    return changes;
  }

  /** @internal */
  get userIdChanged(): boolean {
    return this.#userIdChanged;
  }

  /** @internal */
  loadedSize(field: string): number {
    return this.#loadedSizes.get(field) ?? 0;
  }

  /** @internal All current values, for copying into a new record. */
  values(): ReadonlyMap<string, unknown> {
    return this.#values;
  }

  /**
   * @internal Called by the manager after a successful write of `written` (field → the value
   * that was encoded, or DELETED) and `meta`. A field or principal changed again while the
   * write was in flight stays changed, so the next save writes it.
   */
  markSaved(version: number, meta: SessionMeta, written: ReadonlyMap<string, Written>): void {
    this.version = version;
    if (this.#meta.userId === meta.userId) this.#userIdChanged = false;
    this.#meta = { ...meta, userId: this.#meta.userId };
    for (const [field, { value, size }] of written) {
      if (value === DELETED) this.#loadedSizes.delete(field);
      else this.#loadedSizes.set(field, size);
      const current = this.#values.has(field) ? this.#values.get(field) : DELETED;
      if (current === value) this.#changed.delete(field);
    }
    this.#isNew = false;
  }

  /** @internal */
  markDestroyed(): void {
    this.#destroyed = true;
    this.#changed.clear();
    this.#userIdChanged = false;
  }

  /** @internal Regenerate: same data under a new ID. */
  reassign(id: string, meta: SessionMeta, isNew: boolean): void {
    this.#id = id;
    this.#meta = meta;
    this.#isNew = isNew;
  }

  /** @internal Regenerate without data. */
  clear(): void {
    for (const field of this.#values.keys()) this.#changed.add(field);
    this.#values.clear();
  }
}
