import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { configError } from '../../core/errors.js';
import { nodeTlsOptions, tlsFromUrl } from '../kit/tls-url.js';

export const NATS_STORE_DEFAULTS = {
  bucket: 'elastic_sessions',
  /** The bucket's `max_age` when `openNatsStore` creates it: 30 days. */
  maxAgeMs: 30 * 24 * 3_600_000,
  replicas: 1,
  maxAttempts: 32,
  walkBudgetMs: 5_000,
  requestTimeoutMs: 5_000,
} as const;

/** A parsed `nats://` store URL. */
export interface NatsTarget {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  bucket: string;
  /** 0: no max_age. */
  maxAgeMs: number;
  replicas: number;
}

/**
 * Parses `nats://[user:pass@|token@]host[:4222][,host[:port]...][?bucket=NAME&max_age=30d&replicas=1]`.
 * `max_age` is a whole number of seconds, minutes, hours or days (`90s`, `12h`, `30d`), or `0`
 * for none. Errors never repeat the URL.
 */
export function parseNatsUrl(url: string): NatsTarget {
  const match = typeof url === 'string' ? /^nats:\/\/(?:([^@/?#]*)@)?([^@/?#]+)\/?(?:\?([^#]*))?$/i.exec(url.trim()) : null;
  if (!match) throw configError('store', 'must be a nats://host:port[,host:port...][?bucket=NAME] URL');
  const servers = (match[2] as string).split(',').map((entry) => {
    const host = /^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    const port = host?.[1] === undefined ? 4222 : Number(host[1]);
    if (!host || port < 1 || port > 65535) throw configError('store', 'must list servers as host[:port] with a port from 1 to 65535, separated by commas');
    return host[1] === undefined ? `${entry.trim()}:4222` : entry.trim();
  });
  const query = new URLSearchParams(match[3] ?? '');
  for (const name of query.keys()) if (!['bucket', 'max_age', 'replicas'].includes(name)) throw configError('store', `unknown query parameter "${name}" (known: bucket, max_age, replicas)`);
  const bucket = query.get('bucket') ?? NATS_STORE_DEFAULTS.bucket;
  if (!/^[-\w]{1,64}$/.test(bucket)) throw configError('store', 'bucket must be 1 to 64 letters, digits, "-" or "_"');
  const replicas = Number(query.get('replicas') ?? NATS_STORE_DEFAULTS.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw configError('store', 'replicas must be an integer from 1 to 5');
  const maxAge = query.get('max_age');
  const maxAgeMs = maxAge === null ? NATS_STORE_DEFAULTS.maxAgeMs : parseDuration(maxAge);
  return { servers, ...parseCredentials(match[1]), bucket, maxAgeMs, replicas };
}

/** The URL without its TLS parameters (`ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`, as for MySQL), and those as tls.connect options. */
export async function withoutTls(url: string): Promise<{ rest: string; tls: TlsConnectionOptions | undefined }> {
  const at = typeof url === 'string' ? url.indexOf('?') : -1;
  if (at < 0) return { rest: url, tls: undefined };
  const query = new URLSearchParams(url.slice(at + 1));
  const settings = await tlsFromUrl(query);
  const remaining = query.toString();
  return { rest: `${url.slice(0, at)}${remaining === '' ? '' : `?${remaining}`}`, tls: settings && nodeTlsOptions(settings) };
}

function parseCredentials(userinfo: string | undefined): { user?: string; pass?: string; token?: string } {
  if (!userinfo) return {};
  const colon = userinfo.indexOf(':');
  if (colon < 0) return { token: decodeComponent(userinfo) };
  return { user: decodeComponent(userinfo.slice(0, colon)), pass: decodeComponent(userinfo.slice(colon + 1)) };
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw configError('store', 'has malformed percent-encoding in its credentials');
  }
}

function parseDuration(text: string): number {
  if (text === '0') return 0;
  const match = /^(\d{1,6})(s|m|h|d)$/.exec(text);
  if (!match) throw configError('store', 'max_age must be a whole number of s, m, h or d (e.g. 30d), or 0 for none');
  return Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
}
