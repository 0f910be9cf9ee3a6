import type { Redis } from 'ioredis';
import { configError } from '../core/errors.js';

/**
 * Trims a stream to the entries of the last `maxAgeMs` (`XTRIM MINID`, exact), by the server's
 * clock; returns how many went. The store's scripts already trim approximately (`MINID ~`) on
 * every write; this is for streams nobody writes to any more, and for the events stream.
 */
export async function trimByAge(client: Redis, stream: string, maxAgeMs: number): Promise<number> {
  if (!Number.isSafeInteger(maxAgeMs) || maxAgeMs < 1) throw configError('maxAgeMs', 'must be a positive integer of milliseconds');
  const [seconds, micros] = await client.time();
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return client.xtrim(stream, 'MINID', Math.max(0, now - maxAgeMs));
}
