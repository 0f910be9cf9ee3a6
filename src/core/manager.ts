import { clearingCookie, cookieValues, MAX_COOKIE_HEADER, resolveCookieOptions, serializeCookie } from './cookie.js';
import type { CookieOptions } from './cookie.js';
import { configError, SessionError } from './errors.js';
import { HybridClock } from './hlc.js';
import { isProductionMode, isWeakSecret } from './secrets.js';
import { generateId, handleOf, isWellFormedId, Keyring, storeKeyOf } from './ids.js';
import { DEFAULT_DATA_LIMITS, encodeValue, isUnsafeKey, safeJsonParse } from './json.js';
import type { DataLimits } from './json.js';
import { DELETED, Session } from './session.js';
import type { SessionData, Written } from './session.js';
import { publishConflict, publishCookieRejected, publishCorrupt, publishSession, traceStore } from './telemetry.js';
import type { Clock, SessionDelta, SessionMeta, SessionStore, StoredField, StoredSession } from './types.js';
import { expiresAt, systemClock, TOMBSTONE_GRACE_MS } from './types.js';

export interface SessionManagerOptions {
  store: SessionStore;
  /** Cookie signing secrets, newest first, each at least 32 bytes. The first signs; all verify. */
  secrets: readonly (string | Buffer)[];
  /** Key for HMAC-SHA-256 store keys; without it store keys are SHA-256 of the ID. */
  hashKey?: string | Buffer;
  /** Seconds without activity after which a session dies. @default 1800 */
  idleTimeout?: number;
  /** Seconds after creation after which a session dies whatever its activity. @default 86400 */
  absoluteTimeout?: number;
  /** Fraction of the idle timeout that must pass before a read-only request writes `lastSeenAt`. @default 0.1 */
  touchAfter?: number;
  cookie?: Partial<CookieOptions>;
  /** Plain-http cookies (no Secure, no __Host- prefix) for development on localhost. Never in production. @default false */
  insecureLocalhostDevelopment?: boolean;
  limits?: Partial<DataLimits>;
  /** Compare-and-swap attempts in `update()` before ESESS_CONFLICT. @default 10 */
  maxRetries?: number;
  /** @default Date.now */
  clock?: Clock;
  /** Refuse example and low-entropy `secrets` and `hashKey`. @default NODE_ENV === 'production' */
  production?: boolean;
}

export const DEFAULT_OPTIONS = {
  idleTimeout: 1800,
  absoluteTimeout: 86_400,
  touchAfter: 0.1,
  maxRetries: 10,
} as const;

/** Longest timeout accepted, in seconds (one year). */
export const MAX_TIMEOUT_SECONDS = 366 * 24 * 3600;
const MAX_FIELD_NAME = 256;
const MAX_USER_ID = 512;

export interface CreateOptions<Data extends SessionData = SessionData> {
  data?: Partial<Data>;
  userId?: string | null;
  /** Seconds; overrides the manager's idle timeout for this session. */
  idleTimeout?: number;
  /** Seconds; overrides the manager's absolute timeout for this session. */
  absoluteTimeout?: number;
}

export interface SaveOptions {
  /** Compare-and-swap: fail with ESESS_CONFLICT unless the stored version is still this one. */
  expectVersion?: number;
  /** Store a new session even if it holds nothing yet (an API that hands out IDs needs this). @default false */
  storeEmpty?: boolean;
}

export interface SaveResult {
  /** A Set-Cookie header value to send, or null when the cookie does not change. */
  setCookie: string | null;
}

export interface UserSessionSummary {
  /** Opaque, non-secret handle for revoking this session. */
  handle: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

/**
 * The framework-agnostic core: parses cookie header strings, loads and saves sessions through
 * a store, and returns Set-Cookie values. It never touches request or response objects.
 */
export class SessionManager<Data extends SessionData = SessionData> {
  readonly store: SessionStore;
  readonly cookie: CookieOptions;
  readonly limits: DataLimits;
  readonly #keyring: Keyring;
  readonly #hashKey: Buffer | undefined;
  readonly #idleMs: number;
  readonly #absoluteMs: number;
  readonly #touchAfterMs: number;
  readonly #maxRetries: number;
  readonly #clock: Clock;
  readonly #hlc: HybridClock;
  /** Sessions whose cookie must be (re)sent or cleared on the next save. */
  readonly #pendingCookie = new WeakMap<Session<Data>, 'set' | 'clear'>();

  constructor(options: SessionManagerOptions) {
    if (!options || typeof options.store?.load !== 'function') throw configError('store', 'a SessionStore is required');
    this.store = options.store;
    this.#keyring = new Keyring(options.secrets ?? [], 'secrets');
    this.#hashKey = options.hashKey === undefined ? undefined : Buffer.from(options.hashKey);
    if (this.#hashKey && this.#hashKey.length < 32) throw configError('hashKey', 'must be at least 32 bytes');
    if (options.production ?? isProductionMode()) refuseWeakSecrets(options.secrets, options.hashKey);
    const idle = checkTimeout('idleTimeout', options.idleTimeout ?? DEFAULT_OPTIONS.idleTimeout);
    const absolute = checkTimeout('absoluteTimeout', options.absoluteTimeout ?? DEFAULT_OPTIONS.absoluteTimeout);
    this.#idleMs = idle * 1000;
    this.#absoluteMs = absolute * 1000;
    const touchAfter = options.touchAfter ?? DEFAULT_OPTIONS.touchAfter;
    if (!(touchAfter >= 0 && touchAfter <= 1)) throw configError('touchAfter', 'must be a fraction between 0 and 1');
    this.#touchAfterMs = touchAfter * this.#idleMs;
    this.#maxRetries = options.maxRetries ?? DEFAULT_OPTIONS.maxRetries;
    if (!Number.isInteger(this.#maxRetries) || this.#maxRetries < 1) throw configError('maxRetries', 'must be a positive integer');
    this.limits = { ...DEFAULT_DATA_LIMITS, ...options.limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isInteger(value) || value < 1) throw configError(`limits.${name}`, 'must be a positive integer');
    }
    this.cookie = resolveCookieOptions(options.cookie, options.insecureLocalhostDevelopment === true);
    this.#clock = options.clock ?? systemClock;
    this.#hlc = new HybridClock(this.#clock);
  }

  /**
   * The verified session ID in a Cookie header, or null. Costs no store call; a forged,
   * tampered or malformed cookie is counted and treated as no cookie.
   */
  readCookie(header: string | undefined): string | null {
    if (header !== undefined && header.length > MAX_COOKIE_HEADER) {
      publishCookieRejected('header-too-large');
      return null;
    }
    for (const value of cookieValues(header, this.cookie.name)) {
      const result = this.#keyring.verify(value);
      if ('id' in result) return result.id;
      publishCookieRejected(result.reason);
    }
    return null;
  }

  /** The session named by a Cookie header, or a new unsaved one. */
  async fromCookie(header: string | undefined): Promise<Session<Data>> {
    const id = this.readCookie(header);
    return (id !== null && (await this.load(id))) || this.create();
  }

  /** A live session by ID, or null when unknown, expired, destroyed or unreadable. */
  async load(id: string): Promise<Session<Data> | null> {
    if (typeof id !== 'string' || !isWellFormedId(id)) return null;
    const record = await this.#call('load', () => this.store.load(this.#key(id)));
    if (!record) return null;
    if (expiresAt(record) <= this.#clock()) {
      // Stores drop most dead records themselves; one handed back here tells which deadline passed.
      publishSession({ type: 'expired', store: this.store.name, reason: record.lastSeenAt + record.idleTimeout <= record.absoluteExpiresAt ? 'idle' : 'absolute' });
      return null;
    }
    return this.#decode(id, record);
  }

  /** A new session, stored on its first save that has something to store. */
  create(options: CreateOptions<Data> = {}): Session<Data> {
    const now = this.#clock();
    const idle = options.idleTimeout === undefined ? this.#idleMs : checkInputTimeout('idleTimeout', options.idleTimeout) * 1000;
    const absolute = options.absoluteTimeout === undefined ? this.#absoluteMs : checkInputTimeout('absoluteTimeout', options.absoluteTimeout) * 1000;
    const meta: SessionMeta = { createdAt: now, lastSeenAt: now, idleTimeout: idle, absoluteExpiresAt: now + absolute, userId: null };
    const session = new Session<Data>(generateId(), meta, new Map(), new Map(), 0, true);
    if (options.userId != null) session.userId = checkUserId(options.userId);
    for (const [field, value] of Object.entries(options.data ?? {})) session.set(field, value as Data[string]);
    return session;
  }

  /**
   * Writes what this request changed: a new session is created (if it holds anything), an
   * existing one gets a delta of the changed fields only. A read-only request writes only when
   * the sliding refresh is due. Throws ESESS_GONE if the session died meanwhile, and
   * ESESS_CONFLICT if `expectVersion` is given and another write landed since the load.
   */
  async save(session: Session<Data>, options: SaveOptions = {}): Promise<SaveResult> {
    if (!(await this.#write(session, options.expectVersion, false, options.storeEmpty === true))) {
      throw new SessionError('ESESS_CONFLICT', { message: 'Session changed since it was loaded', context: { attempts: 1 } });
    }
    return { setCookie: this.#takeCookie(session) };
  }

  /** Moves the idle deadline now, whatever the refresh throttle says. */
  async touch(session: Session<Data>): Promise<void> {
    await this.#write(session, undefined, true);
  }

  /**
   * Read-modify-write with optimistic compare-and-swap: loads, runs `fn`, and writes only if no
   * other write landed in between; retries up to `maxRetries`, then throws ESESS_CONFLICT.
   * Returns null when the session does not exist.
   */
  async update(id: string, fn: (session: Session<Data>) => void | Promise<void>): Promise<Session<Data> | null> {
    for (let attempt = 1; attempt <= this.#maxRetries; attempt++) {
      const session = await this.load(id);
      if (!session) return null;
      await fn(session);
      if (await this.#write(session, session.version)) return session;
      publishConflict(this.store.name, attempt);
    }
    throw new SessionError('ESESS_CONFLICT', { context: { attempts: this.#maxRetries } });
  }

  /**
   * Issues a new ID (login, privilege change). The data moves to the new ID unless
   * `keepData` is false; the old ID is destroyed and stays dead.
   */
  async regenerate(session: Session<Data>, options: { keepData?: boolean } = {}): Promise<void> {
    if (session.isDestroyed) throw new SessionError('ESESS_GONE');
    if (options.keepData === false) session.clear();
    const now = this.#clock();
    // A fresh absolute window of the same length as the session's own (it may have been set per session).
    const absoluteMs = session.meta.absoluteExpiresAt - session.meta.createdAt;
    const meta: SessionMeta = { ...session.meta, createdAt: now, lastSeenAt: now, absoluteExpiresAt: now + absoluteMs };
    const oldKey = session.isNew ? null : this.#key(session.id);
    const id = generateId();
    if (oldKey === null) {
      session.reassign(id, meta, true);
      return;
    }
    const { fields, written } = this.#encode(session, [...session.values().keys()], this.#hlc.now());
    await this.#createRecord(id, { ...meta, version: 1, fields });
    if (!(await this.#call('destroy', () => this.store.destroy(oldKey, TOMBSTONE_GRACE_MS)))) {
      // The old session died meanwhile (logout, revocation, expiry): its successor must not outlive it.
      await this.#call('destroy', () => this.store.destroy(this.#key(id), TOMBSTONE_GRACE_MS));
      session.markDestroyed();
      throw new SessionError('ESESS_GONE');
    }
    session.reassign(id, meta, false);
    session.markSaved(1, meta, written);
    this.#pendingCookie.set(session, 'set');
    publishSession({ type: 'regenerated', store: this.store.name });
  }

  /** Destroys a session (or a session by ID). Final: no in-flight or later write can revive it. */
  async destroy(target: Session<Data> | string): Promise<boolean> {
    if (typeof target === 'string') {
      if (!isWellFormedId(target)) return false;
      return this.#destroyKey(this.#key(target));
    }
    const destroyed = target.isNew ? false : await this.#destroyKey(this.#key(target.id));
    target.markDestroyed();
    this.#pendingCookie.set(target, 'clear');
    return destroyed;
  }

  /** The Set-Cookie value carrying this session's signed ID. */
  cookieFor(session: Session<Data>): string {
    const expiry = this.cookie.persistent ? { expiresAt: session.meta.absoluteExpiresAt, now: this.#clock() } : null;
    return serializeCookie(this.cookie, this.#keyring.sign(session.id), expiry);
  }

  /** The Set-Cookie value that removes the session cookie. */
  clearCookie(): string {
    return clearingCookie(this.cookie);
  }

  /** Live sessions of a user, as opaque handles. */
  async listUserSessions(userId: string): Promise<UserSessionSummary[]> {
    this.#requireUserIndex();
    const now = this.#clock();
    const summaries = await this.#call('listByUser', () => this.store.listByUser(checkUserId(userId)));
    return summaries
      .filter((summary) => summary.expiresAt > now)
      .map((summary) => ({
        handle: handleOf(summary.key),
        createdAt: new Date(summary.createdAt),
        lastSeenAt: new Date(summary.lastSeenAt),
        expiresAt: new Date(summary.expiresAt),
      }));
  }

  /** Destroys one session of a user by its handle; false if no live session has it. */
  async revokeUserSession(userId: string, handle: string): Promise<boolean> {
    this.#requireUserIndex();
    const summaries = await this.#call('listByUser', () => this.store.listByUser(checkUserId(userId)));
    const match = summaries.find((summary) => handleOf(summary.key) === handle);
    if (!match) return false;
    const destroyed = await this.#call('destroy', () => this.store.destroy(match.key, TOMBSTONE_GRACE_MS));
    if (destroyed) publishSession({ type: 'revoked', store: this.store.name, count: 1 });
    return destroyed;
  }

  /** Destroys every session of a user ("log out everywhere"); returns how many. */
  async revokeUser(userId: string): Promise<number> {
    this.#requireUserIndex();
    const count = await this.#call('destroyByUser', () => this.store.destroyByUser(checkUserId(userId), TOMBSTONE_GRACE_MS));
    if (count > 0) publishSession({ type: 'revoked', store: this.store.name, count });
    return count;
  }

  /** Removes up to `limit` expired records from a store without native expiry. */
  async sweep(limit = 1000): Promise<number> {
    if (!this.store.capabilities.sweep) return 0;
    const count = await this.#call('sweep', () => this.store.sweep(limit));
    if (count > 0) publishSession({ type: 'expired', store: this.store.name, count });
    return count;
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** @returns false on a compare-and-swap conflict. */
  async #write(session: Session<Data>, expectVersion: number | undefined, forceTouch = false, storeEmpty = false): Promise<boolean> {
    if (session.isDestroyed) return true;
    if (session.isNew) {
      if (!session.isDirty && !storeEmpty) return true;
      const changed = [...session.changes().keys()].filter((field) => session.has(field));
      const { fields, written } = this.#encode(session, changed, this.#hlc.now());
      const meta = session.meta;
      await this.#createRecord(session.id, { ...meta, version: 1, fields });
      session.markSaved(1, meta, written);
      this.#pendingCookie.set(session, 'set');
      publishSession({ type: 'created', store: this.store.name });
      return true;
    }
    const now = this.#clock();
    const touchDue = forceTouch || now - session.meta.lastSeenAt >= this.#touchAfterMs;
    if (!session.isDirty && !touchDue) return true;
    const { fields, written } = this.#encode(session, [...session.changes().keys()], this.#hlc.now());
    const meta: SessionMeta = { ...session.meta, lastSeenAt: Math.max(now, session.meta.lastSeenAt) };
    const delta: SessionDelta = { fields, lastSeenAt: meta.lastSeenAt };
    if (session.userIdChanged) delta.userId = checkUserId(meta.userId);
    if (expectVersion !== undefined) delta.expectVersion = expectVersion;
    const wasDirty = session.isDirty;
    const result = await this.#call('apply', () => this.store.apply(this.#key(session.id), delta));
    if (result.status === 'conflict') return false;
    if (result.status === 'gone') {
      session.markDestroyed();
      throw new SessionError('ESESS_GONE');
    }
    session.markSaved(result.version, meta, written);
    if (wasDirty) publishSession({ type: 'updated', store: this.store.name });
    return true;
  }

  async #createRecord(id: string, record: StoredSession): Promise<void> {
    const created = await this.#call('create', () => this.store.create(this.#key(id), record));
    // 256-bit random IDs do not collide; a taken key means a broken random source or store.
    if (!created) throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Store refused a fresh session key', context: { store: this.store.name } });
  }

  async #destroyKey(key: string): Promise<boolean> {
    const destroyed = await this.#call('destroy', () => this.store.destroy(key, TOMBSTONE_GRACE_MS));
    if (destroyed) publishSession({ type: 'destroyed', store: this.store.name });
    return destroyed;
  }

  /** Encodes the named fields and checks the limits on the whole session after the change. */
  #encode(session: Session<Data>, names: string[], stamp: string): { fields: Record<string, StoredField>; written: Map<string, Written> } {
    const fields: Record<string, StoredField> = Object.create(null) as Record<string, StoredField>;
    const written = new Map<string, Written>();
    const changes = session.changes();
    let total = 0;
    for (const field of session.keys()) if (!names.includes(field)) total += session.loadedSize(field);
    for (const field of names) {
      if (field.length === 0 || field.length > MAX_FIELD_NAME) throw new SessionError('ESESS_INVALID_INPUT', { message: `Field names must be 1 to ${MAX_FIELD_NAME} characters` });
      if (isUnsafeKey(field)) throw new SessionError('ESESS_UNSAFE_KEY', { context: { key: field } });
      const value = changes.has(field) ? changes.get(field) : session.values().get(field);
      if (value === DELETED || value === undefined) {
        fields[field] = { value: null, stamp };
        written.set(field, { value: DELETED, size: 0 });
        continue;
      }
      const text = encodeValue(field, value, this.limits.maxDepth);
      const size = Buffer.byteLength(text) + Buffer.byteLength(field);
      fields[field] = { value: text, stamp };
      written.set(field, { value, size });
      total += size;
    }
    if (total > this.limits.maxBytes) throw new SessionError('ESESS_TOO_LARGE', { context: { limit: 'maxBytes', maxBytes: this.limits.maxBytes } });
    if (session.keys().length > this.limits.maxFields) throw new SessionError('ESESS_TOO_LARGE', { context: { limit: 'maxFields', maxFields: this.limits.maxFields } });
    return { fields, written };
  }

  #decode(id: string, record: StoredSession): Session<Data> | null {
    const values = new Map<string, unknown>();
    const sizes = new Map<string, number>();
    let latest = '';
    try {
      for (const [field, stored] of Object.entries(record.fields)) {
        if (stored.stamp > latest) latest = stored.stamp;
        if (stored.value === null) continue;
        if (isUnsafeKey(field)) throw new SessionError('ESESS_UNSAFE_KEY');
        values.set(field, safeJsonParse(stored.value, this.limits.maxDepth));
        sizes.set(field, Buffer.byteLength(stored.value) + Buffer.byteLength(field));
      }
    } catch {
      publishCorrupt(this.store.name);
      return null;
    }
    // Whatever this request writes next must order after what it has read (read-modify-write).
    if (latest) this.#hlc.observe(latest);
    const meta: SessionMeta = {
      createdAt: record.createdAt,
      lastSeenAt: record.lastSeenAt,
      idleTimeout: record.idleTimeout,
      absoluteExpiresAt: record.absoluteExpiresAt,
      userId: record.userId,
    };
    return new Session<Data>(id, meta, values, sizes, record.version, false);
  }

  #takeCookie(session: Session<Data>): string | null {
    const pending = this.#pendingCookie.get(session);
    if (pending === undefined) return null;
    this.#pendingCookie.delete(session);
    return pending === 'set' ? this.cookieFor(session) : this.clearCookie();
  }

  #key(id: string): string {
    return storeKeyOf(id, this.#hashKey);
  }

  #requireUserIndex(): void {
    if (!this.store.capabilities.userIndex) {
      throw new SessionError('ESESS_UNSUPPORTED', { message: `The ${this.store.name} store has no user index`, context: { store: this.store.name } });
    }
  }

  /** Every store call: traced, and any non-typed failure becomes ESESS_STORE_UNAVAILABLE. */
  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await traceStore(this.store.name, operation, fn);
    } catch (error) {
      if (error instanceof SessionError) throw error;
      throw new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context: { store: this.store.name, operation } });
    }
  }
}

export function createSessionManager<Data extends SessionData = SessionData>(options: SessionManagerOptions): SessionManager<Data> {
  return new SessionManager<Data>(options);
}

function checkTimeout(option: string, seconds: number): number {
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw configError(option, `must be a number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`);
  }
  return seconds;
}

function checkInputTimeout(name: string, seconds: unknown): number {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: `${name} must be a number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`, context: { field: name } });
  }
  return seconds;
}

function checkUserId(userId: string): string;
function checkUserId(userId: string | null): string | null;
function checkUserId(userId: string | null): string | null {
  if (userId === null) return null;
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: `userId must be a string of 1 to ${MAX_USER_ID} characters`, context: { field: 'userId' } });
  }
  return userId;
}

/** Production mode: secrets from the documentation or with visibly low entropy are refused; messages never quote them. */
function refuseWeakSecrets(secrets: readonly (string | Buffer)[], hashKey: string | Buffer | undefined): void {
  const advice = 'refused in production (NODE_ENV=production); generate one with: openssl rand -base64 32';
  secrets.forEach((secret, index) => {
    if (isWeakSecret(secret)) throw configError('secrets', `secret #${index + 1} is an example or low-entropy secret, ${advice}`);
  });
  if (hashKey !== undefined && isWeakSecret(hashKey)) throw configError('hashKey', `is an example or low-entropy key, ${advice}`);
}
