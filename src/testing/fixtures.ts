import { randomBytes } from 'node:crypto';
import { formatStamp } from '../core/hlc.js';
import type { StoredField, StoredSession } from '../core/types.js';

/**
 * Builders for store tests: the conformance suite uses them, and a store's own tests should too
 * rather than copy them.
 */

const HOUR = 3_600_000;

/** A fresh random store key (the shape the manager writes: base64url of 32 bytes). */
export function storeKey(): string {
  return randomBytes(32).toString('base64url');
}

/** A clock stamp at `wall` ms with a random node part, so two stamps never tie. */
export function stampAt(wall: number, counter = 0, node = randomBytes(4).toString('hex')): string {
  return formatStamp(wall, counter, node);
}

/** Session fields from plain values: each JSON-encoded and stamped at `now`. */
export function storedFields(values: Record<string, unknown>, now = Date.now()): Record<string, StoredField> {
  const fields = Object.create(null) as Record<string, StoredField>;
  for (const [name, value] of Object.entries(values)) fields[name] = { value: value === undefined ? null : JSON.stringify(value), stamp: stampAt(now) };
  return fields;
}

/**
 * A live record created at `now`: idle timeout one hour, absolute expiry one day, no principal
 * (its stamp is the creation stamp), version 1; `meta` overrides any of it.
 */
export function storedRecord(values: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}, now = Date.now()): StoredSession {
  return {
    createdAt: now,
    lastSeenAt: now,
    idleTimeout: HOUR,
    absoluteExpiresAt: now + 24 * HOUR,
    userId: null,
    userStamp: stampAt(now),
    version: 1,
    fields: storedFields(values, now),
    ...meta,
  };
}

/** The decoded value of one field, or undefined when absent or deleted. */
export function fieldValue(record: StoredSession | null | undefined, field: string): unknown {
  const stored = record?.fields[field];
  return stored?.value == null ? undefined : JSON.parse(stored.value);
}
