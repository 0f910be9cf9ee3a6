import type { CookieOptions } from './cookie.js';
import type { DataLimits } from './json.js';
import type { SessionData } from './session.js';
import type { Clock, SessionStore } from './types.js';

/** The manager's options, their defaults, and the small types of its calls. */

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
  /**
   * Most live sessions one user may have. A save that binds a session to a user (sets its
   * principal) beyond it evicts or is refused, as `onTooManySessions` says. Needs a store with a
   * user index. Logins of one user that race may overshoot it briefly. @default no limit
   */
  maxSessionsPerUser?: number;
  /**
   * `'evict-oldest'`: the save goes through, then the user's oldest other sessions (by
   * `createdAt`) are destroyed until `maxSessionsPerUser` remain. `'refuse'`: the save fails with
   * ESESS_TOO_MANY_SESSIONS, writes nothing, and the session's principal falls back to the stored one.
   * @default 'evict-oldest'
   */
  onTooManySessions?: 'evict-oldest' | 'refuse';
}

/**
 * Who caused a call, for the events it publishes: adapters pass the client's address. Only
 * ever reported, never used for a decision.
 */
export interface EventContext {
  ip?: string | null | undefined;
}

export const DEFAULT_OPTIONS = {
  idleTimeout: 1800,
  absoluteTimeout: 86_400,
  touchAfter: 0.1,
  maxRetries: 10,
  onTooManySessions: 'evict-oldest',
} as const;

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

export interface RegenerateOptions {
  /** Carry the data (and the authentication state) over to the new ID. @default true */
  keepData?: boolean;
  /**
   * Start a new absolute window (the manager's `absoluteTimeout`) at the new ID. By default the absolute expiry stays: a session
   * regenerated on every privilege change must not outlive its absolute timeout. Renew it only on
   * the login that turns an anonymous session into an authenticated one. @default false
   */
  renewAbsolute?: boolean;
}

/** A validly signed session cookie: its ID, and whether the newest secret signed it. */
export interface CookieCandidate {
  id: string;
  current: boolean;
}

/** Most validly signed duplicates of the session cookie one request may make the manager load. */
export const MAX_COOKIE_CANDIDATES = 3;

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
