/**
 * One request's session: lazy loading, in-place mutation detection, saving before the response
 * leaves, and the error policy. Adapters only map it onto their framework's request and response.
 * Nothing here uses a Node-only API, so the Hono adapter runs on any runtime the core and the
 * configured store run on.
 */
import { configError, isSessionError, SessionError } from '../core/errors.js';
import type { CookieCandidate, EventContext, RegenerateOptions, SessionManager } from '../core/manager.js';
import type { Authentication, AuthenticationInput, AuthLevel, Session, SessionData } from '../core/session.js';
import { PROBLEM_CONTENT_TYPE, problemOf } from '../problem.js';
import type { ClientSignals } from '../security/binding.js';
import type { SessionRuntime } from './runtime.js';
import { createView } from './view.js';
import type { LazySession, SessionObject } from './view.js';

export interface BeginOptions {
  /** Whether the request reached us over https (called only when a session is first used). */
  isSecure: () => boolean;
  /**
   * `true`: the session object works only after `load()` (lazy adapters and lazy mode).
   * `false`: a cookieless request gets a new session on first property access.
   */
  requireLoad: boolean;
  /** Applied to every error the session operations throw (Hono attaches a response). */
  mapError?: (error: unknown) => unknown;
  /** The client's User-Agent and address: binding signals, and the address in security events (called only when one of them needs it). */
  client?: () => ClientSignals;
}

type Phase = 'open' | 'committing' | 'committed' | 'failed';

/**
 * One request's view of its session. Loads at most once, writes only what changed, and hands
 * the adapter the Set-Cookie value to send with the response.
 */
export class RequestSession<Data extends SessionData = SessionData> {
  /** The validly signed session cookies of the request (usually one; none without a cookie or with a rejected one). */
  readonly cookies: readonly CookieCandidate[];
  /** The session object handlers use: fields as properties, plus methods. */
  readonly view: SessionObject<Data>;
  /** The same object behind a lazy load. */
  readonly lazy: LazySession<Data>;
  readonly #runtime: SessionRuntime<Data>;
  readonly #manager: SessionManager<Data>;
  readonly #options: BeginOptions;
  /** What the manager's events say about who made this request. */
  readonly #context: EventContext;
  #session: Session<Data> | null = null;
  #loading: Promise<Session<Data>> | null = null;
  #loadRequested = false;
  /** JSON of object-valued fields as first read in this request, to find in-place changes. */
  readonly #snapshots = new Map<string, string>();
  /** A Set-Cookie value produced before the final commit (explicit save, touch). */
  #cookie: string | null = null;
  #phase: Phase = 'open';
  /** The cookie's session was destroyed by the binding check: clear the cookie unless a new one is sent. */
  #clearCookie = false;

  constructor(runtime: SessionRuntime<Data>, cookies: readonly CookieCandidate[], options: BeginOptions, context: EventContext = {}) {
    this.#runtime = runtime;
    this.#manager = runtime.manager;
    this.cookies = cookies;
    this.#options = options;
    this.#context = context;
    this.view = createView(this);
    this.lazy = new LazyHandle(this);
  }

  /** Whether the request carries a validly signed session cookie. */
  get hasCookie(): boolean {
    return this.cookies.length > 0;
  }

  /** Whether a session exists in this request (loaded or created), so there may be something to save. */
  get materialized(): boolean {
    return this.#session !== null;
  }

  /** Loads the session named by the cookie, or starts a new one; at most one store read per request. */
  async load(): Promise<SessionObject<Data>> {
    this.#loadRequested = true;
    if (this.#session === null) {
      this.#loading ??= this.#open();
      try {
        await this.#loading;
      } catch (error) {
        this.#loading = null;
        throw this.#mapError(error);
      }
    }
    return this.view;
  }

  async #open(): Promise<Session<Data>> {
    this.#checkTransport();
    let loaded = this.cookies.length === 0 ? null : await this.#manager.loadFirst(this.cookies, this.#context);
    if (loaded !== null && this.#session === null && this.#runtime.binding !== null) {
      const session = loaded;
      const { action } = this.#runtime.binding.check(session, this.#client(), () => this.#manager.eventSubject(session, this.#context));
      if (action === 'destroy') {
        // Seen from another client: end it (the event is already out) and go on anonymously.
        await this.#manager.destroy(loaded, this.#context);
        this.#clearCookie = true;
        loaded = null;
      }
    }
    this.#session ??= loaded ?? this.#manager.create();
    return this.#session;
  }

  #client(): ClientSignals {
    return this.#options.client?.() ?? {};
  }

  /**
   * Binds a session to this request's client from scratch: a new session before it is first
   * stored, and a regenerated one (login), so the fingerprint is that of the client that logged in.
   */
  #bindAfresh(session: Session<Data>): void {
    const binding = this.#runtime.binding;
    if (binding === null || session.isDestroyed) return;
    if (session.has(binding.field)) session.delete(binding.field);
    binding.check(session, this.#client());
  }

  /** A new session that is about to be stored gets its binding first. */
  #bindIfFirstStored(session: Session<Data>): void {
    if (session.isNew && session.isDirty && this.#runtime.binding !== null && !session.has(this.#runtime.binding.field)) this.#bindAfresh(session);
  }

  /** The session for synchronous use; a cookieless request gets its new session here. */
  current(): Session<Data> {
    if (this.#session !== null) return this.#session;
    if (this.#options.requireLoad && !this.#loadRequested) {
      throw this.#mapError(usageError('The session is not loaded yet: call `await req.loadSession()` (lazy mode) or `await session` before using it'));
    }
    if (this.hasCookie || this.#loading !== null) {
      throw this.#mapError(usageError('The session is not available: its load has not finished, or it failed (that error went to the error handler)'));
    }
    this.#checkTransport();
    this.#session = this.#manager.create();
    return this.#session;
  }

  read(field: string): unknown {
    const session = this.current();
    if (session.isDestroyed) return undefined;
    const value = session.get(field);
    if (typeof value === 'object' && value !== null && !this.#snapshots.has(field)) {
      const json = jsonOf(value);
      if (json !== undefined) this.#snapshots.set(field, json);
    }
    return value;
  }

  write(field: string, value: unknown): void {
    const session = this.#writable();
    if (value === undefined) session.delete(field);
    else session.set(field, value as Data[string]);
  }

  remove(field: string): void {
    this.#writable().delete(field);
  }

  has(field: string): boolean {
    const session = this.current();
    return !session.isDestroyed && session.has(field);
  }

  keys(): string[] {
    const session = this.current();
    return session.isDestroyed ? [] : session.keys();
  }

  toJSON(): Partial<Data> {
    const session = this.current();
    if (session.isDestroyed) return {};
    // The copy shares nested values with the session, so snapshot them like reads.
    for (const field of session.keys()) this.read(field);
    return session.toJSON();
  }

  markChanged(field: string): void {
    this.#writable().markChanged(field);
  }

  get userId(): string | null {
    const session = this.current();
    return session.isDestroyed ? null : session.userId;
  }

  set userId(value: string | null) {
    if (value !== null && typeof value !== 'string') throw this.#mapError(new SessionError('ESESS_INVALID_INPUT', { message: 'userId must be a string or null', context: { field: 'userId' } }));
    this.#writable().userId = value;
  }

  get authentication(): Authentication | null {
    const session = this.current();
    return session.isDestroyed ? null : session.authentication;
  }

  get authenticatedAt(): Date | null {
    const session = this.current();
    return session.isDestroyed ? null : session.authenticatedAt;
  }

  markAuthenticated(input: AuthenticationInput): void {
    const session = this.#writable();
    try {
      session.markAuthenticated(input);
    } catch (error) {
      throw this.#mapError(error);
    }
  }

  authenticatedWithin(seconds: number, options?: { level?: AuthLevel }): boolean {
    const session = this.current();
    try {
      return !session.isDestroyed && session.authenticatedWithin(seconds, options);
    } catch (error) {
      throw this.#mapError(error);
    }
  }

  async regenerate(options: RegenerateOptions = {}): Promise<void> {
    const session = this.#writable();
    try {
      await this.#manager.regenerate(session, options, this.#context);
    } catch (error) {
      throw this.#mapError(error);
    }
    this.#bindAfresh(session);
    if (options.keepData === false) this.#snapshots.clear();
    else this.#refreshSnapshots(session);
  }

  async destroy(): Promise<void> {
    const session = this.current();
    if (session.isDestroyed) return;
    try {
      await this.#manager.destroy(session, this.#context);
    } catch (error) {
      throw this.#mapError(error);
    }
    this.#snapshots.clear();
  }

  async save(): Promise<void> {
    const session = this.current();
    if (this.#phase !== 'open' && session.isNew) throw this.#mapError(committedError());
    this.#detectInPlaceChanges(session);
    this.#bindIfFirstStored(session);
    try {
      const { setCookie } = await this.#manager.save(session, {}, this.#context);
      if (setCookie !== null) this.#cookie = setCookie;
    } catch (error) {
      throw this.#mapError(error);
    }
    this.#refreshSnapshots(session);
  }

  async touch(): Promise<void> {
    const session = this.current();
    if (this.#phase !== 'open' && session.isNew) throw this.#mapError(committedError());
    try {
      await this.#manager.touch(session, this.#context);
    } catch (error) {
      throw this.#mapError(error);
    }
  }

  /**
   * The final save, run once just before the response headers leave. Resolves with the
   * Set-Cookie value to send (or null). A write that finds the session destroyed meanwhile
   * (a concurrent logout or regenerate) is dropped: destroy wins. Store failures reject.
   */
  async commit(): Promise<string | null> {
    if (this.#phase !== 'open') return null;
    this.#phase = 'committing';
    const session = this.#session;
    try {
      if (session !== null) {
        this.#detectInPlaceChanges(session);
        this.#bindIfFirstStored(session);
        const { setCookie } = await this.#manager.save(session, {}, this.#context);
        if (setCookie !== null) this.#cookie = setCookie;
      }
    } catch (error) {
      if (!isSessionError(error, 'ESESS_GONE')) {
        this.#phase = 'failed';
        this.#cookie = null;
        throw this.#mapError(error);
      }
      // The session died while this request ran. Its write is dropped; no cookie is sent,
      // because clearing it here could delete a newer cookie the client got meanwhile (login).
      this.#cookie = null;
    }
    this.#phase = 'committed';
    if (this.#clearCookie && this.#cookie === null) this.#cookie = this.#manager.clearCookie();
    const cookie = this.#cookie;
    this.#cookie = null;
    return cookie;
  }

  /** Headers that go with a Set-Cookie from `commit()`: never cached; on logout, optionally Clear-Site-Data. */
  responseHeaders(): [string, string][] {
    const headers: [string, string][] = [['cache-control', NO_STORE]];
    if (this.#runtime.clearSiteData && this.#session?.isDestroyed === true) headers.push(['clear-site-data', '"cookies"']);
    return headers;
  }

  /** The session for a change, which must come before the response is committed. */
  #writable(): Session<Data> {
    const session = this.current();
    if (session.isDestroyed) throw this.#mapError(new SessionError('ESESS_GONE', { message: 'The session was destroyed in this request; use regenerate({ keepData: false }) to start afresh instead of destroy()' }));
    if (this.#phase !== 'open') throw this.#mapError(committedError());
    return session;
  }

  #detectInPlaceChanges(session: Session<Data>): void {
    for (const [field, before] of this.#snapshots) {
      if (session.has(field) && jsonOf(session.get(field)) !== before) session.markChanged(field);
    }
  }

  #refreshSnapshots(session: Session<Data>): void {
    for (const field of [...this.#snapshots.keys()]) {
      const json = session.has(field) ? jsonOf(session.get(field)) : undefined;
      if (json === undefined) this.#snapshots.delete(field);
      else this.#snapshots.set(field, json);
    }
  }

  #checkTransport(): void {
    if (this.#runtime.requireSecureTransport && !this.#options.isSecure()) {
      throw this.#mapError(
        configError(
          'trustProxy',
          'the session cookie is Secure but this request came over plain http, so browsers would drop it. ' +
            'Serve https; behind a TLS-terminating proxy that sets X-Forwarded-Proto, set trustProxy: true; ' +
            'for local development over http, set insecureLocalhostDevelopment: true',
        ),
      );
    }
  }

  #mapError(error: unknown): unknown {
    return this.#options.mapError ? this.#options.mapError(error) : error;
  }
}

class LazyHandle<Data extends SessionData> implements LazySession<Data> {
  readonly #state: RequestSession<Data>;

  constructor(state: RequestSession<Data>) {
    this.#state = state;
  }

  load(): Promise<SessionObject<Data>> {
    return this.#state.load();
  }

  then<TResult1 = SessionObject<Data>, TResult2 = never>(
    onFulfilled?: ((value: SessionObject<Data>) => TResult1 | PromiseLike<TResult1>) | null,
    onRejected?: ((reason: unknown) => TResult2 | PromiseLike<TResult2>) | null,
  ): Promise<TResult1 | TResult2> {
    return this.#state.load().then(onFulfilled, onRejected);
  }
}

function committedError(): SessionError {
  return usageError('The session was already saved for this response (its headers are being sent); change the session before sending the response');
}

/** The session API used out of order: a bug in the application, never the client's fault. */
function usageError(message: string): SessionError {
  return new SessionError('ESESS_USAGE', { message });
}

function jsonOf(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/** Response headers for a session cookie: a response that sets one must never be cached. */
export const NO_STORE = 'no-store';

/**
 * A session error as a response, in the same shape the session service answers with: an
 * RFC 9457 problem document that is never cached.
 */
export function errorResponse(error: SessionError): { status: number; headers: Record<string, string>; body: string } {
  const { status, headers, body } = problemOf(error);
  return { status, headers: { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': NO_STORE, ...headers }, body };
}
