import type { Redis } from 'ioredis';
import { configError, SessionError } from '../core/errors.js';
import { openRedisClient } from '../stores/redis/open.js';
import type { RedisTarget } from '../stores/redis/url.js';
import { parseRedisUrl } from '../stores/redis/url.js';

/**
 * Where a change log or events stream lives: an ioredis client and a stream name. Stream URLs
 * are the store URLs of a standalone or Sentinel-managed Redis with `?stream=NAME`:
 * `redis://[[user]:password@]host[:6379][/db]?stream=es:log` (`rediss://` for TLS,
 * `redis-sentinel://host:26379,.../masterName[/db]?stream=...`).
 */
export interface RedisStreamSource {
  client: Redis;
  stream: string;
}

export interface StreamUrl {
  target: RedisTarget;
  stream: string;
}

/** Parses a stream URL. Errors name the option and never repeat the URL (it may hold a password). */
export function parseStreamUrl(url: string, option = 'url'): StreamUrl {
  if (typeof url !== 'string') throw configError(option, 'must be a URL such as redis://127.0.0.1:6379?stream=es:log');
  // The userinfo of a Redis URL cannot hold a raw "?", so the first one starts the query.
  const question = url.indexOf('?');
  const query = question < 0 ? '' : url.slice(question + 1).split('#')[0] ?? '';
  const others: string[] = [];
  let stream: string | undefined;
  for (const part of query.split('&').filter((text) => text !== '')) {
    if (!part.startsWith('stream=')) {
      others.push(part);
      continue;
    }
    try {
      stream = decodeURIComponent(part.slice('stream='.length).replace(/\+/g, ' '));
    } catch {
      throw configError(option, 'malformed percent-encoding in ?stream=');
    }
  }
  if (stream === undefined || stream === '') throw configError(option, 'needs ?stream=NAME (e.g. redis://127.0.0.1:6379?stream=es:log)');
  const rest = `${question < 0 ? url : url.slice(0, question)}${others.length === 0 ? '' : `?${others.join('&')}`}`;
  let target: RedisTarget;
  try {
    target = parseRedisUrl(rest);
  } catch (error) {
    throw configError(option, error instanceof SessionError ? error.message.replace(/^Invalid option "url": /, '') : 'is not a Redis URL');
  }
  // One script writes a session and its entry; in a Cluster they would be in different slots.
  if (target.mode === 'cluster') throw configError(option, 'a change-log stream lives on a standalone or Sentinel-managed Redis, not redis-cluster://');
  return { target, stream };
}

/** Opens a client for a stream URL (the caller closes it with `close()`). */
export async function openStreamUrl(url: string, option = 'url'): Promise<RedisStreamSource & { close(): Promise<void> }> {
  const { target, stream } = parseStreamUrl(url, option);
  const client = (await openRedisClient(target)) as Redis;
  client.on('error', () => {
    // Commands fail with their own errors; without a listener ioredis prints every reconnect.
  });
  return {
    client,
    stream,
    async close() {
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    },
  };
}

/** `<ms>-<seq>` stream IDs compared: negative, 0 or positive. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

/** The time part of a stream ID, in ms since the epoch. */
export function idTime(id: string): number {
  return Number(id.split('-')[0]);
}

/** The first stream ID at or after a time (Date, ms, or ISO-8601 text). */
export function idAtOrAfter(since: Date | number | string, option = 'since'): string {
  const ms = since instanceof Date ? since.getTime() : typeof since === 'number' ? since : Date.parse(since);
  if (!Number.isFinite(ms) || ms < 0) throw configError(option, 'must be an ISO-8601 time such as 2025-01-31T12:00:00Z');
  return `${Math.floor(ms)}-0`;
}

/** One stream entry as ioredis returns it: [id, [field, value, ...] or null once trimmed]. */
export type RawStreamEntry = [string, string[] | null];

/** The value of one field of a stream entry, or undefined. */
export function fieldOf(fields: string[] | null, name: string): string | undefined {
  if (fields === null) return undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Entries after `after` (exclusive; null: from `start`, inclusive) up to `count`. */
export async function rangeAfter(client: Redis, stream: string, after: string | null, count: number, start = '-'): Promise<RawStreamEntry[]> {
  return (await client.xrange(stream, after === null ? start : `(${after}`, '+', 'COUNT', count)) as RawStreamEntry[];
}

/** A script by SHA, sent once with EVAL when the server does not know it. */
export async function evalScript(client: Redis, script: { lua: string; sha: string }, keys: string[], args: (string | number)[]): Promise<unknown> {
  try {
    return await client.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return client.eval(script.lua, keys.length, ...keys, ...args);
  }
}
