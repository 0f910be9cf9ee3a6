import { SessionError } from './errors.js';
import type { Clock, SessionMeta } from './types.js';
import { expiresAt, systemClock, TOMBSTONE_GRACE_MS } from './types.js';

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

/**
 * Authenticator assurance levels (NIST SP 800-63B), weakest first: `aal1` one factor, `aal2`
 * two factors, `aal3` a hardware-bound, phishing-resistant authenticator. A check for a level
 * accepts that level and every higher one.
 */
export const AUTH_LEVELS = ['aal1', 'aal2', 'aal3'] as const;
export type AuthLevel = (typeof AUTH_LEVELS)[number];

/** What `markAuthenticated()` takes. */
export interface AuthenticationInput {
  /**
   * How the user proved who they are, as a short word of your choosing: `'password'`,
   * `'webauthn'`, `'otp'`, `'sso'`. 1 to 32 letters, digits, `.`, `_` or `-`; it goes into events.
   */
  method: string;
  /** @default 'aal1' */
  level?: AuthLevel;
}

/** The latest authentication of a session. */
export interface Authentication {
  at: Date;
  method: string;
  level: AuthLevel;
}

/** @internal An authentication as the record keeps it. */
export interface StoredAuthentication {
  at: number;
  method: string;
  level: AuthLevel;
}

const METHOD_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

/** @internal Validates an authentication from a caller (throws) or from a record (`null` when it is not one). */
export function authenticationOf(value: unknown): StoredAuthentication | null {
  if (typeof value !== 'object' || value === null) return null;
  const { at, method, level } = value as Record<string, unknown>;
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) return null;
  if (typeof method !== 'string' || !METHOD_PATTERN.test(method)) return null;
  if (typeof level !== 'string' || !(AUTH_LEVELS as readonly string[]).includes(level)) return null;
  return { at, method, level: level as AuthLevel };
}

/** @internal The rank of a level (0 = weakest), or -1 for anything else. */
export function levelRank(level: unknown): number {
  return (AUTH_LEVELS as readonly unknown[]).indexOf(level);
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
  /** The principal as last stored (what a refused save falls back to). */
  #savedUserId: string | null;
  #auth: StoredAuthentication | null;
  #authChanged = false;
  readonly #clock: Clock;
  #isNew: boolean;
  #destroyed = false;
  /** Store version this state was loaded at (compare-and-swap). */
  version: number;

  /** @internal Sessions are made by the manager. */
  constructor(
    id: string,
    meta: SessionMeta,
    values: Map<string, unknown>,
    loadedSizes: Map<string, number>,
    version: number,
    isNew: boolean,
    auth: StoredAuthentication | null = null,
    clock: Clock = systemClock,
  ) {
    this.#id = id;
    this.#meta = meta;
    this.#savedUserId = isNew ? null : meta.userId;
    this.#auth = auth;
    this.#clock = clock;
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

  /** Whether this request changed data, the principal or the authentication state. */
  get isDirty(): boolean {
    return this.#changed.size > 0 || this.#userIdChanged || this.#authChanged;
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

  /** When the session was last authenticated (`markAuthenticated()`), or null: an anonymous session was never marked. */
  get authenticatedAt(): Date | null {
    return this.#auth === null ? null : new Date(this.#auth.at);
  }

  /** The latest authentication: when, how and at which assurance level; null for an anonymous session. */
  get authentication(): Authentication | null {
    return this.#auth === null ? null : { at: new Date(this.#auth.at), method: this.#auth.method, level: this.#auth.level };
  }

  /**
   * Records that the user just authenticated, written with the next save like a field (it
   * replicates and merges like one) but kept apart from the data: `get`, `keys` and `toJSON`
   * never show it and it counts against no size limit. Call it after `regenerate()` on login,
   * and again on step-up (a higher `level`) or re-authentication. Each call replaces the
   * previous authentication, so checks always judge the latest one. `regenerate()` keeps it
   * (unless `keepData: false`).
   *
   * @example
   * await sessions.regenerate(session);
   * session.userId = user.id;
   * session.markAuthenticated({ method: 'password', level: 'aal1' });
   */
  markAuthenticated(input: AuthenticationInput): void {
    const level = input?.level ?? 'aal1';
    const auth = authenticationOf({ at: this.#clock(), method: input?.method, level });
    if (auth === null) {
      throw new SessionError('ESESS_INVALID_INPUT', {
        message: `markAuthenticated() takes { method, level? }: method is 1 to 32 letters, digits, ".", "_" or "-"; level is one of ${AUTH_LEVELS.join(', ')}`,
        context: { field: 'authentication' },
      });
    }
    this.#auth = auth;
    this.#authChanged = true;
  }

  /**
   * Whether the session was authenticated at most `seconds` ago (and, with `level`, at that
   * level or higher). An authentication stamped in the future beyond the tolerated clock skew
   * does not count.
   */
  authenticatedWithin(seconds: number, options: { level?: AuthLevel } = {}): boolean {
    if (typeof seconds !== 'number' || !(seconds >= 0)) {
      throw new SessionError('ESESS_INVALID_INPUT', { message: 'authenticatedWithin(seconds): seconds must be a number >= 0', context: { field: 'seconds' } });
    }
    const wanted = options.level === undefined ? 0 : levelRank(options.level);
    if (wanted < 0) throw new SessionError('ESESS_INVALID_INPUT', { message: `level must be one of ${AUTH_LEVELS.join(', ')}`, context: { field: 'level' } });
    const auth = this.#auth;
    if (auth === null || levelRank(auth.level) < wanted) return false;
    const age = this.#clock() - auth.at;
    return age <= seconds * 1000 && age >= -TOMBSTONE_GRACE_MS;
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

  /** @internal The authentication as the record keeps it. */
  get storedAuthentication(): StoredAuthentication | null {
    return this.#auth;
  }

  /** @internal */
  get authChanged(): boolean {
    return this.#authChanged;
  }

  /** @internal A save that may not bind the principal: back to the one last stored. */
  revertUserId(): void {
    this.#meta = { ...this.#meta, userId: this.#savedUserId };
    this.#userIdChanged = false;
  }

  /** @internal Regenerate without data: the new ID starts unauthenticated too. */
  forgetAuthentication(): void {
    this.#auth = null;
    this.#authChanged = false;
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
  markSaved(version: number, meta: SessionMeta, written: ReadonlyMap<string, Written>, auth?: StoredAuthentication | null): void {
    this.version = version;
    if (this.#meta.userId === meta.userId) this.#userIdChanged = false;
    this.#savedUserId = meta.userId;
    if (auth !== undefined && auth === this.#auth) this.#authChanged = false;
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
    this.#authChanged = false;
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
