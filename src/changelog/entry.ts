import { SessionError } from '../core/errors.js';
import { STAMP_PATTERN } from '../core/hlc.js';
import type { LiveState, StoredField, StoredSession, TombstoneState } from '../core/types.js';

/**
 * One change a store acknowledged, as it travels on the change log. Replaying an entry into any
 * store with the replica powers is `mergeState(key, state)` (or `mergeWatermark(userId,
 * watermark)`), so every entry merges idempotently and in any order (the record is a CRDT,
 * docs/record-model.md). The state is the key's state after the write, stamps included: the
 * whole record for a create (and a merge into a free key), the tombstone for a destroy, and for
 * a delta the record's metadata after the write with only the fields it changed (`partial`) — a
 * record too, which merges like the whole one, so a key's entries rebuild it from its first one.
 * Field values are as the store holds them: ciphertext under `encryptedStore`.
 */

export const ENTRY_VERSION = 1;

export type EntryOp =
  /** A new record (`create`). */
  | 'create'
  /** A delta that changed fields or the principal (`apply`). */
  | 'update'
  /** A delta that only moved `lastSeenAt` (the sliding refresh, `touch`). */
  | 'touch'
  /** A destroy: the key's tombstone. */
  | 'destroy'
  /** The old key's tombstone of a regenerate; `next` is the new key, whose `create` precedes it. */
  | 'regenerate'
  /** A session killed by a revoke-all (`reason` "revoke-all") or a revoke watermark ("watermark"). */
  | 'revoke'
  /** Redis expired the key; found by the reconciler (`reason` "idle" or "absolute"). */
  | 'expire'
  /** A foreign state merged (`mergeState`); `previous` is what the key held before. */
  | 'merge'
  /** A user's revoke watermark raised (`destroyByUser` with a stamp, `mergeWatermark`). */
  | 'watermark';

export const ENTRY_OPS: readonly EntryOp[] = ['create', 'update', 'touch', 'destroy', 'regenerate', 'revoke', 'expire', 'merge', 'watermark'];

export interface ChangeEntry {
  /** Unique across stores and streams (random per write, then a counter): the key of idempotent consumers. */
  id: string;
  op: EntryOp;
  /** When the change happened, in ms since the epoch (the server's clock; for `expire`, the deadline that passed). */
  at: number;
  /** The `region` option of the store that wrote it. */
  region: string | null;
  /** The store key (never a session ID); null only for `watermark`. */
  key: string | null;
  /** The principal: the record's after the write, the destroyed record's for tombstones, the revoked user's. */
  userId: string | null;
  /** The key's state after the write; null for `expire`, `watermark`, and a merge that left nothing. */
  state: LiveState | TombstoneState | null;
  /** Names of the fields the write changed (every field for `create`). */
  fields: string[];
  /** Whether the principal register changed (`update`, `merge`). */
  principal: boolean;
  /**
   * The live state holds the metadata after the write and only the fields it changed (`update`,
   * `touch`, a `merge` into a live key): merged after the key's earlier entries it gives the
   * record; merged into a free key it gives a record without the unchanged fields.
   */
  partial: boolean;
  /** `revoke`: "revoke-all" | "watermark"; `expire`: "idle" | "absolute"; else null. */
  reason: string | null;
  /** `regenerate`: the new key. */
  next: string | null;
  /** `merge`: what the key held before. */
  previous: 'absent' | 'live' | 'tombstone' | null;
  /** `watermark`: the user's watermark stamp after the raise. */
  watermark: string | null;
}

/** What replaying an entry does to a store. */
export type ReplayAction =
  | { kind: 'state'; key: string; state: LiveState | TombstoneState }
  | { kind: 'watermark'; userId: string; stamp: string }
  /** Nothing to merge: an expiry (every replica expires by itself) or a merge that left nothing. */
  | { kind: 'none' };

export function replayAction(entry: ChangeEntry): ReplayAction {
  if (entry.op === 'watermark' && entry.userId !== null && entry.watermark !== null) return { kind: 'watermark', userId: entry.userId, stamp: entry.watermark };
  if (entry.key !== null && entry.state !== null) return { kind: 'state', key: entry.key, state: entry.state };
  return { kind: 'none' };
}

export function malformed(problem: string): SessionError {
  return new SessionError('ESESS_INVALID_INPUT', { message: `Malformed change-log entry: ${problem}`, context: { component: 'changelog' } });
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function optionalString(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw malformed(`${name} must be a string or null`);
  return value;
}

function integer(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value)) throw malformed(`${name} must be an integer`);
  return value as number;
}

function stamp(value: unknown, name: string, allowEmpty: boolean): string {
  if (typeof value !== 'string' || !(STAMP_PATTERN.test(value) || (allowEmpty && value === ''))) throw malformed(`${name} must be a clock stamp`);
  return value;
}

/** Lua's JSON encoder writes an empty list as `{}`. */
function names(value: unknown): string[] {
  if (isObject(value) && Object.keys(value).length === 0) return [];
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string')) throw malformed('fields must be a list of names');
  return value as string[];
}

function decodeState(value: unknown): LiveState | TombstoneState | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw malformed('state must be an object');
  if (value.kind === 'tombstone') return { kind: 'tombstone', stamp: stamp(value.stamp, 'a tombstone stamp', true), until: integer(value.until, 'until') };
  if (value.kind !== 'live' || !isObject(value.record)) throw malformed('state must be live or a tombstone');
  const record = value.record;
  const fields = Object.create(null) as Record<string, StoredField>;
  if (!isObject(record.fields)) throw malformed('fields of a record must be an object');
  for (const [name, field] of Object.entries(record.fields)) {
    if (!isObject(field) || (typeof field.value !== 'string' && field.value !== null)) throw malformed('a stored field needs a string or null value');
    fields[name] = { value: field.value, stamp: stamp(field.stamp, 'a field stamp', false) };
  }
  const session: StoredSession = {
    createdAt: integer(record.createdAt, 'createdAt'),
    lastSeenAt: integer(record.lastSeenAt, 'lastSeenAt'),
    idleTimeout: integer(record.idleTimeout, 'idleTimeout'),
    absoluteExpiresAt: integer(record.absoluteExpiresAt, 'absoluteExpiresAt'),
    userId: optionalString(record.userId, 'userId'),
    userStamp: stamp(record.userStamp ?? '', 'userStamp', true),
    version: record.version === undefined ? 0 : integer(record.version, 'version'),
    fields,
  };
  return { kind: 'live', record: session };
}

/** Parses and checks one entry in its portable JSON form (`encodeEntry`). Throws ESESS_INVALID_INPUT. */
export function decodeEntry(text: string): ChangeEntry {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw malformed('not JSON');
  }
  return entryFrom(raw);
}

/** Checks an entry given as a plain object (the JSON form parsed, or a transport's fields gathered). */
export function entryFrom(raw: unknown): ChangeEntry {
  if (!isObject(raw)) throw malformed('not an object');
  if (raw.v !== ENTRY_VERSION) throw malformed(`unknown version ${String(raw.v)}`);
  if (typeof raw.id !== 'string' || raw.id.length === 0) throw malformed('id must be a non-empty string');
  if (!(ENTRY_OPS as readonly unknown[]).includes(raw.op)) throw malformed('unknown op');
  const op = raw.op as EntryOp;
  const previous = raw.previous ?? null;
  if (previous !== null && previous !== 'absent' && previous !== 'live' && previous !== 'tombstone') throw malformed('previous must be absent, live or tombstone');
  const entry: ChangeEntry = {
    id: raw.id,
    op,
    at: integer(raw.at, 'at'),
    region: optionalString(raw.region, 'region'),
    key: optionalString(raw.key, 'key'),
    userId: optionalString(raw.userId, 'userId'),
    state: decodeState(raw.state),
    fields: names(raw.fields ?? []),
    principal: raw.principal === true,
    partial: raw.partial === true,
    reason: optionalString(raw.reason, 'reason'),
    next: optionalString(raw.next, 'next'),
    previous,
    watermark: raw.watermark === undefined || raw.watermark === null ? null : stamp(raw.watermark, 'watermark', false),
  };
  if (op === 'watermark' ? entry.userId === null || entry.watermark === null : entry.key === null) throw malformed(`${op} without its ${op === 'watermark' ? 'user and stamp' : 'key'}`);
  if (op === 'regenerate' && entry.next === null) throw malformed('regenerate without the new key');
  return entry;
}

/** The portable JSON form of an entry (for transports whose messages are one body, and for tests). */
export function encodeEntry(entry: ChangeEntry): string {
  return JSON.stringify({ v: ENTRY_VERSION, ...entry });
}
