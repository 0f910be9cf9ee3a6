import { SessionError } from '../../core/errors.js';
import { publishConflict } from '../../core/telemetry.js';

/** Returned by a compare-and-swap attempt that lost the race: read again and retry. */
export const RETRY: unique symbol = Symbol('retry');

/**
 * The compare-and-swap loop of key-value backends (Memcached, NATS): `attempt` reads, computes
 * and writes conditionally, and returns RETRY when another writer came first. Losers back off
 * with full jitter so contending writers spread out; after `maxAttempts` it is ESESS_CONFLICT.
 */
export async function casLoop<T>(store: string, operation: string, maxAttempts: number, attempt: (n: number) => Promise<T | typeof RETRY>): Promise<T> {
  for (let n = 1; n <= maxAttempts; n++) {
    const result = await attempt(n);
    if (result !== RETRY) return result;
    publishConflict(store, n);
    await backoff(n);
  }
  throw new SessionError('ESESS_CONFLICT', { message: `${store} ${operation}: compare-and-swap retries exhausted after ${maxAttempts} attempts`, context: { store, operation, attempts: maxAttempts } });
}

/** Random (full-jitter) exponential backoff between compare-and-swap attempts. */
export function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));
}
