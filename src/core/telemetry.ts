import diagnostics from 'node:diagnostics_channel';

/**
 * Telemetry goes out on `node:diagnostics_channel`. Subscribers (metrics, tracing) cost nothing
 * when absent. Payloads never carry session IDs, store keys, tokens or session contents.
 */

export const CHANNELS = {
  /** Tracing channel around every store call: `{ store, operation }`. */
  store: 'elastic-session:store',
  /** Session lifecycle: `SessionEvent`. */
  session: 'elastic-session:session',
  /** A cookie that failed format or tag checks: `{ reason }`. */
  cookieRejected: 'elastic-session:cookie:rejected',
  /** A session token that failed verification: `{ reason }` (a short fixed word, never the token). */
  tokenRejected: 'elastic-session:token:rejected',
  /** Stored bytes that could not be read and were treated as absent: `{ store }`. */
  corrupt: 'elastic-session:store:corrupt',
  /** A compare-and-swap attempt lost: `{ store, attempt }`. */
  conflict: 'elastic-session:conflict',
  /** A session seen from another client than it was bound to: `AnomalyEvent`. */
  anomaly: 'elastic-session:anomaly',
} as const;

/** Which binding signals changed, and what was done about it. Never the values themselves. */
export interface AnomalyEvent {
  signals: ('user-agent' | 'network')[];
  action: 'event' | 'destroy';
}

export type SessionEventType = 'created' | 'updated' | 'regenerated' | 'destroyed' | 'expired' | 'revoked';

export interface SessionEvent {
  type: SessionEventType;
  store: string;
  /** For `expired`: which deadline passed. */
  reason?: 'idle' | 'absolute';
  /** For bulk revocation. */
  count?: number;
}

export interface StoreOperationContext {
  store: string;
  operation: string;
}

export const storeChannel = diagnostics.tracingChannel<unknown, StoreOperationContext>(CHANNELS.store);
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

export function publishSession(event: SessionEvent): void {
  if (sessionChannel.hasSubscribers) sessionChannel.publish(event);
}

export function publishCookieRejected(reason: string): void {
  if (cookieChannel.hasSubscribers) cookieChannel.publish({ reason });
}

export function publishTokenRejected(reason: string): void {
  if (tokenChannel.hasSubscribers) tokenChannel.publish({ reason });
}

export function publishCorrupt(store: string): void {
  if (corruptChannel.hasSubscribers) corruptChannel.publish({ store });
}

export function publishConflict(store: string, attempt: number): void {
  if (conflictChannel.hasSubscribers) conflictChannel.publish({ store, attempt });
}

export function publishAnomaly(event: AnomalyEvent): void {
  if (anomalyChannel.hasSubscribers) anomalyChannel.publish(event);
}
