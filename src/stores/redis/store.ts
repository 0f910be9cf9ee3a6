import type { Cluster, Redis } from 'ioredis';
import { SessionError } from '../../core/errors.js';
import { publishCorrupt } from '../../core/telemetry.js';
import type {
  ApplyResult,
  KeyState,
  LiveState,
  MergeOutcome,
  SessionDelta,
  SessionStore,
  StoreCapabilities,
  StoredSession,
  StoredSummary,
  TombstoneState,
  Watermark,
} from '../../core/types.js';
import { checkDelta, checkForeignState, checkGrace, checkRecord, checkStamp } from '../kit/checks.js';
import { StoreShell, TimeoutError, withTimeout } from '../kit/shell.js';
import { checkKey, decodeRecord, fieldArgs, num, operationId, recordArgs, RedisKeys } from './codec.js';
import type { RedisStoreOptions, RedisUsage } from './config.js';
import { resolveOptions } from './config.js';
import type { RedisContext } from './context.js';
import { readState, mergeState } from './replica.js';
import { scanArguments, scanPage } from './scan.js';
import { reconcileExpirations, writeScript } from './log.js';
import { LOGGED_SCRIPTS, PROVISIONAL_MS, SCRIPTS } from './scripts.js';
import { errorKind, isWrongType, redacted, RedisTransport } from './transport.js';
import * as users from './users.js';

/**
 * Sessions in Redis, standalone, Sentinel-managed or Cluster, over an ioredis client the
 * application supplies. One hash per session, expired by Redis itself; every operation is one
 * script or one command (see docs/redis.md for the round trips in Cluster).
 */
export class RedisStore implements SessionStore {
  readonly name = 'redis';
  readonly capabilities: StoreCapabilities = { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: true, replica: true };
  readonly #ctx: RedisContext;
  readonly #ownsClient: boolean;
  readonly #shell: StoreShell;
  /** Change log only: keys this store just created, by their creation stamp (see `destroy`). */
  readonly #recentCreates = new Map<string, string>();

  constructor(options: RedisStoreOptions) {
    const settings = resolveOptions(options);
    this.#ctx = {
      name: 'redis',
      client: settings.client,
      cluster: settings.cluster,
      keys: new RedisKeys(settings.prefix),
      transport: new RedisTransport(settings),
      timeoutMs: settings.timeoutMs,
      changeLog: settings.changeLog,
    };
    this.#ownsClient = settings.ownsClient;
    this.#shell = new StoreShell(this.name, {
      classify: (error, operation) => new SessionError('ESESS_STORE_UNAVAILABLE', { cause: redacted(error), context: { store: this.name, operation, kind: errorKind(error) } }),
    });
    // Failures reach callers as typed errors from each operation; without a listener ioredis
    // would also print every failed reconnect. A client the application owns is left alone.
    if (this.#ownsClient) {
      settings.client.on('error', ignore);
      if (settings.cluster) settings.client.on('node error', ignore);
    }
  }

  /** The change log the writes go to (`changeLog` option), or null. */
  get changeLog(): { stream: string; maxAgeMs: number; region: string | null } | null {
    const log = this.#ctx.changeLog;
    return log === null ? null : { stream: log.stream, maxAgeMs: log.maxAgeMs, region: log.region };
  }

  /** Whether the client is a Redis Cluster client (user index maintained across slots). */
  get isCluster(): boolean {
    return this.#ctx.cluster;
  }

  async load(key: string): Promise<StoredSession | null> {
    return this.#op('load', async () => {
      let hash: Record<string, string>;
      try {
        hash = await this.#ctx.client.hgetall(this.#ctx.keys.session(key));
      } catch (error) {
        if (!isWrongType(error)) throw error;
        publishCorrupt(this.name);
        return null;
      }
      const session = decodeRecord(hash);
      if (session === 'corrupt') {
        publishCorrupt(this.name);
        return null;
      }
      return session;
    });
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    return this.#op('create', async () => {
      checkRecord(session);
      const { cluster, keys, transport } = this.#ctx;
      const [created, lastSeen, idle, abs, hasUser, user, userStamp] = recordArgs(session) as [string, string, string, string, string, string, string];
      const args = [cluster ? '' : keys.prefix, checkKey(key), created, lastSeen, idle, abs, num(session.version, 'version'), hasUser, user, operationId(), userStamp, ...fieldArgs(session.fields)];
      const written = writeScript(this.#ctx, SCRIPTS.create, keys.session(key), args, (reply) => reply === 1);
      if (!cluster || session.userId === null) {
        const created = (await written) === 1;
        if (created) this.#rememberCreate(session.userStamp, key);
        return created;
      }
      // Cluster: the index lives in the user's slot. Both run in parallel; if either fails the
      // call fails and the manager never hands out the ID, so an unindexed record is unreachable.
      const indexed = transport.write(SCRIPTS.indexSet, keys.index(session.userId), ['', key, String(Math.floor(session.absoluteExpiresAt)), ''], () => true);
      const [first, second] = await Promise.allSettled([written, indexed]);
      if (first.status === 'rejected') throw first.reason;
      if (second.status === 'rejected') throw second.reason;
      return first.value === 1;
    });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    return this.#op('apply', async () => {
      checkDelta(delta);
      const { cluster, keys, transport } = this.#ctx;
      const userOp = delta.userId === undefined ? '' : delta.userId === null ? '0' : '1';
      const args = [
        cluster ? '' : keys.prefix,
        checkKey(key),
        delta.expectVersion === undefined ? '' : num(delta.expectVersion, 'expectVersion'),
        delta.lastSeenAt === undefined ? '' : num(delta.lastSeenAt, 'lastSeenAt'),
        userOp,
        typeof delta.userId === 'string' ? delta.userId : '',
        operationId(),
        delta.userStamp ?? '',
        ...fieldArgs(delta.fields),
      ];
      const newUser = cluster && typeof delta.userId === 'string' ? keys.index(delta.userId) : null;
      // Cluster: a session must never be live under a user whose index lacks it, so the index
      // entry goes first (with a provisional score: the absolute expiry is not known yet).
      if (newUser) await transport.write(SCRIPTS.indexSet, newUser, ['NX', key, '', String(PROVISIONAL_MS)], () => true);
      const reply = (await writeScript(this.#ctx, SCRIPTS.apply, keys.session(key), args, (r) => Array.isArray(r) && r[0] === 1)) as number[];
      const status = reply[0];
      if (newUser) {
        const score = status === 1 || status === 2 ? String(reply[2] ?? 0) : '0';
        await transport.write(SCRIPTS.indexSet, newUser, ['XX', key, score, ''], () => true).catch(() => {
          // The entry stays with its provisional score: still listed correctly, pruned later.
        });
      }
      if (status === 1) return { status: 'ok', version: Number(reply[1]) };
      if (status === 2) return { status: 'conflict', version: Number(reply[1]) };
      if (status === 3) publishCorrupt(this.name);
      return { status: 'gone' };
    });
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp = ''): Promise<boolean> {
    return this.#op('destroy', async () => {
      const grace = String(checkGrace(tombstoneGraceMs));
      checkStamp(stamp, 'A destroy stamp', true);
      const { cluster, keys } = this.#ctx;
      const args = [cluster ? '' : keys.prefix, checkKey(key), grace, '0', '', operationId(), stamp, ''];
      const reply = await writeScript(this.#ctx, SCRIPTS.destroy, keys.session(key), args, (r) => r === 1, this.#regeneratedAs(stamp, key));
      if (reply === -1) publishCorrupt(this.name);
      return reply === 1;
    });
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    return this.#op('listByUser', () => users.listByUser(this.#ctx, userId));
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    return this.#op('destroyByUser', async () => {
      checkGrace(tombstoneGraceMs);
      if (stamp !== undefined) checkStamp(stamp, 'A revoke stamp');
      return users.destroyByUser(this.#ctx, userId, tombstoneGraceMs, stamp);
    });
  }

  /**
   * With a change log: writes an `expire` entry for each of up to `limit` sessions whose
   * deadline has passed and that Redis has dropped, and returns how many (published on
   * `elastic-session:changelog:expired`). Redis expires keys silently; the writing scripts keep
   * every live session's deadline beside the stream, so none is missed however late this runs.
   * Safe to run from several instances at once (each expiry is written once). Without a change
   * log: 0.
   */
  async reconcileExpirations(limit = 1000): Promise<number> {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'reconcileExpirations() limit must be a positive integer', context: { store: this.name } });
    return this.#op('reconcileExpirations', () => reconcileExpirations(this.#ctx, limit));
  }

  /** Redis expires sessions and tombstones by itself: nothing to sweep. */
  async sweep(_limit: number): Promise<number> {
    this.#shell.open('sweep');
    return 0;
  }

  /**
   * The raw state of a key in one script: a live record (with `userStamp` `''` when written by
   * the previous release), a tombstone with its stamp and `until`, or null. Unreadable records
   * are null, and counted.
   */
  async readState(key: string): Promise<KeyState> {
    return this.#op('readState', () => readState(this.#ctx, key));
  }

  /**
   * Merges a foreign state by `mergeRecords` and `settle` in one atomic script on the session's
   * slot (standalone: the user index and the watermark included; Cluster: see docs/redis.md).
   * An unreadable record is left alone: `{ state: 'absent', changed: false }`, counted.
   */
  async mergeState(key: string, state: LiveState | TombstoneState): Promise<MergeOutcome> {
    return this.#op('mergeState', () => mergeState(this.#ctx, key, checkForeignState(state)));
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    return this.#op('readWatermark', () => users.readWatermark(this.#ctx, userId));
  }

  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    return this.#op('mergeWatermark', () => users.mergeWatermark(this.#ctx, userId, checkStamp(stamp, 'A watermark stamp')));
  }

  /** Resolves when the server answers; throws ESESS_STORE_UNAVAILABLE when it does not. */
  async ping(): Promise<void> {
    await this.#op('ping', async () => {
      await this.#ctx.client.ping();
    });
  }

  /**
   * Loads the scripts into every primary's script cache now (optional: without it, the first
   * call of each script on each node costs one extra NOSCRIPT round trip).
   */
  async loadScripts(): Promise<void> {
    await this.#op('loadScripts', async () => {
      await Promise.all(
        (await this.#primaries()).flatMap((node) => [...Object.values(SCRIPTS), ...(this.#ctx.changeLog === null ? [] : Object.values(LOGGED_SCRIPTS))].map((script) => node.script('LOAD', script.lua))),
      );
    });
  }

  /**
   * Up to `limit` keys of live sessions, walking `SCAN 0 MATCH <prefix>{*}` on the server, or on
   * every primary of a Cluster in turn (ordered by address). Tombstones, user indexes, revoke
   * watermarks and other applications' keys are never returned. The order is SCAN's, not key
   * order; the cursor is opaque: the primary's index, a fingerprint of the topology, the
   * primary's SCAN cursor, and the keys of the last SCAN reply that did not fit in the page (so
   * a page never exceeds `limit`). A page may be short, or empty, before the walk ends: keep
   * going until the cursor is null. SCAN's guarantee holds: a key live for the whole walk is
   * returned; one that the keyspace's shrinking moved may be returned twice.
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
    const state = scanArguments(cursor, limit);
    return this.#op('scan', () => scanPage(this.#ctx, state, limit));
  }

  /** Server memory and key counts for metrics; a figure the server refuses (ACL, managed Redis) is null. */
  async usage(): Promise<RedisUsage> {
    return this.#op('usage', async () => {
      const figures = await Promise.all(
        (await this.#primaries()).map(async (node) => {
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
    if (!this.#shell.close()) return;
    const client = this.#ctx.client;
    if (!this.#ownsClient || client.status === 'end') return;
    try {
      await withTimeout(client.quit(), 1_000);
    } catch {
      // Unreachable server or a quit that did not finish in time: drop the connection.
    }
    client.disconnect();
  }

  /**
   * The manager regenerates by creating the new key, then destroying the old one with the new
   * record's creation stamp; HLC stamps are unique, so a destroy carrying the stamp of a record
   * this store just created names that record's predecessor. The entry then says `regenerate`.
   */
  #rememberCreate(stamp: string, key: string): void {
    if (this.#ctx.changeLog === null || stamp === '') return;
    this.#recentCreates.set(stamp, key);
    if (this.#recentCreates.size > RECENT_CREATES) this.#recentCreates.delete(this.#recentCreates.keys().next().value as string);
  }

  #regeneratedAs(stamp: string, key: string): string {
    const next = stamp === '' ? undefined : this.#recentCreates.get(stamp);
    if (next === undefined || next === key) return '';
    this.#recentCreates.delete(stamp);
    return next;
  }

  /** Every primary (a Cluster client knows them once connected). */
  async #primaries(): Promise<Redis[]> {
    if (!this.#ctx.cluster) return [this.#ctx.client as Redis];
    await this.#ctx.client.ping();
    return (this.#ctx.client as Cluster).nodes('master');
  }

  /** Every operation: refused after close, bounded in time, and any failure typed. */
  async #op<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return this.#shell.run(operation, async () => {
      try {
        return await withTimeout(fn(), this.#ctx.timeoutMs);
      } catch (error) {
        throw this.#withOperation(error, operation);
      }
    });
  }

  #withOperation(error: unknown, operation: string): unknown {
    if (error instanceof TimeoutError) {
      return new SessionError('ESESS_STORE_UNAVAILABLE', {
        message: `Redis did not answer within ${this.#ctx.timeoutMs} ms; a write may or may not have been applied`,
        context: { store: this.name, operation, kind: 'timeout' },
      });
    }
    if (error instanceof SessionError && error.code === 'ESESS_STORE_UNAVAILABLE' && error.context.operation === undefined) {
      return new SessionError(error.code, { message: error.message, cause: error.cause, context: { ...error.context, operation } });
    }
    return error;
  }
}

/** A store over an ioredis client the application created and configured (see `RECOMMENDED_CLIENT_OPTIONS`). */
export function redisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}

function ignore(): void {}

/** Creates remembered for `#regeneratedAs`: the manager destroys the old key right after. */
const RECENT_CREATES = 1024;
