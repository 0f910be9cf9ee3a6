import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { SessionError } from '../../core/errors.js';
import { checkLimit } from '../kit/checks.js';
import type { RedisContext } from './context.js';
import { isWrongType } from './transport.js';

/** The largest SCAN COUNT sent: one SCAN blocks the server for as long as it examines keys. */
const MAX_SCAN_COUNT = 1000;

interface ScanState {
  /** Index of the primary being walked, in `masters()` order; past the end: done. */
  node: number;
  /** The fingerprint of the topology the walk started on (see `topology`). */
  topology: string;
  /** The SCAN cursor to send next to that primary. */
  scan: string;
  /** Keys of an earlier SCAN reply that did not fit in the page, returned (if still live) first. */
  pending: string[];
}

/** Checks the arguments of `scan()` before any I/O: a bad limit or cursor is the caller's error. */
export function scanArguments(cursor: string | null, limit: number): ScanState | null {
  checkLimit(limit, 'redis');
  return cursor === null ? null : decodeScanCursor(cursor);
}

/** One page of a walk (see `RedisStore.scan`). */
export async function scanPage(ctx: RedisContext, state: ScanState | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
  const started = Date.now();
  if (ctx.cluster) await ctx.client.ping();
  const nodes = masters(ctx);
  const topology = await fingerprint(ctx, nodes, state?.topology ?? null);
  const prefix = ctx.keys.prefix;
  const pattern = `${escapeGlob(prefix)}{*}`;
  const keys: string[] = [];
  const seen = new Set<string>();
  let { node, scan, pending } = state ?? { node: 0, scan: '0', pending: [] as string[] };
  while (keys.length < limit) {
    if (pending.length > 0) {
      const batch = pending.slice(0, limit - keys.length);
      pending = pending.slice(batch.length);
      const live = await liveKeys(ctx, batch);
      for (const key of live) keys.push(key);
      continue;
    }
    if (node >= nodes.length) break;
    // Bounded work per call: a database full of other keys yields empty SCAN replies.
    if (Date.now() - started > ctx.timeoutMs / 2) break;
    const [next, found] = await (nodes[node] as Redis).scan(scan, 'MATCH', pattern, 'COUNT', Math.min(limit, MAX_SCAN_COUNT));
    for (const redisKey of found) {
      const key = redisKey.slice(prefix.length + 1, -1);
      if (!seen.has(key)) {
        seen.add(key);
        pending.push(key);
      }
    }
    if (next === '0') {
      node++;
      scan = '0';
    } else {
      scan = next;
    }
  }
  if (node >= nodes.length && pending.length === 0) {
    // What moved during the last page's SCANs would otherwise go unnoticed.
    await fingerprint(ctx, masters(ctx), topology);
    return { keys, cursor: null };
  }
  return { keys, cursor: encodeScanCursor({ node, topology, scan, pending }) };
}

/** The primaries: the client itself, or a Cluster's masters in address order. */
export function masters(ctx: RedisContext): Redis[] {
  if (!ctx.cluster) return [ctx.client as Redis];
  return (ctx.client as Cluster).nodes('master').sort((a, b) => (addressOf(a) < addressOf(b) ? -1 : addressOf(a) > addressOf(b) ? 1 : 0));
}

/**
 * A fingerprint of what a walk depends on, checked against `expected` (the walk's so far):
 * refuses a changed topology and, in a Cluster, a slot migration under way.
 */
async function fingerprint(ctx: RedisContext, nodes: Redis[], expected: string | null): Promise<string> {
  const changed = (message: string) => new SessionError('ESESS_STORE_UNAVAILABLE', { message, context: { store: ctx.name, kind: ctx.cluster ? 'cluster' : 'failover' } });
  let parts: string[];
  if (ctx.cluster) {
    parts = await Promise.all(
      nodes.map(async (node) => {
        const lines = String(await node.call('CLUSTER', 'NODES')).split('\n');
        const own = (lines.find((line) => line.split(' ')[2]?.split(',').includes('myself')) ?? '').split(' ');
        const slots = own.slice(8);
        if (slots.some((slot) => slot.startsWith('['))) throw changed('A Redis Cluster slot migration is under way (resharding); walk the store again once it is over');
        return `${own[0] ?? ''} ${slots.join(' ')}`;
      }),
    );
  } else {
    const info = String(await (nodes[0] as Redis).info('server'));
    parts = [/^run_id:(\w+)/m.exec(info)?.[1] ?? ''];
  }
  const digest = createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 22);
  if (expected !== null && digest !== expected) {
    throw changed(ctx.cluster
      ? 'The Redis Cluster topology changed during the walk (failover or resharding); walk the store again'
      : 'The Redis primary changed during the walk (failover or restart); walk the store again');
  }
  return digest;
}

/** The keys among `keys` that hold a live session now (not a tombstone, not expired, a hash). */
async function liveKeys(ctx: RedisContext, keys: string[]): Promise<string[]> {
  const metas = await Promise.all(
    keys.map(async (key) => {
      try {
        return await ctx.client.hmget(ctx.keys.session(key), 'm:v', 'm:t');
      } catch (error) {
        if (!isWrongType(error)) throw error;
        return null;
      }
    }),
  );
  return keys.filter((_, i) => {
    const meta = metas[i];
    return meta != null && meta[0] != null && meta[1] == null;
  });
}

function addressOf(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

/** SCAN MATCH treats `*`, `?`, `[`, `]` and `\` specially; `{` and `}` are literal. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

function encodeScanCursor(state: ScanState): string {
  return `r2.${Buffer.from(JSON.stringify([state.node, state.topology, state.scan, state.pending]), 'utf8').toString('base64url')}`;
}

function decodeScanCursor(cursor: string): ScanState {
  const invalid = () => new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor is not one this store returned', context: { store: 'redis' } });
  if (typeof cursor !== 'string' || !cursor.startsWith('r2.')) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor.slice(3), 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 4) throw invalid();
  const [node, topology, scan, pending] = parsed as unknown[];
  if (!Number.isSafeInteger(node) || (node as number) < 0 || typeof topology !== 'string' || typeof scan !== 'string' || !/^\d+$/.test(scan)) throw invalid();
  if (!Array.isArray(pending) || !pending.every((key) => typeof key === 'string' && key.length > 0 && key.length <= 512 && !/[{}]/.test(key))) throw invalid();
  return { node: node as number, topology, scan, pending: pending as string[] };
}
