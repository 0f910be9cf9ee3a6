import type { StoredField, StoredSession, Watermark } from '../../core/types.js';
import { invalidInput } from '../kit/checks.js';

/**
 * The item values. Short names keep items small:
 * - a live session `{c, l, i, a, u, s, v, f}` (created, last seen, idle timeout, absolute expiry,
 *   user, user stamp, version, fields as `[value, stamp]`); releases before stamped principals
 *   wrote no `s`, which reads as `''`;
 * - a tombstone `{t, s}`: until when it guards the key, and the destroy's stamp (`s` left out when
 *   empty, as the previous release wrote every tombstone);
 * - a user's revoke watermark `{wm, until}` (its stamp and until when it matters).
 * The deadlines live in the values because memcached expires items in whole seconds.
 */
interface LiveRecord {
  c: number;
  l: number;
  i: number;
  a: number;
  u: string | null;
  s: string;
  v: number;
  f: Record<string, [string | null, string]>;
}

export type Decoded =
  | { kind: 'live'; session: StoredSession }
  | { kind: 'tombstone'; stamp: string; until: number }
  | { kind: 'watermark'; watermark: Watermark }
  | { kind: 'corrupt' };

const CORRUPT: Decoded = { kind: 'corrupt' };

export function encodeLive(session: StoredSession): Buffer {
  const f = Object.create(null) as LiveRecord['f'];
  for (const [name, field] of Object.entries(session.fields)) {
    if (!field || (typeof field.value !== 'string' && field.value !== null) || typeof field.stamp !== 'string') {
      throw invalidInput('A stored field needs a string or null value and a string stamp');
    }
    f[name] = [field.value, field.stamp];
  }
  const record: LiveRecord = {
    c: session.createdAt,
    l: session.lastSeenAt,
    i: session.idleTimeout,
    a: session.absoluteExpiresAt,
    u: session.userId ?? null,
    s: session.userStamp ?? '',
    v: session.version,
    f,
  };
  return Buffer.from(JSON.stringify(record));
}

export function encodeTombstone(stamp: string, until: number): Buffer {
  return Buffer.from(JSON.stringify(stamp === '' ? { t: until } : { t: until, s: stamp }));
}

export function encodeWatermark(watermark: Watermark): Buffer {
  return Buffer.from(JSON.stringify({ wm: watermark.stamp, until: watermark.until }));
}

export function decodeRecord(value: Buffer): Decoded {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    return CORRUPT;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return CORRUPT;
  const record = parsed as Partial<Record<keyof LiveRecord | 't' | 'wm' | 'until', unknown>>;
  if ('wm' in record) return typeof record.wm === 'string' && isInteger(record.until) ? { kind: 'watermark', watermark: { stamp: record.wm, until: record.until } } : CORRUPT;
  const stamp = record.s ?? '';
  if (typeof stamp !== 'string') return CORRUPT;
  if ('t' in record) return isInteger(record.t) ? { kind: 'tombstone', stamp, until: record.t } : CORRUPT;
  const { c, l, i, a, u, v, f } = record;
  if (!isInteger(c) || !isInteger(l) || !isInteger(i) || !isInteger(a) || !isInteger(v) || (typeof u !== 'string' && u !== null)) return CORRUPT;
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return CORRUPT;
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const [name, entry] of Object.entries(f)) {
    if (!Array.isArray(entry) || entry.length !== 2) return CORRUPT;
    const [fieldValue, fieldStamp] = entry as unknown[];
    if ((typeof fieldValue !== 'string' && fieldValue !== null) || typeof fieldStamp !== 'string') return CORRUPT;
    fields[name] = { value: fieldValue, stamp: fieldStamp };
  }
  return { kind: 'live', session: { createdAt: c, lastSeenAt: l, idleTimeout: i, absoluteExpiresAt: a, userId: u, userStamp: stamp, version: v, fields } };
}

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}
