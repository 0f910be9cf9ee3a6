import { configError } from '../../core/errors.js';

export interface RedisAddress {
  host: string;
  port: number;
}

/** A parsed store URL. Credentials are kept apart so nothing prints them by accident. */
export type RedisTarget =
  | { mode: 'standalone'; host: string; port: number; db: number; tls: boolean; username?: string; password?: string; prefix?: string }
  | { mode: 'sentinel'; sentinels: RedisAddress[]; name: string; db: number; tls: boolean; username?: string; password?: string; sentinelUsername?: string; sentinelPassword?: string; prefix?: string }
  | { mode: 'cluster'; nodes: RedisAddress[]; tls: boolean; username?: string; password?: string; prefix?: string };

const URL_PATTERN = /^(rediss?|rediss?-sentinel|rediss?-cluster):\/\/(?:([^@/?#]*)@)?([^/?#]+)(\/[^?#]*)?(?:\?([^#]*))?$/;

/**
 * Parses a store URL:
 * - `redis://[[user]:password@]host[:6379][/db]`, `rediss://...` (TLS)
 * - `redis-sentinel://[[user]:password@]host[:26379],host[:26379]/masterName[/db]`, `rediss-sentinel://...`
 *   (credentials are the primary's; `?sentinelUsername=&sentinelPassword=` for the Sentinels)
 * - `redis-cluster://[[user]:password@]host[:6379],host[:6379]`, `rediss-cluster://...`
 * Every form takes `?prefix=` for the store prefix. Errors never repeat the URL.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const match = typeof url === 'string' ? URL_PATTERN.exec(url.trim()) : null;
  if (!match) throw configError('url', 'expected redis://, rediss://, redis-sentinel://host:port,.../name or redis-cluster://host:port,...');
  const scheme = match[1] as string;
  const tls = scheme.startsWith('rediss');
  const credentials = parseCredentials(match[2]);
  const path = (match[4] ?? '').split('/').filter((part) => part.length > 0).map(decode1);
  const query = new URLSearchParams(match[5] ?? '');
  const known = new Set(['prefix', 'sentinelUsername', 'sentinelPassword']);
  for (const name of query.keys()) if (!known.has(name)) throw configError('url', `unknown query parameter "${name}"`);
  const prefix = query.get('prefix') ?? undefined;
  const common = { tls, ...credentials, ...(prefix === undefined ? {} : { prefix }) };
  if (scheme.endsWith('-cluster')) {
    if (path.length > 0) throw configError('url', 'a cluster URL has no database path (Redis Cluster has only database 0)');
    return { mode: 'cluster', nodes: parseHosts(match[3] as string, 6379), ...common };
  }
  if (scheme.endsWith('-sentinel')) {
    const name = path[0];
    if (name === undefined) throw configError('url', 'a sentinel URL needs the master name as its path: redis-sentinel://host:26379,host:26379/mymaster');
    const sentinelUsername = query.get('sentinelUsername') ?? undefined;
    const sentinelPassword = query.get('sentinelPassword') ?? undefined;
    return {
      mode: 'sentinel',
      sentinels: parseHosts(match[3] as string, 26379),
      name,
      db: parseDb(path[1]),
      ...common,
      ...(sentinelUsername === undefined ? {} : { sentinelUsername }),
      ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
    };
  }
  const hosts = parseHosts(match[3] as string, 6379);
  if (hosts.length !== 1) throw configError('url', 'a redis:// URL names one server; use redis-cluster:// or redis-sentinel:// for several');
  if (path.length > 1) throw configError('url', 'the path of a redis:// URL is the database number');
  const { host, port } = hosts[0] as RedisAddress;
  return { mode: 'standalone', host, port, db: parseDb(path[0]), ...common };
}

function parseCredentials(userinfo: string | undefined): { username?: string; password?: string } {
  if (!userinfo) return {};
  const colon = userinfo.indexOf(':');
  const username = decode1(colon < 0 ? userinfo : userinfo.slice(0, colon));
  const password = colon < 0 ? undefined : decode1(userinfo.slice(colon + 1));
  return { ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

function parseHosts(list: string, defaultPort: number): RedisAddress[] {
  return list.split(',').map((entry) => {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry.trim());
    const port = match?.[3] === undefined ? defaultPort : Number(match[3]);
    if (!match || port < 1 || port > 65535) throw configError('url', 'each host must be host[:port] or [ipv6][:port] with a port from 1 to 65535');
    return { host: (match[1] ?? match[2]) as string, port };
  });
}

function parseDb(text: string | undefined): number {
  if (text === undefined) return 0;
  if (!/^\d{1,5}$/.test(text)) throw configError('url', 'the database must be a number');
  return Number(text);
}

function decode1(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw configError('url', 'malformed percent-encoding');
  }
}
