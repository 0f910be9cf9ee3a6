import { handleOf } from '../core/ids.js';
import type { ChangeEntry } from './entry.js';

/**
 * Lifecycle events for consumers (audit, analytics, security), derived from change-log entries.
 * An event names a session only by its opaque handle (`handleOf(storeKey)`, the one
 * `GET /v1/users/{u}/sessions` shows): never a session ID, store key or field value.
 */

export type LifecycleEventType = 'created' | 'updated' | 'touched' | 'regenerated' | 'destroyed' | 'revoked' | 'expired';

export interface LifecycleEvent {
  /** The entry's ID: one entry gives at most one event, so consumers deduplicate on it. */
  id: string;
  type: LifecycleEventType;
  /** ISO-8601. */
  at: string;
  region: string | null;
  handle: string;
  userId: string | null;
  /** Names of the fields changed (every field for `created`; none for the others but `updated`). */
  fields: string[];
  /**
   * `expired`: "idle" | "absolute"; `revoked`: "revoke-all" (a log-out-everywhere) | "watermark"
   * (a replicated revoke); "merged" for events of a state that arrived from another replica.
   */
  reason: string | null;
  /** `regenerated` only: the handle of the old session. */
  previousHandle?: string;
}

/** The event of an entry, or null for entries no consumer needs (watermarks, a tombstone's guard extended by a merge). */
export function eventOf(entry: ChangeEntry): LifecycleEvent | null {
  if (entry.key === null) return null;
  const event = (type: LifecycleEventType, reason: string | null = entry.reason, fields: string[] = []): LifecycleEvent => ({
    id: entry.id,
    type,
    at: new Date(entry.at).toISOString(),
    region: entry.region,
    handle: handleOf(entry.key as string),
    userId: entry.userId,
    fields,
    reason,
  });
  switch (entry.op) {
    case 'create':
      return event('created', null, entry.fields);
    case 'update':
      return event('updated', null, entry.fields);
    case 'touch':
      return event('touched', null);
    case 'destroy':
      return event('destroyed', null);
    case 'regenerate':
      // The new session is the subject; its `create` entry came just before (event `created`).
      return { ...event('regenerated', null), handle: handleOf(entry.next as string), previousHandle: handleOf(entry.key) };
    case 'revoke':
      return event('revoked');
    case 'expire':
      return event('expired');
    case 'merge':
      return mergeEvent(entry, event);
    case 'watermark':
      return null;
  }
}

function mergeEvent(entry: ChangeEntry, event: (type: LifecycleEventType, reason?: string | null, fields?: string[]) => LifecycleEvent): LifecycleEvent | null {
  const before = entry.previous ?? 'absent';
  const after = entry.state?.kind ?? 'absent';
  if (after === 'live') {
    if (before !== 'live') return event('created', 'merged', entry.fields);
    return entry.fields.length > 0 || entry.principal ? event('updated', 'merged', entry.fields) : event('touched', 'merged');
  }
  if (after === 'tombstone') {
    if (before === 'tombstone') return null;
    // A record killed by the user's revoke watermark leaves an unstamped tombstone.
    if (before === 'live' && entry.state?.kind === 'tombstone' && entry.state.stamp === '') return event('revoked', 'watermark');
    return event('destroyed', 'merged');
  }
  return before === 'live' ? event('expired', 'merged') : null;
}

/** The event as one line of JSON, keys in the documented order. */
export function encodeEvent(event: LifecycleEvent): string {
  const { id, type, at, region, handle, userId, fields, reason, previousHandle } = event;
  return JSON.stringify({ id, type, at, region, handle, userId, fields, reason, ...(previousHandle === undefined ? {} : { previousHandle }) });
}
