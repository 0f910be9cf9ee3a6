/**
 * The behaviour every framework adapter shares, in one place: lazy loading, property access,
 * in-place mutation detection, saving before the response leaves, the error policy and the
 * Secure-cookie transport check. Adapters only map it onto their framework's request and
 * response. Nothing here uses a Node-only API, so the Hono adapter runs on any runtime the
 * core and the configured store run on.
 */
import { configError, ERROR_CODES, isSessionError, SessionError } from '../core/errors.js';
import { SessionManager } from '../core/manager.js';
import type { SessionManagerOptions } from '../core/manager.js';
import type { Session, SessionData } from '../core/session.js';
import { createBindingCheck, DEFAULT_BINDING } from '../security/binding.js';
import type { BindingOptions, BindingResult, BindableSession, ClientSignals } from '../security/binding.js';

/** Options every adapter takes besides the manager (or the options to build one). */
export interface AdapterCommonOptions {
  /**
   * Trust `X-Forwarded-Proto` from a TLS-terminating proxy in front of the app. Only then does a
   * request that reached the app over plain http count as https for the Secure-cookie check.
   * Never set it when clients can reach the app without passing the proxy.
   * @default false
   */
  trustProxy?: boolean;
  /**
   * On logout, also send `Clear-Site-Data: "cookies"`. Browsers then drop every cookie of the
   * site, not only the session's, so it is opt-in.
   * @default false
   */
  clearSiteData?: boolean;
  /**
   * Binding signals, checked automatically whenever a session is loaded (see
   * `createBindingCheck` in `elastic-session/security`, whose options these are): the session
   * remembers a keyed fingerprint of the client's User-Agent and network prefix, stored when the
   * session is first stored and renewed by `regenerate()` (login). A change publishes an event on
   * `elastic-session:anomaly`; with `onChange: 'destroy'` the session is also destroyed and the
   * request goes on with a fresh anonymous one. The client address is the socket's, or with
   * `trustProxy` the leftmost `X-Forwarded-For` entry: the proxy must then overwrite that header.
   */
  binding?: BindingOptions;
}

/** Either a manager you built (and may share) or the options to build one. */
export type AdapterOptions<Data extends SessionData = SessionData> = AdapterCommonOptions &
  ({ manager: SessionManager<Data> } | (SessionManagerOptions & { manager?: undefined }));

/** Names on a session object that are not data fields; read such fields with `get(name)`. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  'get',
  'set',
  'delete',
  'has',
  'keys',
  'toJSON',
  'markChanged',
  'userId',
  'isNew',
  'createdAt',
  'expiresAt',
  'regenerate',
  'destroy',
  'save',
  'touch',
  'then',
]);

/** What a session object offers besides its data fields. */
export interface SessionMethods<Data extends SessionData = SessionData> {
  get<K extends keyof Data & string>(field: K): Data[K] | undefined;
  set<K extends keyof Data & string>(field: K, value: Data[K]): void;
  delete(field: keyof Data & string): void;
  has(field: keyof Data & string): boolean;
  /** Names of the data fields. */
  keys(): string[];
  /** A plain-object copy of the data. */
  toJSON(): Partial<Data>;
  /**
   * Marks a field changed. Rarely needed: in-place changes to a field read in this request
   * (`session.cart.push(x)`) are found at save time by comparing with the value as loaded.
   */
  markChanged(field: keyof Data & string): void;
  /** The principal; indexed, so all sessions of a user can be listed and revoked. */
  userId: string | null;
  /** True until the session is first stored (an untouched new session never is). */
  readonly isNew: boolean;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  /**
   * New session ID (call it on login and privilege changes). Keeps the data unless
   * `keepData: false`; the old ID is destroyed and stays dead.
   */
  regenerate(options?: { keepData?: boolean }): Promise<void>;
  /** Destroys the session and clears the cookie. Final: concurrent requests cannot revive it. */
  destroy(): Promise<void>;
  /** Writes the changes now (the adapter saves before the response leaves anyway). */
  save(): Promise<void>;
  /** Moves the idle deadline now, whatever the refresh throttle says. */
  touch(): Promise<void>;
}

/**
 * A session as handlers see it: data fields as properties (`session.cart`), plus methods.
 * Type the fields by declaration merging:
 *
 * @example
 * declare module 'elastic-session' {
 *   interface SessionData { cart: string[] }
 * }
 */
export type SessionObject<Data extends SessionData = SessionData> = Partial<Data> & SessionMethods<Data>;

/**
 * A session loaded on first use: `await session` (or `await session.load()`) costs one store
 * read when the request carries a valid cookie and none otherwise; a request that never awaits
 * it never touches the store.
 */
export interface LazySession<Data extends SessionData = SessionData> extends PromiseLike<SessionObject<Data>> {
  load(): Promise<SessionObject<Data>>;
}

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
  /** The client's User-Agent and address, for binding signals (called only when binding is configured). */
  client?: () => ClientSignals;
}

/** The validated binding check and the session field it uses. */
interface Binding {
  check: (session: BindableSession, client: ClientSignals) => BindingResult;
  field: string;
}

/** One adapter instance: the manager plus the adapter options, validated once. */
export class SessionRuntime<Data extends SessionData = SessionData> {
  readonly manager: SessionManager<Data>;
  readonly trustProxy: boolean;
  readonly clearSiteData: boolean;
  /** Whether cookies are Secure outside the explicit development mode: then requests must be https. */
  readonly requireSecureTransport: boolean;
  /** The binding check, or null when `binding` is not configured. */
  readonly binding: Binding | null;

  constructor(options: AdapterOptions<Data>) {
    if (typeof options !== 'object' || options === null) throw configError('options', 'an options object is required');
    if (options.trustProxy !== undefined && typeof options.trustProxy !== 'boolean') throw configError('trustProxy', 'must be a boolean');
    this.trustProxy = options.trustProxy === true;
    if (options.clearSiteData !== undefined && typeof options.clearSiteData !== 'boolean') throw configError('clearSiteData', 'must be a boolean');
    this.clearSiteData = options.clearSiteData === true;
    this.binding = bindingOf(options.binding);
    if (options.manager !== undefined) {
      if (!(options.manager instanceof SessionManager)) throw configError('manager', 'must be a SessionManager');
      if ('store' in options || 'secrets' in options) throw configError('manager', 'give either a manager or the options to build one (store, secrets, ...), not both');
      this.manager = options.manager;
      this.requireSecureTransport = this.manager.cookie.secure;
    } else {
      const { trustProxy: _trustProxy, clearSiteData: _clearSiteData, binding: _binding, manager: _manager, ...managerOptions } = options;
      this.manager = new SessionManager<Data>(managerOptions);
      this.requireSecureTransport = this.manager.cookie.secure && managerOptions.insecureLocalhostDevelopment !== true;
    }
  }

  /** The per-request session state. Reads the cookie (no store call); loads nothing yet. */
  begin(cookieHeader: string | undefined | null, options: BeginOptions): RequestSession<Data> {
    return new RequestSession(this, this.manager.readCookie(cookieHeader ?? undefined), options);
  }

  /** Whether a request counts as https: TLS to us, or a trusted proxy saying the client used https. */
  isSecure(tls: boolean, forwardedProto: string | readonly string[] | null | undefined): boolean {
    return tls || (this.trustProxy && firstForwardedProto(forwardedProto) === 'https');
  }

  /**
   * The client's address: with `trustProxy` the leftmost `X-Forwarded-For` entry (the client as
   * the proxy saw it), otherwise the peer's address. Only ever a binding signal, never access control.
   */
  clientIp(forwardedFor: string | readonly string[] | null | undefined, peer: string | null | undefined): string | undefined {
    if (this.trustProxy) {
      const forwarded = firstForwardedFor(forwardedFor);
      if (forwarded !== null) return forwarded;
    }
    return typeof peer === 'string' && peer.length > 0 ? peer : undefined;
  }
}

function bindingOf(options: BindingOptions | undefined): Binding | null {
  if (options === undefined) return null;
  if (typeof options !== 'object' || options === null) throw configError('binding', 'must be an options object ({ key, onChange?, signals? })');
  try {
    return { check: createBindingCheck(options), field: options.field ?? DEFAULT_BINDING.field };
  } catch (error) {
    // Name the adapter option: "binding.key", not "key".
    if (isSessionError(error, 'ESESS_CONFIG') && typeof error.context.option === 'string') {
      throw configError(`binding.${error.context.option}`, error.message.replace(/^Invalid option "[^"]*": /, ''));
    }
    throw error;
  }
}

/** The leftmost (client-facing) address in `X-Forwarded-For`, without brackets or port; null when there is none. */
export function firstForwardedFor(value: string | readonly string[] | null | undefined): string | null {
  const header = typeof value === 'string' ? value : value?.[0];
  if (!header) return null;
  let first = (header.split(',')[0] ?? '').trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(first);
  if (bracketed) first = bracketed[1] as string;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(first)) first = first.slice(0, first.lastIndexOf(':'));
  return first.length > 0 && first.length <= 64 ? first : null;
}

/** The leftmost (client-facing) protocol in `X-Forwarded-Proto`, lower-cased. */
export function firstForwardedProto(value: string | readonly string[] | null | undefined): string | null {
  const header = typeof value === 'string' ? value : value?.[0];
  if (!header) return null;
  return (header.split(',')[0] ?? '').trim().toLowerCase() || null;
}

type Phase = 'open' | 'committing' | 'committed' | 'failed';

/**
 * One request's view of its session. Loads at most once, writes only what changed, and hands
 * the adapter the Set-Cookie value to send with the response.
 */
export class RequestSession<Data extends SessionData = SessionData> {
  /** The verified session ID from the cookie, or null (no cookie, or a rejected one). */
  readonly cookieId: string | null;
  /** The session object handlers use: fields as properties, plus methods. */
  readonly view: SessionObject<Data>;
  /** The same object behind a lazy load. */
  readonly lazy: LazySession<Data>;
  readonly #runtime: SessionRuntime<Data>;
  readonly #manager: SessionManager<Data>;
  readonly #options: BeginOptions;
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

  constructor(runtime: SessionRuntime<Data>, cookieId: string | null, options: BeginOptions) {
    this.#runtime = runtime;
    this.#manager = runtime.manager;
    this.cookieId = cookieId;
    this.#options = options;
    this.view = createView(this);
    this.lazy = new LazyHandle(this);
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
    let loaded = this.cookieId === null ? null : await this.#manager.load(this.cookieId);
    if (loaded !== null && this.#session === null && this.#runtime.binding !== null) {
      const { action } = this.#runtime.binding.check(loaded, this.#client());
      if (action === 'destroy') {
        // Seen from another client: end it (the event is already out) and go on anonymously.
        await this.#manager.destroy(loaded);
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
    if (this.cookieId !== null || this.#loading !== null) {
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

  async regenerate(options: { keepData?: boolean } = {}): Promise<void> {
    const session = this.#writable();
    try {
      await this.#manager.regenerate(session, options);
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
      await this.#manager.destroy(session);
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
      const { setCookie } = await this.#manager.save(session);
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
      await this.#manager.touch(session);
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
        const { setCookie } = await this.#manager.save(session);
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

const INSPECT = Symbol.for('nodejs.util.inspect.custom');
const STATE = Symbol('elastic-session.state');
const BOUND = Symbol('elastic-session.bound');

/** A view's Proxy target: its request state and the methods handed out so far. */
interface ViewTarget {
  [STATE]: RequestSession<SessionData>;
  [BOUND]?: Map<string, unknown>;
}

type Method = (state: RequestSession<SessionData>, a?: unknown, b?: unknown) => unknown;

const METHODS = new Map<string, Method>([
  ['get', (state, field) => state.read(field as string)],
  ['set', (state, field, value) => state.write(field as string, value)],
  ['delete', (state, field) => state.remove(field as string)],
  ['has', (state, field) => state.has(field as string)],
  ['keys', (state) => state.keys()],
  ['toJSON', (state) => state.toJSON()],
  ['markChanged', (state, field) => state.markChanged(field as string)],
  ['regenerate', (state, options) => state.regenerate(options as { keepData?: boolean } | undefined)],
  ['destroy', (state) => state.destroy()],
  ['save', (state) => state.save()],
  ['touch', (state) => state.touch()],
]);

function accessor(state: RequestSession<SessionData>, key: string): { value: unknown } | null {
  switch (key) {
    case 'userId':
      return { value: state.userId };
    case 'isNew':
      return { value: state.current().isNew };
    case 'createdAt':
      return { value: state.current().createdAt };
    case 'expiresAt':
      return { value: state.current().expiresAt };
    default:
      return null;
  }
}

/** Methods are bound on first use, so `const { save } = req.session` works and unused ones cost nothing. */
function boundMethod(target: ViewTarget, key: string, method: Method): unknown {
  target[BOUND] ??= new Map();
  let bound = target[BOUND].get(key);
  if (bound === undefined) {
    const state = target[STATE];
    bound = (a?: unknown, b?: unknown) => method(state, a, b);
    target[BOUND].set(key, bound);
  }
  return bound;
}

const VIEW_PROTOTYPE: object = Object.create(Object.prototype, {
  // util.inspect looks at the target without running traps: show the data, not `{}`.
  [INSPECT]: {
    value(this: ViewTarget) {
      const state = this[STATE];
      return state.materialized ? { ...state.toJSON() } : '[session not loaded]';
    },
  },
});

/** One handler for every view; the state lives on the target. */
const VIEW_HANDLER: ProxyHandler<ViewTarget> = {
  get(target, key) {
    if (typeof key === 'symbol') return Reflect.get(target, key);
    const method = METHODS.get(key);
    if (method) return boundMethod(target, key, method);
    const state = target[STATE];
    const property = accessor(state, key);
    if (property) return property.value;
    if (key === 'then') return undefined;
    if (state.has(key)) return state.read(key);
    return key in Object.prototype ? Reflect.get(target, key) : undefined;
  },
  set(target, key, value: unknown) {
    if (typeof key === 'symbol') return Reflect.set(target, key, value);
    const state = target[STATE];
    if (key === 'userId') {
      state.userId = value as string | null;
      return true;
    }
    if (RESERVED_NAMES.has(key)) throw new TypeError(`"${key}" is not a session field; use session.set(${JSON.stringify(key)}, value) for a field of that name`);
    state.write(key, value);
    return true;
  },
  deleteProperty(target, key) {
    if (typeof key === 'symbol' || RESERVED_NAMES.has(key)) return false;
    target[STATE].remove(key);
    return true;
  },
  has(target, key) {
    if (typeof key === 'symbol') return Reflect.has(target, key);
    return (RESERVED_NAMES.has(key) && key !== 'then') || target[STATE].has(key);
  },
  ownKeys(target) {
    return target[STATE].keys();
  },
  getOwnPropertyDescriptor(target, key) {
    if (typeof key === 'symbol' || !target[STATE].has(key)) return undefined;
    return { value: target[STATE].read(key), writable: true, enumerable: true, configurable: true };
  },
  defineProperty(target, key, descriptor) {
    if (typeof key === 'symbol' || RESERVED_NAMES.has(key) || !('value' in descriptor)) return false;
    target[STATE].write(key, descriptor.value);
    return true;
  },
};

/** The Proxy that gives property access to fields, like express-session's `req.session.cart`. */
function createView<Data extends SessionData>(state: RequestSession<Data>): SessionObject<Data> {
  const target = Object.create(VIEW_PROTOTYPE) as ViewTarget;
  target[STATE] = state as unknown as RequestSession<SessionData>;
  return new Proxy(target, VIEW_HANDLER) as unknown as SessionObject<Data>;
}

/**
 * An RFC 9457 problem document for a session error, in the same shape the session service
 * answers with. `detail` is only ever the error's own message, which never holds secrets.
 */
export function problemOf(error: SessionError): { status: number; headers: Record<string, string>; body: string } {
  const title = ERROR_CODES[error.code].message;
  const problem: Record<string, unknown> = { type: `urn:elastic-session:error:${error.code}`, title, status: error.status, code: error.code };
  if (error.message !== title) problem.detail = error.message;
  const headers: Record<string, string> = { 'content-type': 'application/problem+json', 'cache-control': NO_STORE };
  // Worth retrying: another instance, or this one once the store is back.
  if (error.status === 503) headers['retry-after'] = '1';
  return { status: error.status, headers, body: JSON.stringify(problem) };
}

/** Response headers for a session cookie: a response that sets one must never be cached. */
export const NO_STORE = 'no-store';
