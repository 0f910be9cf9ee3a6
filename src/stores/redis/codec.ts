import { createHash, randomBytes } from 'node:crypto';
import { SessionError } from '../../core/errors.js';
import type { KeyState, StoredField, StoredSession, StoredSummary } from '../../core/types.js';

/** How records map to Redis keys and hash fields (the layout is described in `scripts.ts`). */

/** The metadata a Cluster listing reads per member: version, created, lastSeen, idle, abs, user, tombstone. */
export const META = ['m:v', 'm:c', 'm:l', 'm:i', 'm:a', 'm:u', 'm:t'] as const;

/** The Redis keys of one store prefix. */
export class RedisKeys {
  readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  session(key: string): string {
    return `${this.prefix}{${checkKey(key)}}`;
  }

  /** The user's index; the watermark shares its hash tag, so both live in one slot. */
  index(userId: string): string {
    return `${this.prefix}u:{${userTag(userId)}}`;
  }

  watermark(userId: string): string {
    return `${this.prefix}w:{${userTag(userId)}}`;
  }
}

/** SHA-1 of the user ID, as the scripts compute it with `redis.sha1hex`: bounded, and no e-mail address in key names. */
function userTag(userId: string): string {
  if (typeof userId !== 'string' || userId.length === 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'userId must be a non-empty string', context: { field: 'userId' } });
  return createHash('sha1').update(userId, 'utf8').digest('hex');
}

export function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512 || /[{}]/.test(key)) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A store key must be 1 to 512 characters without "{" or "}"', context: { store: 'redis' } });
  }
  return key;
}

export function num(value: number, name: string): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new SessionError('ESESS_INVALID_INPUT', { message: `${name} must be a finite number`, context: { field: name } });
  return String(value);
}

export function encodeField(field: StoredField): string {
  if (!field || typeof field.stamp !== 'string' || field.stamp.length === 0 || field.stamp.includes('|')) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A field stamp must be a non-empty string without "|"', context: { store: 'redis' } });
  }
  if (field.value === null) return field.stamp;
  if (typeof field.value !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'A field value must be JSON text or null', context: { store: 'redis' } });
  return `${field.stamp}|${field.value}`;
}

/** Fields as script arguments: pairs of hash field and encoded value. */
export function fieldArgs(fields: Record<string, StoredField>): string[] {
  const args: string[] = [];
  for (const [name, field] of Object.entries(fields)) args.push(`f:${name}`, encodeField(field));
  return args;
}

/** A whole record as script arguments: created, lastSeen, idle, abs, hasUser, user, userStamp. */
export function recordArgs(record: StoredSession): string[] {
  return [
    num(record.createdAt, 'createdAt'),
    num(record.lastSeenAt, 'lastSeenAt'),
    num(record.idleTimeout, 'idleTimeout'),
    num(record.absoluteExpiresAt, 'absoluteExpiresAt'),
    record.userId === null ? '0' : '1',
    record.userId ?? '',
    record.userStamp,
  ];
}

/** Names one store call, so a command ioredis resends after a dropped connection is recognised as a replay. */
export function operationId(): string {
  return randomBytes(8).toString('hex');
}

/** The record in a session hash; null for absent or tombstone; 'corrupt' when unreadable. */
export function decodeRecord(hash: Record<string, string>): StoredSession | null | 'corrupt' {
  const names = Object.keys(hash);
  if (names.length === 0 || hash['m:t'] !== undefined) return null;
  const createdAt = Number(hash['m:c']);
  const lastSeenAt = Number(hash['m:l']);
  const idleTimeout = Number(hash['m:i']);
  const absoluteExpiresAt = Number(hash['m:a']);
  const version = Number(hash['m:v']);
  if (![createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, version].every((value) => Number.isFinite(value)) || hash['m:v'] === '') return 'corrupt';
  const fields: Record<string, StoredField> = Object.create(null) as Record<string, StoredField>;
  for (const name of names) {
    if (!name.startsWith('f:')) continue;
    const encoded = hash[name] as string;
    const bar = encoded.indexOf('|');
    const stamp = bar < 0 ? encoded : encoded.slice(0, bar);
    if (stamp.length === 0) return 'corrupt';
    fields[name.slice(2)] = { value: bar < 0 ? null : encoded.slice(bar + 1), stamp };
  }
  // Records of the previous release have no m:s: their principal orders before every stamp.
  return { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId: hash['m:u'] ?? null, userStamp: hash['m:s'] ?? '', version, fields };
}

/**
 * The state in a session hash (as a flat HGETALL reply); `expireAt` is the key's expiry, the
 * guard of a tombstone of the previous release (which kept only m:t).
 */
export function decodeState(flat: string[], expireAt: number): KeyState | 'corrupt' {
  const hash = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i] as string] = flat[i + 1] as string;
  if (hash['m:t'] === undefined) {
    const record = decodeRecord(hash);
    return record === null || record === 'corrupt' ? record : { kind: 'live', record };
  }
  const until = hash['m:T'] === undefined ? expireAt : Number(hash['m:T']);
  if (!Number.isSafeInteger(until)) return 'corrupt';
  return { kind: 'tombstone', stamp: hash['m:S'] ?? '', until };
}

export function summary(key: string, created: unknown, lastSeen: unknown, idle: unknown, abs: unknown): StoredSummary {
  const lastSeenAt = Number(lastSeen);
  return { key, createdAt: Number(created), lastSeenAt, expiresAt: Math.min(lastSeenAt + Number(idle), Number(abs)) };
}
