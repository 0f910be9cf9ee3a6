/**
 * The session object handlers see: data fields as properties (`req.session.cart`), plus methods,
 * over one request's session state.
 */
import type { RegenerateOptions } from '../core/manager.js';
import type { Authentication, AuthenticationInput, AuthLevel, SessionData } from '../core/session.js';
import type { RequestSession } from './request-session.js';

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
  'authentication',
  'authenticatedAt',
  'markAuthenticated',
  'authenticatedWithin',
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
  /** The latest authentication (`{ at, method, level }`), or null: an anonymous session was never marked. */
  readonly authentication: Authentication | null;
  /** When the session was last authenticated, or null. */
  readonly authenticatedAt: Date | null;
  /**
   * Records that the user just authenticated (after `regenerate()` on login; again on step-up or
   * re-authentication). Stored with the session but never among its data fields.
   */
  markAuthenticated(input: AuthenticationInput): void;
  /** Whether the session was authenticated at most `seconds` ago, at `level` or higher when given. */
  authenticatedWithin(seconds: number, options?: { level?: AuthLevel }): boolean;
  /**
   * New session ID (call it on login and privilege changes). Keeps the data unless
   * `keepData: false`, and the absolute expiry unless `renewAbsolute: true` (for the login of an
   * anonymous session only); the old ID is destroyed and stays dead.
   */
  regenerate(options?: RegenerateOptions): Promise<void>;
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
  ['markAuthenticated', (state, input) => state.markAuthenticated(input as AuthenticationInput)],
  ['authenticatedWithin', (state, seconds, options) => state.authenticatedWithin(seconds as number, options as { level?: AuthLevel } | undefined)],
  ['regenerate', (state, options) => state.regenerate(options as RegenerateOptions | undefined)],
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
    case 'authentication':
      return { value: state.authentication };
    case 'authenticatedAt':
      return { value: state.authenticatedAt };
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
export function createView<Data extends SessionData>(state: RequestSession<Data>): SessionObject<Data> {
  const target = Object.create(VIEW_PROTOTYPE) as ViewTarget;
  target[STATE] = state as unknown as RequestSession<SessionData>;
  return new Proxy(target, VIEW_HANDLER) as unknown as SessionObject<Data>;
}
