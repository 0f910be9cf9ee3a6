import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { nearCache, openRedisNearCache, redisInvalidation } from '../src/stores/near-cache.js';
import type { InvalidationSource, NearCacheStore, RedisInvalidation } from '../src/stores/near-cache.js';
import { redisStore } from '../src/stores/redis.js';
import { runStoreConformance } from '../src/testing/index.js';
import { fieldValue, stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { BOUNDED, deletePrefix, SHARED_REDIS_URL } from './helpers/redis-fixtures.js';
import { checkRedisBinaries, startRedis, stopAll } from './helpers/redis-servers.js';
import type { RedisServer } from './helpers/redis-servers.js';

const newPrefix = () => `es-nc:${randomBytes(6).toString('hex')}:`;

/** Fails loudly (instead of skipping) when the shared server is missing. */
async function sharedClient(): Promise<Redis> {
  const client = new Redis(SHARED_REDIS_URL, { ...BOUNDED, lazyConnect: true });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw new Error(`These tests need Redis at ${SHARED_REDIS_URL} (redis-server --port 6379 --save "", or set ES_TEST_REDIS_URL)`, { cause: error });
  }
  return client;
}

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'near-cache over redis (client tracking)',
  fakeClock: false,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async () => {
    const prefix = newPrefix();
    const admin = await sharedClient();
    const open = async () => {
      const client = new Redis(SHARED_REDIS_URL, BOUNDED);
      const store = nearCache(redisStore({ client, prefix, ownsClient: true }), { invalidation: redisInvalidation({ client, prefix }) });
      await store.ready();
      return store;
    };
    return {
      store: await open(),
      connect: open,
      corrupt: async (key) => {
        await admin.del(`${prefix}{${key}}`);
        await admin.set(`${prefix}{${key}}`, '\u0000not a session\u00ff');
      },
      cleanup: async () => {
        await deletePrefix(admin, prefix);
        admin.disconnect();
      },
    };
  },
});

/** What the near-cache's sink was told, in order, with when; `seq` orders it against the test's own events. */
interface SinkCall {
  kind: 'invalidate' | 'invalidateUser' | 'flush' | 'down' | 'up';
  keys: readonly string[];
  at: number;
  seq: number;
}

let seq = 0;
const tick = () => ++seq;

/** A source that tells the test every call it makes to the near-cache, right after making it. */
function observed(source: InvalidationSource): { source: InvalidationSource; next: (match: (call: SinkCall) => boolean) => Promise<SinkCall>; onCall: (listener: (call: SinkCall) => void) => void } {
  const listeners = new Set<(call: SinkCall) => void>();
  const tell = (kind: SinkCall['kind'], keys: readonly string[] = []) => {
    const call = { kind, keys, at: performance.now(), seq: tick() };
    for (const listener of [...listeners]) listener(call);
  };
  return {
    source: {
      name: source.name,
      start: (sink) =>
        source.start({
          invalidate: (keys) => (sink.invalidate(keys), tell('invalidate', keys)),
          invalidateUser: (userId) => (sink.invalidateUser(userId), tell('invalidateUser')),
          flush: (reason) => (sink.flush(reason), tell('flush')),
          down: (reason) => (sink.down(reason), tell('down')),
          up: () => (sink.up(), tell('up')),
        }),
      close: () => source.close(),
    },
    next: (match) =>
      new Promise((resolve) => {
        const listener = (call: SinkCall) => {
          if (!match(call)) return;
          listeners.delete(listener);
          resolve(call);
        };
        listeners.add(listener);
      }),
    onCall: (listener) => void listeners.add(listener),
  };
}

interface Instance {
  store: NearCacheStore;
  tracking: RedisInvalidation;
  client: Redis;
  subscriber: Redis;
  name: string;
  calls: ReturnType<typeof observed>;
}

const open: Instance[] = [];

async function instance(prefix: string, connection: RedisOptions, options: { healthCheckMs?: number } = {}): Promise<Instance> {
  const name = `es-nc-test-${randomBytes(4).toString('hex')}`;
  const client = new Redis({ ...BOUNDED, ...connection, connectionName: `${name}-data` });
  const subscriber = new Redis({ ...BOUNDED, ...connection, autoResubscribe: false, connectionName: `${name}-sub` });
  subscriber.on('error', () => {});
  client.on('error', () => {});
  const tracking = redisInvalidation({ client, subscriber, prefix, ...options });
  const calls = observed(tracking);
  const store = nearCache(redisStore({ client, prefix, ownsClient: true }), { invalidation: calls.source });
  await store.ready();
  const opened = { store, tracking, client, subscriber, name, calls };
  open.push(opened);
  return opened;
}

async function closeAll(): Promise<void> {
  for (const { store, subscriber } of open.splice(0)) {
    await store.close();
    subscriber.disconnect();
  }
}

/** The server-side ID of the connection named `name`. */
async function connectionId(admin: Redis, name: string): Promise<string> {
  const list = String(await admin.call('CLIENT', 'LIST'));
  const line = list.split('\n').find((entry) => entry.includes(` name=${name} `));
  const id = line && /^id=(\d+)/.exec(line)?.[1];
  if (!id) throw new Error(`no connection named ${name}`);
  return id;
}

const SHARED = (() => {
  const url = new URL(SHARED_REDIS_URL);
  return { host: url.hostname, port: Number(url.port || 6379) };
})();

const field = (value: unknown, at: number) => ({ value: JSON.stringify(value), stamp: stampAt(at) });
const namesKey = (key: string) => (call: SinkCall) => call.kind === 'invalidate' && call.keys.includes(key);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

describe('near-cache over redis: invalidation by client tracking between instances', () => {
  let admin: Redis;
  let prefix: string;

  beforeEach(async () => {
    admin = await sharedClient();
    prefix = newPrefix();
  });

  afterEach(async () => {
    await closeAll();
    await deletePrefix(admin, prefix);
    admin.disconnect();
  });

  it('a write on instance A drops the copy instance B cached, and B then loads the new state', async () => {
    const [a, b] = [await instance(prefix, SHARED), await instance(prefix, SHARED)];
    const k = storeKey();
    const created = b.calls.next(namesKey(k));
    await a.store.create(k, storedRecord({ n: 0 }));
    // B hears of the create too; a load in flight when it does would not cache.
    await created;
    await b.store.load(k);
    expect(fieldValue(await b.store.load(k), 'n')).toBe(0);
    expect(b.store.stats).toMatchObject({ hits: 1, entries: 1 });
    const dropped = b.calls.next(namesKey(k));
    expect((await a.store.apply(k, { fields: { n: field(1, Date.now() + 1) } })).status).toBe('ok');
    await dropped;
    expect(b.store.stats).toMatchObject({ entries: 0, invalidations: { local: 0, remote: 1 } });
    expect(fieldValue(await b.store.load(k), 'n')).toBe(1);
    const destroyed = b.calls.next(namesKey(k));
    expect(await a.store.destroy(k, TOMBSTONE_GRACE_MS, stampAt(Date.now()))).toBe(true);
    await destroyed;
    expect(await b.store.load(k)).toBeNull();
  });

  it('an instance never serves its own writes stale, whether or not Redis reports them back to it', async () => {
    // NOLOOP is asked for, but Redis 7.0.15 reports writes made by scripts (all of this store's) anyway (redis/redis#11052).
    const a = await instance(prefix, SHARED);
    const k = storeKey();
    await a.store.create(k, storedRecord({ n: 0 }));
    for (let n = 1; n <= 20; n++) {
      expect(fieldValue(await a.store.load(k), 'n')).toBe(n - 1);
      await a.store.apply(k, { fields: { n: field(n, Date.now() + n) } });
      expect(fieldValue(await a.store.load(k), 'n')).toBe(n);
    }
  });

  it('checker, writes on A and reads on B: an invalidation arrives for every write, and every stale read B serves was served before it', async () => {
    const [a, b] = [await instance(prefix, SHARED), await instance(prefix, SHARED)];
    const WRITES = 2_000;
    const k = storeKey();
    const base = Date.now();
    await a.store.create(k, storedRecord({ n: 0 }));
    const ackAt: number[] = [0];
    const invalidatedAt: number[] = [0];
    const invalidatedSeq: number[] = [0];
    b.calls.onCall((call) => {
      if (call.kind !== 'invalidate' || !call.keys.includes(k)) return;
      invalidatedAt.push(call.at);
      invalidatedSeq.push(call.seq);
    });
    let acked = 0;
    let done = false;
    const reads: { startSeq: number; startAt: number; ackedAtStart: number; n: number }[] = [];
    // B reads between A's writes (so it holds copies when A writes): A waits for three more reads after each write.
    let wanted = 0;
    let enoughReads: () => void = () => {};
    const readsReach = (count: number) => new Promise<void>((resolve) => ((wanted = count), (enoughReads = resolve)));
    const reader = async () => {
      while (!done) {
        const startSeq = tick();
        const startAt = performance.now();
        const ackedAtStart = acked;
        const record = await b.store.load(k);
        reads.push({ startSeq, startAt, ackedAtStart, n: fieldValue(record, 'n') as number });
        if (reads.length >= wanted) enoughReads();
        // A hit settles without I/O: yield as a server between requests does, or the readers starve the sockets.
        await nextTurn();
      }
    };
    const readers = [reader(), reader()];
    try {
      for (let i = 1; i <= WRITES; i++) {
        expect((await a.store.apply(k, { fields: { n: field(i, base + i) } })).status).toBe('ok');
        ackAt.push(performance.now());
        tick();
        acked = i;
        await readsReach(reads.length + 3);
      }
    } finally {
      done = true;
      await Promise.all(readers);
    }
    // B's subscriber keeps order: once it hears of a later write, every earlier invalidation has arrived.
    const marker = storeKey();
    const markerHeard = b.calls.next(namesKey(marker));
    await a.store.create(marker, storedRecord({}));
    await markerHeard;

    expect(invalidatedAt.length - 1).toBe(WRITES);
    const stale = reads.filter((read) => read.n < read.ackedAtStart);
    for (const read of stale) {
      // The write that made it stale is n + 1; its invalidation had not been handled when the read began.
      expect(invalidatedSeq[read.n + 1]).toBeGreaterThan(read.startSeq);
    }
    const lag = ackAt
      .slice(1)
      .map((at, i) => (invalidatedAt[i + 1] as number) - at)
      .sort((x, y) => x - y);
    const staleAge = stale.map((read) => read.startAt - (ackAt[read.n + 1] as number)).sort((x, y) => x - y);
    console.log(
      `near-cache staleness over ${WRITES} writes (ms from A's acknowledgement to B's invalidation): ` +
        `p50 ${percentile(lag, 50).toFixed(3)}, p99 ${percentile(lag, 99).toFixed(3)}, max ${(lag.at(-1) as number).toFixed(3)}, ` +
        `min ${(lag[0] as number).toFixed(3)}; ${reads.length} reads on B, ${stale.length} stale` +
        (stale.length > 0 ? `, oldest ${(staleAge.at(-1) as number).toFixed(3)} ms` : '') +
        `; B: ${JSON.stringify(b.store.stats)}`,
    );
    expect(b.store.stats.hits).toBeGreaterThan(0);
  }, 60_000);

  it('checker, writes and reads on one instance (sticky routing): no stale read at all', async () => {
    const a = await instance(prefix, SHARED);
    const WRITES = 500;
    const k = storeKey();
    const base = Date.now();
    await a.store.create(k, storedRecord({ n: 0 }));
    let acked = 0;
    let done = false;
    let stale = 0;
    let reads = 0;
    // Reads outnumber writes, as on a real site: the writer waits for ten more reads between writes.
    let wanted = 0;
    let enoughReads: () => void = () => {};
    const readsReach = (count: number) => new Promise<void>((resolve) => ((wanted = count), (enoughReads = resolve)));
    const reader = async () => {
      while (!done) {
        const ackedAtStart = acked;
        const n = fieldValue(await a.store.load(k), 'n') as number;
        reads++;
        if (reads >= wanted) enoughReads();
        if (n < ackedAtStart) stale++;
        await nextTurn();
      }
    };
    const readers = [reader(), reader(), reader()];
    try {
      for (let i = 1; i <= WRITES; i++) {
        await a.store.apply(k, { fields: { n: field(i, base + i) } });
        acked = i;
        await readsReach(reads + 10);
      }
    } finally {
      done = true;
      await Promise.all(readers);
    }
    expect(stale).toBe(0);
    expect(reads).toBeGreaterThan(WRITES);
    expect(a.store.stats.hits).toBeGreaterThan(0);
  }, 60_000);

  it('a destroyed session is never served by the instance that destroyed it, while another instance keeps writing it', async () => {
    const [a, b] = [await instance(prefix, SHARED), await instance(prefix, SHARED)];
    for (let round = 0; round < 50; round++) {
      const k = storeKey();
      await a.store.create(k, storedRecord({ n: 0 }));
      await a.store.load(k);
      const writes = Array.from({ length: 5 }, (_, i) => b.store.apply(k, { fields: { [`f${i}`]: field(i, Date.now() + i) } }));
      const loads = Array.from({ length: 5 }, () => a.store.load(k));
      expect(await a.store.destroy(k, TOMBSTONE_GRACE_MS, stampAt(Date.now() + 10))).toBe(true);
      expect(await a.store.load(k)).toBeNull();
      await Promise.all([...writes, ...loads]);
      expect(await a.store.load(k)).toBeNull();
    }
  });

  it('the subscriber connection dropping flushes the cache and is counted; caching resumes on the new connection, and invalidations with it', async () => {
    const [a, b] = [await instance(prefix, SHARED), await instance(prefix, SHARED)];
    const k = storeKey();
    await a.store.create(k, storedRecord({ n: 0 }));
    await b.store.load(k);
    const down = b.calls.next((call) => call.kind === 'down');
    const up = b.calls.next((call) => call.kind === 'up');
    await admin.call('CLIENT', 'KILL', 'ID', await connectionId(admin, `${b.name}-sub`));
    await down;
    expect(b.store.stats).toMatchObject({ flushes: 1, entries: 0 });
    await up;
    expect(b.tracking.status).toEqual({ up: true, reason: null });
    await b.store.load(k);
    const dropped = b.calls.next(namesKey(k));
    await a.store.apply(k, { fields: { n: field(1, Date.now() + 1) } });
    await dropped;
    expect(fieldValue(await b.store.load(k), 'n')).toBe(1);
  });

  it('the data connection dropping takes tracking with it: flushed, counted, and turned on again after the reconnect', async () => {
    const [a, b] = [await instance(prefix, SHARED), await instance(prefix, SHARED)];
    const k = storeKey();
    await a.store.create(k, storedRecord({ n: 0 }));
    await b.store.load(k);
    const down = b.calls.next((call) => call.kind === 'down');
    const up = b.calls.next((call) => call.kind === 'up');
    await admin.call('CLIENT', 'KILL', 'ID', await connectionId(admin, `${b.name}-data`));
    await down;
    expect(b.store.stats).toMatchObject({ flushes: 1, entries: 0 });
    await up;
    const info = (await b.client.call('CLIENT', 'TRACKINGINFO')) as unknown[];
    expect(info[1]).toEqual(['on', 'bcast', 'noloop']);
    expect(info[5]).toEqual([`${prefix}{`]);
    await b.store.load(k);
    const dropped = b.calls.next(namesKey(k));
    await a.store.apply(k, { fields: { n: field(1, Date.now() + 1) } });
    await dropped;
    expect(fieldValue(await b.store.load(k), 'n')).toBe(1);
  });

  it('keys outside the store\'s sessions (user indexes, watermarks, other prefixes) are not reported', async () => {
    const b = await instance(prefix, SHARED);
    const k = storeKey();
    const seen: string[] = [];
    b.calls.onCall((call) => void (call.kind === 'invalidate' && seen.push(...call.keys)));
    await admin.set(`${prefix}u:{someone}`, '1');
    await admin.set(`other:${prefix}{${k}}`, '1');
    const heard = b.calls.next(namesKey(k));
    await admin.set(`${prefix}{${k}}`, '1');
    await heard;
    await admin.del(`other:${prefix}{${k}}`);
    expect(seen).toEqual([k]);
  });

  it('openRedisNearCache(url) opens the store, the tracking and its subscriber, and close() closes them all', async () => {
    const url = `${SHARED_REDIS_URL}?prefix=${encodeURIComponent(prefix)}`;
    const subscribers = async () => String(await admin.call('CLIENT', 'LIST')).split('\n').filter((line) => line.includes(' name=elastic-session:invalidation ')).length;
    const before = await subscribers();
    const [a, b] = [await openRedisNearCache(url, { maxEntries: 100 }), await openRedisNearCache(url)];
    try {
      await Promise.all([a.ready(), b.ready()]);
      const k = storeKey();
      await a.create(k, storedRecord({ n: 0 }));
      expect(await admin.exists(`${prefix}{${k}}`)).toBe(1);
      expect(await subscribers()).toBe(before + 2);
      expect(fieldValue(await b.load(k), 'n')).toBe(0);
      await a.apply(k, { fields: { n: field(1, Date.now() + 1) } });
      await a.destroy(k, TOMBSTONE_GRACE_MS);
      expect(await a.load(k)).toBeNull();
    } finally {
      await a.close();
      await b.close();
    }
    expect(await subscribers()).toBe(before);
    await expect(openRedisNearCache('redis-cluster://127.0.0.1:7000')).rejects.toThrow(/near-cache.*Cluster/);
  });

  it('refuses a second source on a client that already has one: tracking is per connection', async () => {
    const a = await instance(prefix, SHARED);
    const second = redisInvalidation({ client: a.client, prefix });
    expect(() => nearCache(a.store.inner, { invalidation: second })).toThrow(/client.*already has/);
    await second.close();
    expect(a.tracking.status.up).toBe(true);
  });

  it('refuses options it cannot work with, naming the option', () => {
    const client = new Redis({ ...SHARED, lazyConnect: true });
    const resubscribing = new Redis({ ...SHARED, lazyConnect: true });
    try {
      expect(() => redisInvalidation({ client, subscriber: resubscribing })).toThrow(/subscriber.*autoResubscribe/);
      expect(() => redisInvalidation({ client, subscriber: client })).toThrow(/subscriber/);
      expect(() => redisInvalidation({ client, prefix: 'a{b' })).toThrow(/prefix/);
      expect(() => redisInvalidation({ client, healthCheckMs: 0 })).toThrow(/healthCheckMs/);
      expect(() => redisInvalidation({ client: { isCluster: true, call: () => {}, duplicate: () => {} } as unknown as Redis })).toThrow(/Cluster/);
    } finally {
      client.disconnect();
      resubscribing.disconnect();
    }
  });
});

describe('near-cache over redis: a private server that stops answering or is flushed', () => {
  let server: RedisServer;
  const prefix = newPrefix();

  beforeAll(async () => {
    await checkRedisBinaries();
    server = await startRedis();
  });

  afterEach(async () => {
    server.resume();
    await closeAll();
  });

  afterAll(async () => {
    await stopAll();
  });

  it('a server that stops answering without closing a connection takes the cache down by the health check, and it comes back', async () => {
    const connection = { host: '127.0.0.1', port: server.port };
    const [a, b] = [await instance(prefix, connection), await instance(prefix, connection, { healthCheckMs: 200 })];
    const k = storeKey();
    const created = b.calls.next(namesKey(k));
    await a.store.create(k, storedRecord({ n: 0 }));
    await created;
    await b.store.load(k);
    expect(b.store.stats.entries).toBe(1);
    const down = b.calls.next((call) => call.kind === 'down');
    server.pause();
    await down;
    expect(b.store.stats).toMatchObject({ flushes: 1, entries: 0, caching: false });
    expect(b.tracking.status.up).toBe(false);
    const up = b.calls.next((call) => call.kind === 'up');
    server.resume();
    await up;
    await b.store.load(k);
    const dropped = b.calls.next(namesKey(k));
    await a.store.apply(k, { fields: { n: field(1, Date.now() + 1) } });
    await dropped;
    expect(fieldValue(await b.store.load(k), 'n')).toBe(1);
  }, 30_000);

  it('FLUSHALL drops every cached copy and caching goes on', async () => {
    const connection = { host: '127.0.0.1', port: server.port };
    const [a, b] = [await instance(prefix, connection), await instance(prefix, connection)];
    const admin = new Redis({ ...BOUNDED, ...connection });
    try {
      const keys = [storeKey(), storeKey()];
      for (const k of keys) {
        const created = b.calls.next(namesKey(k));
        await a.store.create(k, storedRecord({}));
        await created;
        await b.store.load(k);
      }
      expect(b.store.stats.entries).toBe(2);
      const flushed = b.calls.next((call) => call.kind === 'flush');
      await admin.flushall();
      await flushed;
      expect(b.store.stats).toMatchObject({ entries: 0, flushes: 1, caching: true });
      for (const k of keys) expect(await b.store.load(k)).toBeNull();
    } finally {
      admin.disconnect();
    }
  });
});

