import { createHash, randomBytes } from 'node:crypto';
import type { ChainableCommander, Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { configError, SessionError } from '../core/errors.js';
import { importDriver } from './driver.js';
import { publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, SessionDelta, SessionStore, StoreCapabilities, StoredField, StoredSession, StoredSummary } from '../core/types.js';
import { PROVISIONAL_MS, SCRIPTS } from './redis-scripts.js';
import type { RedisScript } from './redis-scripts.js';

/** An ioredis client: a `Redis` (standalone or Sentinel-managed) or a `Cluster`. */
export type RedisClient = Redis | Cluster;

export interface WaitForReplicas {
  /** Replicas that must acknowledge each write. */
  replicas: number;
  /** How long `WAIT` may block, in milliseconds (at least 1; `WAIT` with 0 would block forever). */
  timeoutMs: number;
}

export interface RedisStoreOptions {
  /** The application's ioredis client. Without `ownsClient`, `close()` leaves it open. */
  client: RedisClient;
  /**
   * Prefix of every key this store writes. Must not contain `{` or `}` (hash tags).
   * @default "es:"
   */
  prefix?: string;
  /**
   * After each write, `WAIT replicas timeoutMs` on the node that took the write, in the same
   * round trip. When fewer replicas acknowledge in time the write still happened on the
   * primary, and the call fails with ESESS_STORE_UNAVAILABLE, context `{ reason: 'replication' }`.
   */
  waitForReplicas?: WaitForReplicas;
  /**
   * Upper bound of one store operation in milliseconds; past it the call fails with
   * ESESS_STORE_UNAVAILABLE (kind "timeout") whatever the client's own settings. A write that
   * timed out may still land.
   * @default 10000
   */
  operationTimeoutMs?: number;
  /** Whether `close()` quits the client. @default false */
  ownsClient?: boolean;
}

export const REDIS_STORE_DEFAULTS = {
  prefix: 'es:',
  operationTimeoutMs: 10_000,
  ownsClient: false,
} as const;

/**
 * ioredis settings that bound how long a command can wait during an outage, a failover or a
 * reconnect; `openRedisStore` applies them, applications that build their own client should.
 */
export const RECOMMENDED_CLIENT_OPTIONS = {
  /** Fail queued commands after this many reconnect attempts instead of queueing forever. */
  maxRetriesPerRequest: 2,
  /** Fail a command that got no reply in this many milliseconds (must exceed `waitForReplicas.timeoutMs`). */
  commandTimeout: 5_000,
  connectTimeout: 5_000,
  /** A primary demoted by a failover answers READONLY: reconnect (Sentinel finds the new one) and resend. */
  reconnectOnError: (error: Error): 2 | false => (error.message.startsWith('READONLY') ? 2 : false),
} as const satisfies RedisOptions;

export const RECOMMENDED_CLUSTER_OPTIONS = {
  retryDelayOnFailover: 100,
  retryDelayOnClusterDown: 100,
  retryDelayOnTryAgain: 100,
  maxRedirections: 16,
  slotsRefreshTimeout: 2_000,
  redisOptions: RECOMMENDED_CLIENT_OPTIONS,
} as const satisfies ClusterOptions;

/** What `INFO` and `DBSIZE` tell, where the server allows them (null where it does not). */
export interface RedisUsage {
  /** `used_memory`, summed over primaries in a cluster. */
  memoryBytes: number | null;
  /** `DBSIZE`: every key of the database, not only this store's. Summed over primaries in a cluster. */
  keys: number | null;
}

type ErrorKind = 'closed' | 'timeout' | 'connection' | 'cluster' | 'loading' | 'readonly' | 'busy' | 'oom' | 'replication' | 'auth' | 'server';

const META = ['m:v', 'm:c', 'm:l', 'm:i', 'm:a', 'm:u', 'm:t'] as const;
const MAX_REDIRECTIONS = 10;
const RETRY_DELAY_MS = 100;
/** The largest SCAN COUNT sent: one SCAN blocks the server for as long as it examines keys. */
const MAX_SCAN_COUNT = 1000;

/**
 * Sessions in Redis, standalone, Sentinel-managed or Cluster, over an ioredis client the
 * application supplies. One hash per session, expired by Redis itself; every operation is one
 * script or one command (see docs/redis.md for the round trips in Cluster).
 */
export class RedisStore implements SessionStore {
  readonly name = 'redis';
  readonly capabilities: StoreCapabilities = { nativeTtl: true, cas: true, userIndex: true, sweep: false };
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #cluster: boolean;
  readonly #wait: WaitForReplicas | null;
  readonly #timeoutMs: number;
  readonly #ownsClient: boolean;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    const client = options?.client as RedisClient | undefined;
    if (!client || typeof client.hgetall !== 'function' || typeof client.pipeline !== 'function') throw configError('client', 'an ioredis Redis or Cluster instance is required');
    this.#client = client;
    this.#cluster = this.#isClusterClient(client);
    const clientOptions = client.options as {
      keyPrefix?: string;
      commandTimeout?: number;
      scaleReads?: unknown;
      role?: string;
      redisOptions?: { keyPrefix?: string; commandTimeout?: number };
    };
    if (clientOptions.keyPrefix || clientOptions.redisOptions?.keyPrefix) {
      throw configError('client', 'ioredis keyPrefix is not supported (scripts derive keys); use the store option "prefix" instead');
    }
    // Replicas lag: reading from them would break read-your-writes and make sessions flicker.
    if (this.#isClusterClient(client) && clientOptions.scaleReads !== undefined && clientOptions.scaleReads !== 'master') {
      throw configError('client', 'ioredis scaleReads must be "master" (the default): session reads must see the latest write');
    }
    if (clientOptions.role === 'slave') throw configError('client', 'a Sentinel client must connect to the primary (role "master")');
    this.#prefix = options.prefix ?? REDIS_STORE_DEFAULTS.prefix;
    if (typeof this.#prefix !== 'string' || /[{}]/.test(this.#prefix)) throw configError('prefix', 'must be a string without "{" or "}"');
    this.#timeoutMs = options.operationTimeoutMs ?? REDIS_STORE_DEFAULTS.operationTimeoutMs;
    if (!Number.isInteger(this.#timeoutMs) || this.#timeoutMs < 1) throw configError('operationTimeoutMs', 'must be a positive integer of milliseconds');
    this.#wait = options.waitForReplicas ?? null;
    if (this.#wait) {
      const { replicas, timeoutMs } = this.#wait;
      if (!Number.isInteger(replicas) || replicas < 1) throw configError('waitForReplicas.replicas', 'must be a positive integer');
      if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw configError('waitForReplicas.timeoutMs', 'must be a positive integer of milliseconds');
      if (timeoutMs >= this.#timeoutMs) throw configError('waitForReplicas.timeoutMs', 'must be less than operationTimeoutMs');
      const commandTimeout = clientOptions.commandTimeout ?? clientOptions.redisOptions?.commandTimeout;
      if (commandTimeout !== undefined && commandTimeout <= timeoutMs) {
        throw configError('waitForReplicas.timeoutMs', 'must be less than the client option commandTimeout, or WAIT itself times out');
      }
    }
    this.#ownsClient = options.ownsClient ?? REDIS_STORE_DEFAULTS.ownsClient;
    // Failures reach callers as typed errors from each operation; without a listener ioredis
    // would also print every failed reconnect. A client the application owns is left alone.
    if (this.#ownsClient) {
      client.on('error', ignore);
      if (this.#cluster) client.on('node error', ignore);
    }
  }

  #isClusterClient(client: RedisClient): boolean {
    return (client as { isCluster?: boolean }).isCluster === true;
  }

  /** Whether the client is a Redis Cluster client (user index maintained across slots). */
  get isCluster(): boolean {
    return this.#cluster;
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#op('load', async () => {
      let hash: Record<string, string>;
      try {
        hash = await this.#client.hgetall(this.#sessionKey(key));
      } catch (error) {
        if (!isWrongType(error)) throw error;
        publishCorrupt(this.name);
        return null;
      }
      const session = decode(hash);
      if (session === 'corrupt') {
        publishCorrupt(this.name);
        return null;
      }
      return session;
    });
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#op('create', async () => {
      const args = [
        this.#cluster ? '' : this.#prefix,
        checkKey(key),
        num(session.createdAt, 'createdAt'),
        num(session.lastSeenAt, 'lastSeenAt'),
        num(session.idleTimeout, 'idleTimeout'),
        num(session.absoluteExpiresAt, 'absoluteExpiresAt'),
        num(session.version, 'version'),
        session.userId === null ? '0' : '1',
        session.userId ?? '',
        operationId(),
      ];
      for (const [name, field] of Object.entries(session.fields)) args.push(`f:${name}`, encodeField(field));
      const created = this.#write(SCRIPTS.create, this.#sessionKey(key), args, (reply) => reply === 1);
      if (!this.#cluster || session.userId === null) return (await created) === 1;
      // Cluster: the index lives in the user's slot. Both run in parallel; if either fails the
      // call fails and the manager never hands out the ID, so an unindexed record is unreachable.
      const indexed = this.#write(SCRIPTS.indexSet, this.#indexKey(session.userId), ['', key, String(Math.floor(session.absoluteExpiresAt)), ''], () => true);
      const [first, second] = await Promise.allSettled([created, indexed]);
      if (first.status === 'rejected') throw first.reason;
      if (second.status === 'rejected') throw second.reason;
      return first.value === 1;
    });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#op('apply', async () => {
      const userOp = delta.userId === undefined ? '' : delta.userId === null ? '0' : '1';
      const args = [
        this.#cluster ? '' : this.#prefix,
        checkKey(key),
        delta.expectVersion === undefined ? '' : num(delta.expectVersion, 'expectVersion'),
        delta.lastSeenAt === undefined ? '' : num(delta.lastSeenAt, 'lastSeenAt'),
        userOp,
        typeof delta.userId === 'string' ? delta.userId : '',
        operationId(),
      ];
      for (const [name, field] of Object.entries(delta.fields)) args.push(`f:${name}`, encodeField(field));
      const newUser = this.#cluster && typeof delta.userId === 'string' ? this.#indexKey(delta.userId) : null;
      // Cluster: a session must never be live under a user whose index lacks it, so the index
      // entry goes first (with a provisional score: the absolute expiry is not known yet).
      if (newUser) await this.#write(SCRIPTS.indexSet, newUser, ['NX', key, '', String(PROVISIONAL_MS)], () => true);
      const reply = (await this.#write(SCRIPTS.apply, this.#sessionKey(key), args, (r) => Array.isArray(r) && r[0] === 1)) as number[];
      const status = reply[0];
      if (newUser) {
        const score = status === 1 || status === 2 ? String(reply[2] ?? 0) : '0';
        await this.#write(SCRIPTS.indexSet, newUser, ['XX', key, score, ''], () => true).catch(() => {
          // The entry stays with its provisional score: still listed correctly, pruned later.
        });
      }
      if (status === 1) return { status: 'ok', version: Number(reply[1]) };
      if (status === 2) return { status: 'conflict', version: Number(reply[1]) };
      if (status === 3) publishCorrupt(this.name);
      return { status: 'gone' };
    });
  }

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    return this.#op('destroy', async () => {
      const args = [this.#cluster ? '' : this.#prefix, checkKey(key), num(tombstoneGraceMs, 'tombstoneGraceMs'), '0', '', operationId()];
      const reply = await this.#write(SCRIPTS.destroy, this.#sessionKey(key), args, (r) => r === 1);
      if (reply === -1) publishCorrupt(this.name);
      return reply === 1;
    });
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    return this.#op('listByUser', async () => {
      if (!this.#cluster) {
        const flat = (await this.#read(SCRIPTS.userSessions, this.#indexKey(userId), [this.#prefix, userId, 'list', '0'])) as string[];
        const summaries: StoredSummary[] = [];
        for (let i = 0; i + 4 < flat.length; i += 5) {
          summaries.push(summary(flat[i] as string, flat[i + 1], flat[i + 2], flat[i + 3], flat[i + 4]));
        }
        return summaries;
      }
      const index = this.#indexKey(userId);
      const members = (await this.#read(SCRIPTS.indexMembers, index, [])) as string[];
      const metas = await Promise.all(members.map((member) => this.#meta(member)));
      const summaries: StoredSummary[] = [];
      const prune: string[] = [];
      members.forEach((member, i) => {
        const meta = metas[i];
        // Tombstoned and unreadable records never come back. An absent record may be one whose
        // create is still in flight, and a record of another user may move back: those stay
        // until their absolute expiry prunes them.
        if (meta === 'corrupt' || meta?.[6] != null) prune.push(member);
        else if (meta?.[0] != null && meta[5] === userId) summaries.push(summary(member, meta[1], meta[2], meta[3], meta[4]));
      });
      if (prune.length > 0) await this.#client.zrem(index, ...prune);
      return summaries;
    });
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number> {
    return this.#op('destroyByUser', async () => {
      const grace = num(tombstoneGraceMs, 'tombstoneGraceMs');
      if (!this.#cluster) {
        return Number(await this.#write(SCRIPTS.userSessions, this.#indexKey(userId), [this.#prefix, userId, 'destroy', grace, operationId()], (r) => Number(r) > 0));
      }
      // Cluster: sessions live in many slots, so one script per session, all in parallel.
      const index = this.#indexKey(userId);
      const members = (await this.#read(SCRIPTS.indexMembers, index, [])) as string[];
      const results = await Promise.allSettled(
        members.map((member) => this.#write(SCRIPTS.destroy, this.#sessionKey(member), ['', member, grace, '1', userId, operationId()], (r) => r === 1)),
      );
      let count = 0;
      const prune: string[] = [];
      let failure: unknown;
      results.forEach((result, i) => {
        if (result.status === 'rejected') {
          failure ??= result.reason;
          return;
        }
        if (result.value === 1) count++;
        if (result.value === -1) publishCorrupt(this.name);
        if (result.value === 1 || result.value === 2 || result.value === -1) prune.push(members[i] as string);
      });
      if (prune.length > 0) await this.#client.zrem(index, ...prune);
      // "Log out everywhere" that missed a session must not look like success.
      if (failure !== undefined) throw failure;
      return count;
    });
  }

  /** Redis expires sessions and tombstones by itself: nothing to sweep. */
  async sweep(_limit: number): Promise<number> {
    this.#open();
    return 0;
  }

  /** Resolves when the server answers; throws ESESS_STORE_UNAVAILABLE when it does not. */
  async ping(): Promise<void> {
    await this.#op('ping', async () => {
      await this.#client.ping();
    });
  }

  /**
   * Loads the scripts into every primary's script cache now (optional: without it, the first
   * call of each script on each node costs one extra NOSCRIPT round trip).
   */
  async loadScripts(): Promise<void> {
    await this.#op('loadScripts', async () => {
      if (this.#cluster) await this.#client.ping();
      const nodes: Redis[] = this.#cluster ? (this.#client as Cluster).nodes('master') : [this.#client as Redis];
      await Promise.all(nodes.flatMap((node) => Object.values(SCRIPTS).map((script) => node.script('LOAD', script.lua))));
    });
  }

  /**
   * Up to `limit` keys of live sessions, walking `SCAN 0 MATCH <prefix>{*}` on the server, or on
   * every primary of a Cluster in turn (ordered by address). Tombstones, user indexes and other
   * applications' keys are never returned. The order is SCAN's, not key order; the cursor is
   * opaque: the primary's index, a fingerprint of the topology, the primary's SCAN cursor, and
   * the keys of the last SCAN reply that did not fit in the page (so a page never exceeds
   * `limit`). A page may be short, or empty, before the walk ends: keep going until the cursor
   * is null. SCAN's guarantee holds: a key live for the whole walk is returned; one that the
   * keyspace's shrinking moved may be returned twice.
   *
   * A walk only ends on the topology it started on. Every page first reads the topology (a
   * Cluster: each primary's own slots and the slots it is migrating or importing; otherwise: the
   * primary's run ID, which a Sentinel failover or a restart changes), and the last page reads
   * it again after its SCANs. A change since the walk began, or a slot migration under way, fails
   * the page with ESESS_STORE_UNAVAILABLE (kind "cluster", or "failover" outside a Cluster):
   * start the walk again once the resharding or failover is over. So a walk that ends has missed
   * no key live throughout it.
   */
  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() limit must be a positive integer', context: { store: this.name } });
    const state = cursor === null ? null : decodeScanCursor(cursor);
    return this.#op('scan', async () => {
      const started = Date.now();
      if (this.#cluster) await this.#client.ping();
      const nodes = this.#masters();
      const topology = await this.#topology(nodes, state?.topology ?? null);
      const pattern = `${escapeGlob(this.#prefix)}{*}`;
      const keys: string[] = [];
      const seen = new Set<string>();
      let { node, scan, pending } = state ?? { node: 0, scan: '0', pending: [] as string[] };
      while (keys.length < limit) {
        if (pending.length > 0) {
          const batch = pending.slice(0, limit - keys.length);
          pending = pending.slice(batch.length);
          const live = await this.#liveKeys(batch);
          for (const key of live) keys.push(key);
          continue;
        }
        if (node >= nodes.length) break;
        // Bounded work per call: a database full of other keys yields empty SCAN replies.
        if (Date.now() - started > this.#timeoutMs / 2) break;
        const [next, found] = await (nodes[node] as Redis).scan(scan, 'MATCH', pattern, 'COUNT', Math.min(limit, MAX_SCAN_COUNT));
        for (const redisKey of found) {
          const key = redisKey.slice(this.#prefix.length + 1, -1);
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
        await this.#topology(this.#masters(), topology);
        return { keys, cursor: null };
      }
      return { keys, cursor: encodeScanCursor({ node, topology, scan, pending }) };
    });
  }

  /**
   * A fingerprint of what a walk depends on, checked against `expected` (the walk's so far):
   * refuses a changed topology and, in a Cluster, a slot migration under way.
   */
  async #topology(nodes: Redis[], expected: string | null): Promise<string> {
    const changed = (message: string) =>
      new SessionError('ESESS_STORE_UNAVAILABLE', { message, context: { store: this.name, kind: this.#cluster ? 'cluster' : 'failover' } });
    let parts: string[];
    if (this.#cluster) {
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
    const fingerprint = createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 22);
    if (expected !== null && fingerprint !== expected) {
      throw changed(this.#cluster
        ? 'The Redis Cluster topology changed during the walk (failover or resharding); walk the store again'
        : 'The Redis primary changed during the walk (failover or restart); walk the store again');
    }
    return fingerprint;
  }

  /** The primaries to walk: the client itself, or a Cluster's masters in address order. */
  #masters(): Redis[] {
    if (!this.#cluster) return [this.#client as Redis];
    return (this.#client as Cluster).nodes('master').sort((a, b) => (addressOf(a) < addressOf(b) ? -1 : addressOf(a) > addressOf(b) ? 1 : 0));
  }

  /** The keys among `keys` that hold a live session now (not a tombstone, not expired, a hash). */
  async #liveKeys(keys: string[]): Promise<string[]> {
    const metas = await Promise.all(
      keys.map(async (key) => {
        try {
          return await this.#client.hmget(this.#sessionKey(key), 'm:v', 'm:t');
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

  /** Server memory and key counts for metrics; a figure the server refuses (ACL, managed Redis) is null. */
  async usage(): Promise<RedisUsage> {
    return this.#op('usage', async () => {
      if (this.#cluster) await this.#client.ping();
      const nodes: Redis[] = this.#cluster ? (this.#client as Cluster).nodes('master') : [this.#client as Redis];
      const figures = await Promise.all(
        nodes.map(async (node) => {
          const [memory, keys] = await Promise.allSettled([node.info('memory'), node.dbsize()]);
          const used = memory.status === 'fulfilled' ? /^used_memory:(\d+)/m.exec(memory.value)?.[1] : undefined;
          return { memory: used === undefined ? null : Number(used), keys: keys.status === 'fulfilled' ? keys.value : null };
        }),
      );
      const total = (values: (number | null)[]) => (values.length > 0 && values.every((value) => value !== null) ? values.reduce<number>((sum, value) => sum + (value ?? 0), 0) : null);
      return { memoryBytes: total(figures.map((figure) => figure.memory)), keys: total(figures.map((figure) => figure.keys)) };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#ownsClient || this.#client.status === 'end') return;
    try {
      await withTimeout(this.#client.quit(), 1_000);
    } catch {
      // Unreachable server or a quit that did not finish in time: drop the connection.
    }
    this.#client.disconnect();
  }

  #open(): void {
    if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: this.name } });
  }

  /** Every operation: refused after close, bounded in time, and any failure typed. */
  async #op<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    this.#open();
    try {
      return await withTimeout(fn(), this.#timeoutMs);
    } catch (error) {
      throw this.#error(error, operation);
    }
  }

  #error(error: unknown, operation: string): SessionError {
    if (error instanceof SessionError) {
      if (error.code !== 'ESESS_STORE_UNAVAILABLE' || error.context.operation !== undefined) return error;
      return new SessionError(error.code, { message: error.message, cause: error.cause, context: { ...error.context, operation } });
    }
    if (this.#closed) return new SessionError('ESESS_STORE_CLOSED', { cause: redacted(error), context: { store: this.name, operation } });
    if (error instanceof TimeoutError) {
      return new SessionError('ESESS_STORE_UNAVAILABLE', {
        message: `Redis did not answer within ${this.#timeoutMs} ms; a write may or may not have been applied`,
        context: { store: this.name, operation, kind: 'timeout' },
      });
    }
    return new SessionError('ESESS_STORE_UNAVAILABLE', { cause: redacted(error), context: { store: this.name, operation, kind: errorKind(error) } });
  }

  #sessionKey(key: string): string {
    return `${this.#prefix}{${checkKey(key)}}`;
  }

  #indexKey(userId: string): string {
    if (typeof userId !== 'string' || userId.length === 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'userId must be a non-empty string', context: { field: 'userId' } });
    return `${this.#prefix}u:{${createHash('sha1').update(userId, 'utf8').digest('hex')}}`;
  }

  /** Session metadata by index member, or 'corrupt' when the key holds another type. */
  async #meta(member: string): Promise<(string | null)[] | 'corrupt'> {
    try {
      return await this.#client.hmget(this.#sessionKey(member), ...META);
    } catch (error) {
      if (!isWrongType(error)) throw error;
      publishCorrupt(this.name);
      return 'corrupt';
    }
  }

  /** A script that changes nothing worth waiting for (reads, pruning). */
  async #read(script: RedisScript, key: string, args: readonly string[]): Promise<unknown> {
    const client = this.#client as Redis;
    try {
      return await client.evalsha(script.sha, 1, key, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return client.eval(script.lua, 1, key, ...args);
    }
  }

  /**
   * A writing script. With `waitForReplicas`, `WAIT` follows in the same pipeline on the same
   * connection, so it covers this write; `wrote` tells whether the reply means something was written.
   */
  async #write(script: RedisScript, key: string, args: readonly string[], wrote: (reply: unknown) => boolean): Promise<unknown> {
    if (!this.#wait) return this.#read(script, key, args);
    const { replicas, timeoutMs } = this.#wait;
    let useEval = false;
    let target: string | null = null;
    let asking = false;
    for (let attempt = 1; attempt <= MAX_REDIRECTIONS; attempt++) {
      let pipeline: ChainableCommander;
      if (target === null) {
        pipeline = this.#client.pipeline();
      } else {
        const node = this.#node(target);
        if (!node) {
          (this.#client as Cluster).refreshSlotsCache();
          await delay(RETRY_DELAY_MS);
          target = null;
          asking = false;
          continue;
        }
        pipeline = node.pipeline();
      }
      if (asking) pipeline.asking();
      if (useEval) pipeline.eval(script.lua, 1, key, ...args);
      else pipeline.evalsha(script.sha, 1, key, ...args);
      pipeline.wait(replicas, timeoutMs);
      const replies = (await pipeline.exec()) ?? [];
      const [scriptError, reply] = replies[asking ? 1 : 0] ?? [new Error('Redis returned no reply')];
      const [waitError, acknowledged] = replies[replies.length - 1] ?? [new Error('Redis returned no reply')];
      if (scriptError) {
        const message = scriptError.message;
        if (message.startsWith('NOSCRIPT')) {
          useEval = true;
          continue;
        }
        // A redirected command did not run; the WAIT beside it did, which ioredis treats as
        // non-retriable, so the store follows MOVED / ASK itself, to the node named in the reply.
        const redirect = /^(MOVED|ASK) \d+ (\S+)$/.exec(message);
        if (redirect && this.#cluster) {
          target = redirect[2] as string;
          asking = redirect[1] === 'ASK';
          if (!asking) (this.#client as Cluster).refreshSlotsCache();
          continue;
        }
        if (/^(TRYAGAIN|CLUSTERDOWN)\b/.test(message)) {
          await delay(RETRY_DELAY_MS);
          target = null;
          asking = false;
          continue;
        }
        throw scriptError;
      }
      if (!wrote(reply)) return reply;
      const count = waitError ? 0 : Number(acknowledged);
      if (count < replicas) {
        throw new SessionError('ESESS_STORE_UNAVAILABLE', {
          message: `The write was applied on the primary, but ${count} of ${replicas} replica(s) acknowledged it within ${timeoutMs} ms`,
          cause: waitError ? redacted(waitError) : undefined,
          context: { store: this.name, kind: 'replication', reason: 'replication', acknowledged: count, required: replicas },
        });
      }
      return reply;
    }
    throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Too many cluster redirections', context: { store: this.name, kind: 'cluster' } });
  }

  #node(address: string): Redis | undefined {
    if (!this.#cluster) return undefined;
    return (this.#client as Cluster).nodes('all').find((node) => `${node.options.host}:${node.options.port}` === address);
  }
}

/** A store over an ioredis client the application created and configured (see `RECOMMENDED_CLIENT_OPTIONS`). */
export function redisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}

export interface OpenRedisStoreOptions extends Omit<RedisStoreOptions, 'client' | 'ownsClient'> {
  /** Merged over `RECOMMENDED_CLIENT_OPTIONS` and the URL (for Cluster: the nodes' `redisOptions`). */
  clientOptions?: RedisOptions;
  /** Cluster only: merged over `RECOMMENDED_CLUSTER_OPTIONS`. */
  clusterOptions?: Omit<ClusterOptions, 'redisOptions'>;
}

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

/**
 * Opens an owned ioredis client for a store URL (see `parseRedisUrl`) with
 * `RECOMMENDED_CLIENT_OPTIONS`, and a store over it; `close()` quits the client.
 * ioredis is an optional peer dependency, loaded only here.
 */
export async function openRedisStore(url: string, options: OpenRedisStoreOptions = {}): Promise<RedisStore> {
  const target = parseRedisUrl(url);
  const ioredis = await importDriver(() => import('ioredis'), 'Redis', 'ioredis');
  const { clientOptions, clusterOptions, ...storeOptions } = options;
  const auth = { ...(target.username === undefined ? {} : { username: target.username }), ...(target.password === undefined ? {} : { password: target.password }) };
  const tls = target.tls ? { tls: {} } : {};
  let client: RedisClient;
  if (target.mode === 'cluster') {
    const nodes: ClusterNode[] = target.nodes.map(({ host, port }) => ({ host, port }));
    client = new ioredis.Cluster(nodes, {
      ...RECOMMENDED_CLUSTER_OPTIONS,
      ...clusterOptions,
      redisOptions: { ...RECOMMENDED_CLIENT_OPTIONS, ...auth, ...tls, ...clientOptions },
    });
  } else if (target.mode === 'sentinel') {
    client = new ioredis.Redis({
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
  } else {
    client = new ioredis.Redis({ ...RECOMMENDED_CLIENT_OPTIONS, host: target.host, port: target.port, db: target.db, ...auth, ...tls, ...clientOptions });
  }
  try {
    return new RedisStore({ ...(target.prefix === undefined ? {} : { prefix: target.prefix }), ...storeOptions, client, ownsClient: true });
  } catch (error) {
    client.disconnect();
    throw error;
  }
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

interface ScanState {
  /** Index of the primary being walked, in `#masters()` order; past the end: done. */
  node: number;
  /** The fingerprint of the topology the walk started on (see `#topology`). */
  topology: string;
  /** The SCAN cursor to send next to that primary. */
  scan: string;
  /** Keys of an earlier SCAN reply that did not fit in the page, returned (if still live) first. */
  pending: string[];
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

/** The record in a session hash; null for absent or tombstone; 'corrupt' when unreadable. */
function decode(hash: Record<string, string>): StoredSession | null | 'corrupt' {
  const names = Object.keys(hash);
  if (names.length === 0 || hash['m:t'] !== undefined) return null;
  const createdAt = Number(hash['m:c']);
  const lastSeenAt = Number(hash['m:l']);
  const idleTimeout = Number(hash['m:i']);
  const absoluteExpiresAt = Number(hash['m:a']);
  const version = Number(hash['m:v']);
  if (![createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, version].every((value) => Number.isFinite(value)) || hash['m:v'] === '') return 'corrupt';
  const fields: Record<string, StoredField> = Object.create(null) as Record<string, StoredField>;
  for (const name of names) {
    if (!name.startsWith('f:')) continue;
    const encoded = hash[name] as string;
    const bar = encoded.indexOf('|');
    const stamp = bar < 0 ? encoded : encoded.slice(0, bar);
    if (stamp.length === 0) return 'corrupt';
    fields[name.slice(2)] = { value: bar < 0 ? null : encoded.slice(bar + 1), stamp };
  }
  return { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId: hash['m:u'] ?? null, version, fields };
}

function summary(key: string, created: unknown, lastSeen: unknown, idle: unknown, abs: unknown): StoredSummary {
  const lastSeenAt = Number(lastSeen);
  return { key, createdAt: Number(created), lastSeenAt, expiresAt: Math.min(lastSeenAt + Number(idle), Number(abs)) };
}

function encodeField(field: StoredField): string {
  if (!field || typeof field.stamp !== 'string' || field.stamp.length === 0 || field.stamp.includes('|')) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A field stamp must be a non-empty string without "|"', context: { store: 'redis' } });
  }
  if (field.value === null) return field.stamp;
  if (typeof field.value !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'A field value must be JSON text or null', context: { store: 'redis' } });
  return `${field.stamp}|${field.value}`;
}

function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512 || /[{}]/.test(key)) {
    throw new SessionError('ESESS_INVALID_INPUT', { message: 'A store key must be 1 to 512 characters without "{" or "}"', context: { store: 'redis' } });
  }
  return key;
}

function num(value: number, name: string): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new SessionError('ESESS_INVALID_INPUT', { message: `${name} must be a finite number`, context: { field: name } });
  return String(value);
}

/** Names one store call, so a command ioredis resends after a dropped connection is recognised as a replay. */
function operationId(): string {
  return randomBytes(8).toString('hex');
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

function errorKind(error: unknown): ErrorKind {
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  if (/timed out/i.test(message)) return 'timeout';
  if (/^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK)\b|cluster redirections|slots cache|startup nodes/i.test(message) || name === 'ClusterAllFailedError') return 'cluster';
  if (message.startsWith('LOADING')) return 'loading';
  if (message.startsWith('READONLY') || message.startsWith('MASTERDOWN')) return 'readonly';
  if (message.startsWith('BUSY')) return 'busy';
  if (message.startsWith('OOM')) return 'oom';
  if (/^(NOAUTH|WRONGPASS|NOPERM)/.test(message)) return 'auth';
  if (name === 'MaxRetriesPerRequestError' || /ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Connection is closed|Stream isn't writeable|connect/i.test(message)) return 'connection';
  return 'server';
}

/**
 * ioredis attaches the failed command (keys, field values) to its errors; a cause that may be
 * logged keeps only the name, message and system error code.
 */
function redacted(error: unknown): Error {
  const source = error instanceof Error ? error : new Error(String(error));
  const copy = new Error(source.message);
  copy.name = source.name;
  const code = (source as { code?: unknown }).code;
  if (typeof code === 'string') Object.assign(copy, { code });
  return copy;
}

class TimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function ignore(): void {}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
