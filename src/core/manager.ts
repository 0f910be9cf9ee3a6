import { clearingCookie, cookieValues, MAX_COOKIE_HEADER, resolveCookieOptions, serializeCookie } from './cookie.js';
import type { CookieOptions } from './cookie.js';
import { configError, SessionError } from './errors.js';
import { HybridClock } from './hlc.js';
import { isProductionMode } from './secrets.js';
import { generateId, handleOf, isWellFormedId, Keyring, storeKeyOf } from './ids.js';
import type { DataLimits } from './json.js';
import { MAX_COOKIE_CANDIDATES } from './manager-options.js';
import type { CookieCandidate, CreateOptions, EventContext, RegenerateOptions, SaveOptions, SaveResult, SessionManagerOptions, UserSessionSummary } from './manager-options.js';
import { checkInputTimeout, checkUserId, refuseWeakSecrets, resolveManagerOptions } from './options.js';
import { decodeRecord, encodeChanges } from './field-codec.js';
import { Session } from './session.js';
import type { SessionData, StoredAuthentication } from './session.js';
import { publishConflict, publishCookieRejected, publishCorrupt, publishSession, subjectOf, traceStore } from './telemetry.js';
import type { EventSubject, SessionEvent } from './telemetry.js';
import type { Clock, SessionDelta, SessionMeta, SessionStore, StoredSession, StoredSummary } from './types.js';
import { expiresAt, systemClock, TOMBSTONE_GRACE_MS } from './types.js';

export { DEFAULT_OPTIONS, MAX_COOKIE_CANDIDATES } from './manager-options.js';
export type { CookieCandidate, CreateOptions, EventContext, RegenerateOptions, SaveOptions, SaveResult, SessionManagerOptions, UserSessionSummary } from './manager-options.js';
export { MAX_TIMEOUT_SECONDS } from './types.js';

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
  readonly #maxSessionsPerUser: number | undefined;
  readonly #onTooManySessions: 'evict-oldest' | 'refuse';
  /** Sessions whose cookie must be (re)sent or cleared on the next save. */
  readonly #pendingCookie = new WeakMap<Session<Data>, 'set' | 'clear'>();

  constructor(options: SessionManagerOptions) {
    if (!options || typeof options.store?.load !== 'function') throw configError('store', 'a SessionStore is required');
    this.store = options.store;
    this.#keyring = new Keyring(options.secrets ?? [], 'secrets');
    this.#hashKey = options.hashKey === undefined ? undefined : Buffer.from(options.hashKey);
    if (this.#hashKey && this.#hashKey.length < 32) throw configError('hashKey', 'must be at least 32 bytes');
    if (options.production ?? isProductionMode()) refuseWeakSecrets(options.secrets, options.hashKey);
    const resolved = resolveManagerOptions(options);
    this.#idleMs = resolved.idleMs;
    this.#absoluteMs = resolved.absoluteMs;
    this.#touchAfterMs = resolved.touchAfterMs;
    this.#maxRetries = resolved.maxRetries;
    this.limits = resolved.limits;
    this.#maxSessionsPerUser = resolved.maxSessionsPerUser;
    this.#onTooManySessions = resolved.onTooManySessions;
    this.cookie = resolveCookieOptions(options.cookie, options.insecureLocalhostDevelopment === true);
    this.#clock = options.clock ?? systemClock;
    this.#hlc = new HybridClock(this.#clock);
  }

  /**
   * The verified session ID in a Cookie header, or null. Costs no store call; a forged,
   * tampered or malformed cookie is counted and treated as no cookie.
   */
  readCookie(header: string | undefined, context?: EventContext): string | null {
    return this.readCookies(header, context)[0]?.id ?? null;
  }

  /**
   * Every validly signed session cookie in a Cookie header, in header order, at most
   * `MAX_COOKIE_CANDIDATES`: a duplicate planted under the same name (possible without the
   * `__Host-` prefix) must not shadow the real one, so `loadFirst` tries them in turn.
   */
  readCookies(header: string | undefined, context?: EventContext): CookieCandidate[] {
    const details = () => ({ at: this.#clock(), ip: context?.ip });
    if (header !== undefined && header.length > MAX_COOKIE_HEADER) {
      publishCookieRejected('header-too-large', details);
      return [];
    }
    const candidates: CookieCandidate[] = [];
    for (const value of cookieValues(header, this.cookie.name)) {
      const result = this.#keyring.verify(value);
      if (!('id' in result)) publishCookieRejected(result.reason, details);
      else if (!candidates.some((candidate) => candidate.id === result.id)) candidates.push(result);
      if (candidates.length === MAX_COOKIE_CANDIDATES) break;
    }
    return candidates;
  }

  /**
   * The first candidate whose session is live, or null. A session found through a cookie signed
   * by an older secret gets a cookie signed by the newest one on its next save, so old secrets
   * can be dropped once their cookies have been seen.
   */
  async loadFirst(candidates: readonly CookieCandidate[], context?: EventContext): Promise<Session<Data> | null> {
    for (const { id, current } of candidates) {
      const session = await this.load(id, context);
      if (session === null) continue;
      if (!current) this.#pendingCookie.set(session, 'set');
      return session;
    }
    return null;
  }

  /** The session named by a Cookie header, or a new unsaved one. */
  async fromCookie(header: string | undefined, context?: EventContext): Promise<Session<Data>> {
    return (await this.loadFirst(this.readCookies(header, context), context)) ?? this.create();
  }

  /** A live session by ID, or null when unknown, expired, destroyed or unreadable. */
  async load(id: string, context?: EventContext): Promise<Session<Data> | null> {
    if (typeof id !== 'string' || !isWellFormedId(id)) return null;
    const key = this.#key(id);
    const record = await this.#call('load', () => this.store.load(key));
    if (!record) return null;
    if (expiresAt(record) <= this.#clock()) {
      // Stores drop most dead records themselves; one handed back here tells which deadline passed.
      const reason = record.lastSeenAt + record.idleTimeout <= record.absoluteExpiresAt ? 'idle' : 'absolute';
      this.#publish('expired', key, record.userId, context, { reason });
      return null;
    }
    const decoded = decodeRecord<Data>(id, record, this.limits, this.#clock);
    if (!decoded) {
      publishCorrupt(this.store.name);
      return null;
    }
    // Whatever this request writes next must order after what it has read (read-modify-write).
    if (decoded.latest) this.#hlc.observe(decoded.latest);
    return decoded.session;
  }

  /** A new session, stored on its first save that has something to store. */
  create(options: CreateOptions<Data> = {}): Session<Data> {
    const now = this.#clock();
    const idle = options.idleTimeout === undefined ? this.#idleMs : checkInputTimeout('idleTimeout', options.idleTimeout) * 1000;
    const absolute = options.absoluteTimeout === undefined ? this.#absoluteMs : checkInputTimeout('absoluteTimeout', options.absoluteTimeout) * 1000;
    const meta: SessionMeta = { createdAt: now, lastSeenAt: now, idleTimeout: idle, absoluteExpiresAt: now + absolute, userId: null };
    const session = new Session<Data>(generateId(), meta, new Map(), new Map(), 0, true, null, this.#clock);
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
  async save(session: Session<Data>, options: SaveOptions = {}, context?: EventContext): Promise<SaveResult> {
    if (!(await this.#write(session, options.expectVersion, false, options.storeEmpty === true, context))) {
      throw new SessionError('ESESS_CONFLICT', { message: 'Session changed since it was loaded', context: { attempts: 1 } });
    }
    return { setCookie: this.#takeCookie(session) };
  }

  /** Moves the idle deadline now, whatever the refresh throttle says. */
  async touch(session: Session<Data>, context?: EventContext): Promise<void> {
    await this.#write(session, undefined, true, false, context);
  }

  /**
   * Read-modify-write with optimistic compare-and-swap: loads, runs `fn`, and writes only if no
   * other write landed in between; retries up to `maxRetries`, then throws ESESS_CONFLICT.
   * Returns null when the session does not exist.
   */
  async update(id: string, fn: (session: Session<Data>) => void | Promise<void>, context?: EventContext): Promise<Session<Data> | null> {
    for (let attempt = 1; attempt <= this.#maxRetries; attempt++) {
      const session = await this.load(id, context);
      if (!session) return null;
      await fn(session);
      if (await this.#write(session, session.version, false, false, context)) return session;
      publishConflict(this.store.name, attempt);
    }
    throw new SessionError('ESESS_CONFLICT', { message: `update() gave up after ${this.#maxRetries} compare-and-swap attempts (maxRetries)`, context: { attempts: this.#maxRetries } });
  }

  /**
   * Issues a new ID (login, privilege change). The data moves to the new ID unless
   * `keepData` is false; the old ID is destroyed and stays dead. The absolute expiry stays
   * unless `renewAbsolute` is true.
   */
  async regenerate(session: Session<Data>, options: RegenerateOptions = {}, context?: EventContext): Promise<void> {
    if (session.isDestroyed) throw new SessionError('ESESS_GONE');
    if (options.keepData === false) {
      session.clear();
      session.forgetAuthentication();
    }
    const now = this.#clock();
    const absoluteExpiresAt = options.renewAbsolute === true ? now + this.#absoluteMs : session.meta.absoluteExpiresAt;
    if (absoluteExpiresAt <= now) throw new SessionError('ESESS_GONE');
    const meta: SessionMeta = { ...session.meta, createdAt: now, lastSeenAt: now, absoluteExpiresAt };
    const oldKey = session.isNew ? null : this.#key(session.id);
    const id = generateId();
    if (oldKey === null) {
      session.reassign(id, meta, true);
      return;
    }
    const stamp = this.#hlc.now();
    const freshAuth = session.authChanged;
    const { fields, written, auth } = encodeChanges(session, [...session.values().keys()], stamp, this.limits, session.storedAuthentication !== null);
    const newKey = this.#key(id);
    // A principal set before regenerate() is bound by it: the session limit applies here too.
    const binds = session.userIdChanged && meta.userId !== null;
    if (binds) await this.#admit(session, newKey);
    await this.#createRecord(id, { ...meta, version: 1, fields, userStamp: stamp });
    if (!(await this.#call('destroy', () => this.store.destroy(oldKey, TOMBSTONE_GRACE_MS, stamp)))) {
      // The old session died meanwhile (logout, revocation, expiry): its successor must not outlive it.
      await this.#call('destroy', () => this.store.destroy(this.#key(id), TOMBSTONE_GRACE_MS, this.#hlc.now()));
      session.markDestroyed();
      throw new SessionError('ESESS_GONE');
    }
    session.reassign(id, meta, false);
    session.markSaved(1, meta, written, auth);
    this.#pendingCookie.set(session, 'set');
    this.#publish('regenerated', newKey, meta.userId, context, { previousHandle: handleOf(oldKey) });
    if (freshAuth) this.#publishAuthenticated(newKey, meta.userId, auth, context);
    if (binds && meta.userId !== null) await this.#evictBeyondLimit(meta.userId, newKey, context);
  }

  /** Destroys a session (or a session by ID). Final: no in-flight or later write can revive it. */
  async destroy(target: Session<Data> | string, context?: EventContext): Promise<boolean> {
    if (typeof target === 'string') {
      if (!isWellFormedId(target)) return false;
      return this.#destroyKey(this.#key(target), null, context);
    }
    const destroyed = target.isNew ? false : await this.#destroyKey(this.#key(target.id), target.userId, context);
    target.markDestroyed();
    this.#pendingCookie.set(target, 'clear');
    return destroyed;
  }

  /**
   * The session's opaque handle: the one `listUserSessions` shows (so an application can mark
   * "this device" in a list) and events carry. Not secret, and no way back to the ID.
   */
  handleOf(session: Session<Data>): string {
    return handleOf(this.#key(session.id));
  }

  /**
   * The subject of an event about this session — time (this manager's clock), principal, handle
   * and the client's address — for events published outside the manager: the adapters' binding
   * check, or an application's own audit log.
   */
  eventSubject(session: Session<Data>, context?: EventContext): EventSubject {
    return subjectOf({ at: this.#clock(), userId: session.userId, handle: this.handleOf(session), ip: context?.ip });
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
  async revokeUserSession(userId: string, handle: string, context?: EventContext): Promise<boolean> {
    this.#requireUserIndex();
    const summaries = await this.#call('listByUser', () => this.store.listByUser(checkUserId(userId)));
    const match = summaries.find((summary) => handleOf(summary.key) === handle);
    if (!match) return false;
    const destroyed = await this.#call('destroy', () => this.store.destroy(match.key, TOMBSTONE_GRACE_MS, this.#hlc.now()));
    if (destroyed) this.#publish('revoked', match.key, userId, context, { count: 1 });
    return destroyed;
  }

  /** Destroys every session of a user ("log out everywhere"); returns how many. */
  async revokeUser(userId: string, context?: EventContext): Promise<number> {
    this.#requireUserIndex();
    const count = await this.#call('destroyByUser', () => this.store.destroyByUser(checkUserId(userId), TOMBSTONE_GRACE_MS, this.#hlc.now()));
    if (count > 0) this.#publish('revoked', null, userId, context, { count });
    return count;
  }

  /** Removes up to `limit` expired records from a store without native expiry. */
  async sweep(limit = 1000): Promise<number> {
    if (!this.store.capabilities.sweep) return 0;
    const count = await this.#call('sweep', () => this.store.sweep(limit));
    if (count > 0) this.#publish('expired', null, null, undefined, { count });
    return count;
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** @returns false on a compare-and-swap conflict. */
  async #write(session: Session<Data>, expectVersion: number | undefined, forceTouch = false, storeEmpty = false, context?: EventContext): Promise<boolean> {
    if (session.isDestroyed) return true;
    if (session.isNew) {
      if (!session.isDirty && !storeEmpty) return true;
      const key = this.#key(session.id);
      const changed = [...session.changes().keys()].filter((field) => session.has(field));
      const stamp = this.#hlc.now();
      const { fields, written, auth } = encodeChanges(session, changed, stamp, this.limits, session.storedAuthentication !== null);
      const meta = session.meta;
      const binds = meta.userId !== null;
      if (binds) await this.#admit(session, key);
      await this.#createRecord(session.id, { ...meta, version: 1, fields, userStamp: stamp });
      session.markSaved(1, meta, written, auth);
      this.#pendingCookie.set(session, 'set');
      this.#publish('created', key, meta.userId, context);
      this.#publishAuthenticated(key, meta.userId, auth, context);
      if (meta.userId !== null) await this.#evictBeyondLimit(meta.userId, key, context);
      return true;
    }
    const now = this.#clock();
    const touchDue = forceTouch || now - session.meta.lastSeenAt >= this.#touchAfterMs;
    if (!session.isDirty && !touchDue) return true;
    const key = this.#key(session.id);
    const stamp = this.#hlc.now();
    const { fields, written, auth } = encodeChanges(session, [...session.changes().keys()], stamp, this.limits, session.authChanged);
    const meta: SessionMeta = { ...session.meta, lastSeenAt: Math.max(now, session.meta.lastSeenAt) };
    const delta: SessionDelta = { fields, lastSeenAt: meta.lastSeenAt };
    const binds = session.userIdChanged && meta.userId !== null;
    if (session.userIdChanged) {
      delta.userId = checkUserId(meta.userId);
      delta.userStamp = stamp;
    }
    if (expectVersion !== undefined) delta.expectVersion = expectVersion;
    if (binds) await this.#admit(session, key);
    const wasDirty = session.isDirty;
    const result = await this.#call('apply', () => this.store.apply(key, delta));
    if (result.status === 'conflict') return false;
    if (result.status === 'gone') {
      session.markDestroyed();
      throw new SessionError('ESESS_GONE');
    }
    session.markSaved(result.version, meta, written, auth);
    if (wasDirty) this.#publish('updated', key, meta.userId, context);
    this.#publishAuthenticated(key, meta.userId, auth, context);
    if (binds && meta.userId !== null) await this.#evictBeyondLimit(meta.userId, key, context);
    return true;
  }

  /** The user's other live sessions, oldest first (ties by key, so every instance picks alike). */
  async #otherSessions(userId: string, key: string): Promise<StoredSummary[]> {
    const now = this.#clock();
    const summaries = await this.#call('listByUser', () => this.store.listByUser(userId));
    return summaries
      .filter((summary) => summary.key !== key && summary.expiresAt > now)
      .sort((a, b) => a.createdAt - b.createdAt || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** `onTooManySessions: 'refuse'`: a binding beyond the limit writes nothing and keeps the stored principal. */
  async #admit(session: Session<Data>, key: string): Promise<void> {
    const limit = this.#maxSessionsPerUser;
    const userId = session.userId;
    if (limit === undefined || this.#onTooManySessions !== 'refuse' || userId === null) return;
    if ((await this.#otherSessions(userId, key)).length < limit) return;
    session.revertUserId();
    throw new SessionError('ESESS_TOO_MANY_SESSIONS', { context: { maxSessionsPerUser: limit } });
  }

  /** `onTooManySessions: 'evict-oldest'`: after a binding, the oldest other sessions go until the limit holds. */
  async #evictBeyondLimit(userId: string, key: string, context: EventContext | undefined): Promise<void> {
    const limit = this.#maxSessionsPerUser;
    if (limit === undefined || this.#onTooManySessions !== 'evict-oldest') return;
    const others = await this.#otherSessions(userId, key);
    for (const victim of others.slice(0, Math.max(0, others.length + 1 - limit))) {
      const destroyed = await this.#call('destroy', () => this.store.destroy(victim.key, TOMBSTONE_GRACE_MS, this.#hlc.now()));
      if (destroyed) this.#publish('revoked', victim.key, userId, context, { reason: 'session-limit', count: 1 });
    }
  }

  #publishAuthenticated(key: string, userId: string | null, auth: StoredAuthentication | null | undefined, context: EventContext | undefined): void {
    if (auth) this.#publish('authenticated', key, userId, context, { method: auth.method, level: auth.level });
  }

  /** One lifecycle event; the payload (and the handle's hash) is built only when someone listens. */
  #publish(type: SessionEvent['type'], key: string | null, userId: string | null, context: EventContext | undefined, extra: Partial<SessionEvent> = {}): void {
    publishSession(() => ({
      type,
      store: this.store.name,
      ...subjectOf({ at: this.#clock(), userId, handle: key === null ? null : handleOf(key), ip: context?.ip }),
      ...extra,
    }));
  }

  async #createRecord(id: string, record: StoredSession): Promise<void> {
    const created = await this.#call('create', () => this.store.create(this.#key(id), record));
    // 256-bit random IDs do not collide; a taken key means a broken random source or store.
    if (!created) throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Store refused a fresh session key', context: { store: this.store.name } });
  }

  async #destroyKey(key: string, userId: string | null, context: EventContext | undefined): Promise<boolean> {
    const destroyed = await this.#call('destroy', () => this.store.destroy(key, TOMBSTONE_GRACE_MS, this.#hlc.now()));
    if (destroyed) this.#publish('destroyed', key, userId, context);
    return destroyed;
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
