import type { ClusterNode, ClusterOptions, RedisOptions } from 'ioredis';
import { importDriver } from '../kit/driver.js';
import type { RedisClient, RedisStoreOptions } from './config.js';
import type { RedisTarget } from './url.js';
import { RECOMMENDED_CLIENT_OPTIONS, RECOMMENDED_CLUSTER_OPTIONS } from './config.js';
import { RedisStore } from './store.js';
import { parseRedisUrl } from './url.js';

export interface OpenRedisStoreOptions extends Omit<RedisStoreOptions, 'client' | 'ownsClient'> {
  /** Merged over `RECOMMENDED_CLIENT_OPTIONS` and the URL (for Cluster: the nodes' `redisOptions`). */
  clientOptions?: RedisOptions;
  /** Cluster only: merged over `RECOMMENDED_CLUSTER_OPTIONS`. */
  clusterOptions?: Omit<ClusterOptions, 'redisOptions'>;
}

/**
 * Opens an owned ioredis client for a store URL (see `parseRedisUrl`) with
 * `RECOMMENDED_CLIENT_OPTIONS`, and a store over it; `close()` quits the client.
 * ioredis is an optional peer dependency, loaded only here.
 */
export async function openRedisStore(url: string, options: OpenRedisStoreOptions = {}): Promise<RedisStore> {
  const target = parseRedisUrl(url);
  const { clientOptions, clusterOptions, ...storeOptions } = options;
  const client = await openRedisClient(target, clientOptions, clusterOptions);
  try {
    return new RedisStore({ ...(target.prefix === undefined ? {} : { prefix: target.prefix }), ...storeOptions, client, ownsClient: true });
  } catch (error) {
    client.disconnect();
    throw error;
  }
}

/**
 * An ioredis client for a parsed URL with `RECOMMENDED_CLIENT_OPTIONS` (or the Cluster ones),
 * `clientOptions` merged over them. The caller owns it. Also used for change-log stream URLs.
 */
export async function openRedisClient(target: RedisTarget, clientOptions?: RedisOptions, clusterOptions?: Omit<ClusterOptions, 'redisOptions'>): Promise<RedisClient> {
  const ioredis = await importDriver(() => import('ioredis'), 'Redis', 'ioredis');
  const auth = { ...(target.username === undefined ? {} : { username: target.username }), ...(target.password === undefined ? {} : { password: target.password }) };
  const tls = target.tls ? { tls: {} } : {};
  if (target.mode === 'cluster') {
    const nodes: ClusterNode[] = target.nodes.map(({ host, port }) => ({ host, port }));
    return new ioredis.Cluster(nodes, {
      ...RECOMMENDED_CLUSTER_OPTIONS,
      ...clusterOptions,
      redisOptions: { ...RECOMMENDED_CLIENT_OPTIONS, ...auth, ...tls, ...clientOptions },
    });
  }
  if (target.mode === 'sentinel') {
    return new ioredis.Redis({
      ...RECOMMENDED_CLIENT_OPTIONS,
      sentinels: target.sentinels,
      name: target.name,
      db: target.db,
      ...auth,
      ...(target.sentinelUsername === undefined ? {} : { sentinelUsername: target.sentinelUsername }),
      ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
      ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
      ...clientOptions,
    });
  }
  return new ioredis.Redis({ ...RECOMMENDED_CLIENT_OPTIONS, host: target.host, port: target.port, db: target.db, ...auth, ...tls, ...clientOptions });
}
