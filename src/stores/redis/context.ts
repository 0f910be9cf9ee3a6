import type { ChangeLogSettings, RedisClient } from './config.js';
import type { RedisKeys } from './codec.js';
import type { RedisTransport } from './transport.js';

/** What the store's operations share: the client, its kind, the key names and the transport. */
export interface RedisContext {
  readonly name: 'redis';
  readonly client: RedisClient;
  readonly cluster: boolean;
  readonly keys: RedisKeys;
  readonly transport: RedisTransport;
  readonly timeoutMs: number;
  /** The change log the writing scripts append to, or null (see `log.ts`). */
  readonly changeLog: ChangeLogSettings | null;
}
