import type { SessionDelta, StoredSession } from '../core/types.js';

/**
 * Applies a delta to a stored session in place, by the contract's rules: per field, the later
 * stamp wins (a delete is a field with a null value); `lastSeenAt` only moves forward; `userId`
 * is replaced when given; the version rises by one. For stores that merge in the client.
 */
export function mergeDelta(session: StoredSession, delta: SessionDelta): void {
  for (const [name, change] of Object.entries(delta.fields ?? {})) {
    const current = session.fields[name];
    if (!current || change.stamp > current.stamp) session.fields[name] = { value: change.value, stamp: change.stamp };
  }
  if (delta.lastSeenAt !== undefined) session.lastSeenAt = Math.max(session.lastSeenAt, delta.lastSeenAt);
  if (delta.userId !== undefined) session.userId = delta.userId;
  session.version += 1;
}

/** Random (full-jitter) exponential backoff between compare-and-swap attempts, so contending writers spread out. */
export function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));
}
