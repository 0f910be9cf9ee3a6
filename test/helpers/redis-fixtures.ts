import { randomBytes } from 'node:crypto';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { formatStamp } from '../../src/core/hlc.js';
import type { StoredField, StoredSession } from '../../src/core/types.js';

/** Client settings the Redis tests use: every failure surfaces within a few seconds. */
export const BOUNDED: RedisOptions = { host: '127.0.0.1', maxRetriesPerRequest: 1, commandTimeout: 3_000, connectTimeout: 1_000 };

export const BOUNDED_CLUSTER: ClusterOptions = {
  retryDelayOnFailover: 100,
  retryDelayOnClusterDown: 100,
  retryDelayOnTryAgain: 100,
  slotsRefreshTimeout: 1_000,
  redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 3_000, connectTimeout: 1_000 },
};

export const SECRET = 'redis-tests-secret-0123456789abcdef0123';

export const randomKey = (): string => randomBytes(32).toString('base64url');

export const stampAt = (wall: number, node = randomBytes(4).toString('hex')): string => formatStamp(wall, 0, node);

export function record(fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession {
  const now = Date.now();
  const stored: Record<string, StoredField> = {};
  for (const [name, value] of Object.entries(fields)) stored[name] = { value: JSON.stringify(value), stamp: stampAt(now) };
  return { createdAt: now, lastSeenAt: now, idleTimeout: 3_600_000, absoluteExpiresAt: now + 86_400_000, userId: null, version: 1, fields: stored, ...meta };
}

/** Deletes every key under a prefix (SCAN, never KEYS), on one node or on every primary of a cluster. */
export async function deletePrefix(client: Redis | Cluster, prefix: string): Promise<void> {
  // A cluster client knows its primaries only once connected.
  await client.ping();
  const nodes: Redis[] = (client as { isCluster?: boolean }).isCluster ? (client as Cluster).nodes('master') : [client as Redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) await node.del(key);
    } while (cursor !== '0');
  }
}
