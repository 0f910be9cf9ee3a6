import { decodeRecord } from '../stores/redis/codec.js';
import type { ChangeEntry } from './entry.js';
import { entryFrom, malformed } from './entry.js';

/**
 * The change log's wire format on Redis Streams. The store's scripts write each entry as flat
 * stream fields, without building JSON in Lua (docs/change-log.md, "On Redis Streams"):
 *
 *   v "1", id, op, and where they apply: at (ms; else the stream ID's time), key, region, user, changed (a JSON list of
 *   names), principal "1", partial "1", reason, next, previous, watermark; then `state`: "live"
 *   followed by fields encoded as the session hash holds them (m:c m:l m:i m:a m:v m:u m:s
 *   f:<name> ..., see `src/stores/redis/scripts.ts`), "tombstone" followed by m:S (stamp) and
 *   m:T (until), or "json" with the live state as JSON in `record` (a record too large for one
 *   XADD); no `state` for entries without one.
 */

/** A stream entry's fields (as `XRANGE` returns them) as a change entry. Throws ESESS_INVALID_INPUT. */
export function decodeStreamEntry(fields: readonly string[] | null, streamId: string): ChangeEntry {
  if (fields === null) throw malformed('trimmed');
  const map = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < fields.length; i += 2) map[fields[i] as string] = fields[i + 1] as string;
  if (map.v !== '1') throw malformed(`unknown version ${map.v ?? '(none)'}`);
  // The time of the write is its stream ID's (Redis time); an expiry carries its deadline.
  const at = Number(map.at ?? streamId.split('-')[0]);
  let changed: unknown = [];
  if (map.changed !== undefined) {
    try {
      changed = JSON.parse(map.changed);
    } catch {
      throw malformed('changed is not JSON');
    }
  }
  let state: unknown = null;
  if (map.state === 'live') {
    const record = decodeRecord(map);
    if (record === null || record === 'corrupt') throw malformed('unreadable record');
    state = { kind: 'live', record };
    // A create carries the whole record: every field is new.
    if (map.op === 'create') changed = Object.keys(record.fields);
  } else if (map.state === 'tombstone') {
    state = { kind: 'tombstone', stamp: map['m:S'] ?? '', until: Number(map['m:T']) };
  } else if (map.state === 'json') {
    try {
      state = JSON.parse(map.record ?? '');
    } catch {
      throw malformed('record is not JSON');
    }
    if (map.op === 'create') changed = Object.keys((state as { record?: { fields?: object } }).record?.fields ?? {});
  } else if (map.state !== undefined) {
    throw malformed('unknown state');
  }
  return entryFrom({
    v: 1,
    id: map.id,
    op: map.op,
    at,
    region: map.region ?? null,
    key: map.key ?? null,
    userId: map.user ?? null,
    state,
    fields: changed,
    principal: map.principal === '1',
    partial: map.partial === '1',
    reason: map.reason ?? null,
    next: map.next ?? null,
    previous: map.previous ?? null,
    watermark: map.watermark ?? null,
  });
}

/** Whether a stream entry is a change-log entry (an events stream's entries have the one field `event`). */
export function isChangeLogEntry(fields: readonly string[] | null): boolean {
  return fields !== null && fields[0] === 'v';
}
