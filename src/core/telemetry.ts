import diagnostics from 'node:diagnostics_channel';
import type { AuthLevel } from './session.js';

/**
 * Telemetry goes out on `node:diagnostics_channel`. Subscribers (metrics, tracing) cost nothing
 * when absent. Payloads never carry session IDs, store keys, tokens or session contents; security
 * and lifecycle events carry an `EventSubject` (time, principal, opaque handle, client address).
 */

export const CHANNELS = {
  /** Tracing channel around every store call: `{ store, operation }`. */
  store: 'elastic-session:store',
  /** Session lifecycle: `SessionEvent`. */
  session: 'elastic-session:session',
  /** A cookie that failed format or tag checks: `CookieRejectedEvent`. */
  cookieRejected: 'elastic-session:cookie:rejected',
  /** A session token that failed verification: `TokenRejectedEvent` (the reason is a short fixed word, never the token). */
  tokenRejected: 'elastic-session:token:rejected',
  /** Stored bytes that could not be read and were treated as absent: `{ store }`. */
  corrupt: 'elastic-session:store:corrupt',
  /** A compare-and-swap attempt lost: `{ store, attempt }`. */
  conflict: 'elastic-session:conflict',
  /** A session seen from another client than it was bound to: `AnomalyEvent`. */
  anomaly: 'elastic-session:anomaly',
  /** Near-cache events: `NearCacheEvent` (hit, miss, invalidation local|remote, eviction, flush; entries and bytes after it). */
  nearCache: 'elastic-session:near-cache',
  /** Change log (src/changelog/telemetry.ts): `{ transport, count }` / `{ transport, stage, count }` / `{ transport, consumer, entries, ageMs }`. */
  changeLogAppended: 'elastic-session:changelog:appended',
  changeLogRelayed: 'elastic-session:changelog:relayed',
  changeLogFailed: 'elastic-session:changelog:failed',
  changeLogLag: 'elastic-session:changelog:lag',
  changeLogExpired: 'elastic-session:changelog:expired',
} as const;

/**
 * Who and what a security or lifecycle event is about, so an operator can act on it. Never a
 * session ID, store key, token or field value: the session appears only as its opaque handle
 * (the one `listUserSessions` shows and `revokeUserSession` takes).
 */
export interface EventSubject {
  /** When it happened: ISO 8601 in UTC (the manager's clock). */
  at: string;
  /** The session's principal, when it has one. */
  userId?: string;
  /** The session's opaque handle, when the event is about one session. */
  handle?: string;
  /** The address of the client whose request caused the event, when known (the adapters know it). */
  ip?: string;
}

/** What a publisher knows about an event's subject; missing parts are left out of the payload. */
export interface SubjectDetails {
  /** Milliseconds since the epoch. @default Date.now() */
  at?: number;
  userId?: string | null | undefined;
  handle?: string | null | undefined;
  ip?: string | null | undefined;
}

/** Which binding signals changed, and what was done about it. Never the signals' values (the current address only as `ip`). */
export interface AnomalyEvent extends EventSubject {
  signals: ('user-agent' | 'network')[];
  action: 'event' | 'destroy';
}

export type SessionEventType = 'created' | 'updated' | 'regenerated' | 'destroyed' | 'expired' | 'revoked' | 'authenticated';

export interface SessionEvent extends EventSubject {
  type: SessionEventType;
  store: string;
  /**
   * `expired`: which deadline passed (none for sweeps); `revoked`: `session-limit` when the
   * session was evicted by `maxSessionsPerUser`.
   */
  reason?: 'idle' | 'absolute' | 'session-limit';
  /** For bulk revocation and sweeps. */
  count?: number;
  /** `regenerated`: the handle of the ID that was retired (`handle` is the new one). */
  previousHandle?: string;
  /** `authenticated`: how, as given to `markAuthenticated()`. */
  method?: string;
  /** `authenticated`: the assurance level. */
  level?: AuthLevel;
}

/** A cookie that failed format or tag checks. */
export interface CookieRejectedEvent extends EventSubject {
  reason: string;
}

/** A session token that failed verification. */
export interface TokenRejectedEvent extends EventSubject {
  reason: string;
}

export interface StoreOperationContext {
  store: string;
  operation: string;
}

/** Handlers of the store tracing channel; each gets the operation's context (plus `error` or `result`). */
export interface StoreTracingHandlers {
  start(context: StoreOperationContext): void;
  end(context: StoreOperationContext): void;
  asyncStart(context: StoreOperationContext): void;
  asyncEnd(context: StoreOperationContext): void;
  error(context: StoreOperationContext & { error: unknown }): void;
}

/**
 * The store tracing channel, typed as this package uses it rather than as node's
 * `TracingChannel`: @types/node 26 swapped that class's type parameters (<Store, Context>
 * before, <Context, Store> since), so a declaration naming it fails one or the other with
 * TS2344 under `skipLibCheck: false`.
 */
export interface StoreTracingChannel {
  readonly start: { readonly hasSubscribers: boolean };
  readonly asyncEnd: { readonly hasSubscribers: boolean };
  readonly error: { readonly hasSubscribers: boolean };
  subscribe(handlers: Partial<StoreTracingHandlers>): void;
  unsubscribe(handlers: Partial<StoreTracingHandlers>): void;
  tracePromise<T>(fn: () => Promise<T>, context: StoreOperationContext): Promise<T>;
}

export const storeChannel: StoreTracingChannel = diagnostics.tracingChannel<unknown, StoreOperationContext>(CHANNELS.store);
const sessionChannel = diagnostics.channel(CHANNELS.session);
const cookieChannel = diagnostics.channel(CHANNELS.cookieRejected);
const tokenChannel = diagnostics.channel(CHANNELS.tokenRejected);
const corruptChannel = diagnostics.channel(CHANNELS.corrupt);
const conflictChannel = diagnostics.channel(CHANNELS.conflict);
const anomalyChannel = diagnostics.channel(CHANNELS.anomaly);

export async function traceStore<T>(store: string, operation: string, fn: () => Promise<T>): Promise<T> {
  if (!storeChannel.start.hasSubscribers && !storeChannel.asyncEnd.hasSubscribers && !storeChannel.error.hasSubscribers) return fn();
  // tracePromise puts the resolved value on the context; a store result holds session contents.
  let result: T | undefined;
  await storeChannel.tracePromise(async () => {
    result = await fn();
  }, { store, operation });
  return result as T;
}

/** The subject fields of an event, without the parts that are unknown. */
export function subjectOf(details: SubjectDetails = {}): EventSubject {
  const subject: EventSubject = { at: new Date(details.at ?? Date.now()).toISOString() };
  if (typeof details.userId === 'string') subject.userId = details.userId;
  if (typeof details.handle === 'string') subject.handle = details.handle;
  if (typeof details.ip === 'string' && details.ip.length > 0) subject.ip = details.ip;
  return subject;
}

/** Built only when someone listens: the handle costs a hash. */
export function publishSession(event: () => SessionEvent): void {
  if (sessionChannel.hasSubscribers) sessionChannel.publish(event());
}

export function publishCookieRejected(reason: string, details?: () => SubjectDetails): void {
  if (cookieChannel.hasSubscribers) cookieChannel.publish({ reason, ...subjectOf(details?.()) } satisfies CookieRejectedEvent);
}

export function publishTokenRejected(reason: string, details?: () => SubjectDetails): void {
  if (tokenChannel.hasSubscribers) tokenChannel.publish({ reason, ...subjectOf(details?.()) } satisfies TokenRejectedEvent);
}

export function publishCorrupt(store: string): void {
  if (corruptChannel.hasSubscribers) corruptChannel.publish({ store });
}

export function publishConflict(store: string, attempt: number): void {
  if (conflictChannel.hasSubscribers) conflictChannel.publish({ store, attempt });
}

export function publishAnomaly(event: () => AnomalyEvent): void {
  if (anomalyChannel.hasSubscribers) anomalyChannel.publish(event());
}
