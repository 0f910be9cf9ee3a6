import { createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { published } from './helpers/channels.js';
import { isSessionError, SessionError } from '../src/core/errors.js';
import { storeKeyOf } from '../src/core/ids.js';
import { SessionManager } from '../src/core/manager.js';
import { CHANNELS } from '../src/core/telemetry.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { SCRIPTS } from '../src/stores/redis/scripts.js';
import { openRedisStore, parseRedisUrl, redisStore } from '../src/stores/redis.js';
import type { RedisStore } from '../src/stores/redis.js';
import { runStoreConformance } from '../src/testing/index.js';
import { stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { BOUNDED, deletePrefix, describeReplicaPowers, redisFixture, SECRET, SHARED_REDIS_URL } from './helpers/redis-fixtures.js';
import { SessionLoad } from './helpers/redis-load.js';
import { checkRedisBinaries, monitor, sleep, startRedis, startSentinel, stopAll, waitForReplicasOnline } from './helpers/redis-servers.js';
import type { RedisServer } from './helpers/redis-servers.js';

const newPrefix = () => `es-test:${randomBytes(6).toString('hex')}:`;

/** Fails loudly (instead of skipping) when the shared server is missing. */
async function sharedClient(): Promise<Redis> {
  const client = new Redis(SHARED_REDIS_URL, { ...BOUNDED, lazyConnect: true });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw new Error(`These tests need Redis at ${SHARED_REDIS_URL} (Debian: apt-get install redis-server, then redis-server --port 6379 --save ""; or set ES_TEST_REDIS_URL)`, { cause: error });
  }
  return client;
}

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'redis (standalone)',
  fakeClock: false,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async () => {
    const prefix = newPrefix();
    const admin = await sharedClient();
    const open = () => redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true });
    return redisFixture(admin, prefix, open(), open);
  },
});

describeReplicaPowers(
  'redis (standalone)',
  async () => {
    const admin = await sharedClient();
    const prefix = newPrefix();
    const store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true });
    return {
      store,
      admin,
      prefix,
      cleanup: async () => {
        await store.close();
        await deletePrefix(admin, prefix);
        admin.disconnect();
      },
    };
  },
  { modelRuns: 100 },
);

describe('redis store on the shared server', () => {
  let admin: Redis;
  let prefix: string;
  let store: RedisStore;

  beforeEach(async () => {
    admin = await sharedClient();
    prefix = newPrefix();
    store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true });
  });

  afterEach(async () => {
    await store.close();
    await deletePrefix(admin, prefix);
    admin.disconnect();
  });

  const corruptCount = async (fn: () => Promise<unknown>): Promise<number> => (await published(CHANNELS.corrupt, fn)).length;


  it('keeps one hash per session under a hash tag, expiring at min(lastSeenAt + idle, absolute)', async () => {
    const key = storeKey();
    const r = storedRecord({ a: 1 }, { idleTimeout: 60_000 });
    await store.create(key, r);
    const redisKey = `${prefix}{${key}}`;
    expect(await admin.type(redisKey)).toBe('hash');
    expect(await admin.call('PEXPIRETIME', redisKey)).toBe(r.lastSeenAt + 60_000);

    await store.apply(key, { fields: { b: { value: '2', stamp: stampAt(Date.now() + 1) } } });
    expect(await admin.call('PEXPIRETIME', redisKey), 'a write without lastSeenAt leaves the deadline').toBe(r.lastSeenAt + 60_000);
    await store.apply(key, { fields: {}, lastSeenAt: r.lastSeenAt + 5_000 });
    expect(await admin.call('PEXPIRETIME', redisKey), 'the sliding refresh moves it').toBe(r.lastSeenAt + 65_000);
    await store.apply(key, { fields: {}, lastSeenAt: r.lastSeenAt + 1_000 });
    expect(await admin.call('PEXPIRETIME', redisKey), 'an older lastSeenAt does not move it back').toBe(r.lastSeenAt + 65_000);

    const capped = storeKey();
    const c = storedRecord({}, { idleTimeout: 60_000, absoluteExpiresAt: Date.now() + 10_000 });
    await store.create(capped, c);
    await store.apply(capped, { fields: {}, lastSeenAt: Date.now() + 1_000 });
    expect(await admin.call('PEXPIRETIME', `${prefix}{${capped}}`), 'never past the absolute expiry').toBe(c.absoluteExpiresAt);
  });

  it('leaves a tombstone hash that loads as null and expires at absolute expiry plus the grace', async () => {
    const key = storeKey();
    const r = storedRecord({ a: 1 });
    await store.create(key, r);
    expect(await store.destroy(key, TOMBSTONE_GRACE_MS)).toBe(true);
    const redisKey = `${prefix}{${key}}`;
    const until = r.absoluteExpiresAt + TOMBSTONE_GRACE_MS;
    expect(await admin.hgetall(redisKey)).toEqual({ 'm:t': '1', 'm:T': String(until), 'm:S': '', 'm:r': expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(await admin.call('PEXPIRETIME', redisKey)).toBe(until);
    expect(await store.load(key)).toBeNull();

    const stamped = storeKey();
    await store.create(stamped, r);
    const stamp = stampAt(Date.now());
    expect(await store.destroy(stamped, 1_000, stamp)).toBe(true);
    expect(await admin.hmget(`${prefix}{${stamped}}`, 'm:T', 'm:S'), 'the stamp and the guard are kept in the hash, not only as a TTL').toEqual([String(r.absoluteExpiresAt + 1_000), stamp]);
    expect(await store.readState(stamped)).toEqual({ kind: 'tombstone', stamp, until: r.absoluteExpiresAt + 1_000 });
  });

  it('keeps user field names apart from metadata: a field named "m:v" or "m:t" is plain data', async () => {
    const key = storeKey();
    await store.create(key, storedRecord({ 'm:v': 'x', 'm:t': 1, 'f:a': true, 'a|b': 'bar' }));
    const loaded = await store.load(key);
    expect(loaded?.version).toBe(1);
    expect(Object.keys(loaded?.fields ?? {}).sort()).toEqual(['a|b', 'f:a', 'm:t', 'm:v']);
    expect(loaded?.fields['a|b']?.value).toBe('"bar"');
    const stamp = stampAt(Date.now() + 5);
    expect(await store.apply(key, { fields: { 'm:v': { value: null, stamp } } })).toEqual({ status: 'ok', version: 2 });
    expect((await store.load(key))?.fields['m:v']).toEqual({ value: null, stamp });
  });

  it('treats unreadable metadata and fields as absent and counts them', async () => {
    const key = storeKey();
    await store.create(key, storedRecord({ a: 1 }));
    await admin.hset(`${prefix}{${key}}`, 'm:v', 'not-a-number');
    expect(await corruptCount(async () => expect(await store.load(key)).toBeNull())).toBe(1);
    expect(await corruptCount(async () => expect((await store.apply(key, { fields: {} })).status).toBe('gone'))).toBe(1);

    const other = storeKey();
    await store.create(other, storedRecord({ a: 1 }));
    await admin.hset(`${prefix}{${other}}`, 'f:b', '');
    expect(await corruptCount(async () => expect(await store.load(other)).toBeNull())).toBe(1);

    const wrongType = storeKey();
    await admin.set(`${prefix}{${wrongType}}`, 'garbage');
    expect(await corruptCount(async () => expect((await store.apply(wrongType, { fields: {} })).status).toBe('gone'))).toBe(1);
    expect(await corruptCount(async () => expect(await store.destroy(wrongType, 1000)).toBe(false))).toBe(1);
    expect(await store.create(wrongType, storedRecord()), 'a key holding anything is taken').toBe(false);
  });

  it('keeps the user index in a per-user sorted set scored by absolute expiry, with a TTL', async () => {
    const user = `user-${randomBytes(4).toString('hex')}`;
    const key = storeKey();
    const r = storedRecord({}, { userId: user });
    await store.create(key, r);
    const [index] = await admin.keys(`${prefix}u:*`);
    expect(index).toMatch(new RegExp(`^${prefix}u:\\{[0-9a-f]{40}\\}$`));
    expect(await admin.zscore(index as string, key)).toBe(String(r.absoluteExpiresAt));
    expect(await admin.call('PEXPIRETIME', index as string)).toBe(r.absoluteExpiresAt + 1);
    await store.apply(key, { fields: {}, userId: null, userStamp: stampAt(Date.now() + 1) });
    expect(await admin.exists(index as string), 'the last member left: the index is gone').toBe(0);
    expect(await store.listByUser(user)).toEqual([]);

    const unicode = `ünï-🙂-${user}`;
    await store.apply(key, { fields: {}, userId: unicode, userStamp: stampAt(Date.now() + 2) });
    expect((await store.listByUser(unicode)).map((summary) => summary.key), 'Lua and Node name the index alike').toEqual([key]);
  });

  it('rejects keys that would break hash tags, and bad configuration naming the option', async () => {
    await expect(store.load('a{b}')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    const client = new Redis(SHARED_REDIS_URL, { ...BOUNDED, lazyConnect: true });
    try {
      expect(() => redisStore({ client, prefix: 'a{' })).toThrow(/prefix/);
      expect(() => redisStore({ client, waitForReplicas: { replicas: 1, timeoutMs: 0 } })).toThrow(/waitForReplicas\.timeoutMs/);
      expect(() => redisStore({ client, waitForReplicas: { replicas: 1, timeoutMs: 5_000 } })).toThrow(/commandTimeout/);
      expect(() => redisStore({ client: new Redis(SHARED_REDIS_URL, { ...BOUNDED, lazyConnect: true, keyPrefix: 'x:' }) })).toThrow(/keyPrefix/);
      expect(() => redisStore({ client: new Redis(SHARED_REDIS_URL, { ...BOUNDED, lazyConnect: true, role: 'slave' }) })).toThrow(/primary/);
    } finally {
      client.disconnect();
    }
  });

  it('close() leaves a client it does not own open, and then refuses every operation', async () => {
    const client = new Redis(SHARED_REDIS_URL, BOUNDED);
    const borrowed = redisStore({ client, prefix });
    await borrowed.close();
    expect(await client.ping()).toBe('PONG');
    await expect(borrowed.load(storeKey())).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    await expect(borrowed.sweep(10)).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    client.disconnect();
  });

  it('scan() walks only live sessions under its own prefix (glob characters taken literally), never over the limit', async () => {
    const client = new Redis(SHARED_REDIS_URL, BOUNDED);
    const globbed = redisStore({ client, prefix: `${prefix}a*:` });
    const neighbour = redisStore({ client, prefix: `${prefix}ab:` });
    try {
      const live = Array.from({ length: 12 }, () => storeKey());
      for (const [i, key] of live.entries()) await globbed.create(key, storedRecord({ a: i }, { userId: i < 3 ? 'alice' : null }));
      const destroyed = storeKey();
      await globbed.create(destroyed, storedRecord({ a: 1 }));
      await globbed.destroy(destroyed, TOMBSTONE_GRACE_MS);
      const corrupt = storeKey();
      await admin.set(`${prefix}a*:{${corrupt}}`, 'not a session');
      const other = storeKey();
      await neighbour.create(other, storedRecord({ a: 1 }, { userId: 'alice' }));
      expect(await admin.exists(`${prefix}a*:u:{${createHash('sha1').update('alice').digest('hex')}}`), 'a user index exists to be skipped').toBe(1);

      for (const limit of [1, 5, 100]) {
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const page: { keys: string[]; cursor: string | null } = await globbed.scan(cursor, limit);
          expect(page.keys.length).toBeLessThanOrEqual(limit);
          seen.push(...page.keys);
          cursor = page.cursor;
        } while (cursor !== null);
        expect([...new Set(seen)].sort(), `limit ${limit}`).toEqual([...live].sort());
      }
      expect((await neighbour.scan(null, 100)).keys).toEqual([other]);

      await expect(globbed.scan(null, 0)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
      await expect(globbed.scan('not a cursor', 10)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
      await expect(globbed.scan(`r2.${Buffer.from('[0,"",0,[]]').toString('base64url')}`, 10)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    } finally {
      client.disconnect();
    }
  });

  it('reports server memory and key counts', async () => {
    const usage = await store.usage();
    expect(usage.memoryBytes).toBeGreaterThan(0);
    expect(usage.keys).toBeGreaterThanOrEqual(0);
  });

  it('openRedisStore() opens an owned client from a redis:// URL and quits it on close()', async () => {
    const url = new URL(SHARED_REDIS_URL);
    url.searchParams.set('prefix', prefix);
    const opened = await openRedisStore(url.toString());
    const key = storeKey();
    expect(await opened.create(key, storedRecord({ a: 1 }))).toBe(true);
    expect(await admin.exists(`${prefix}{${key}}`)).toBe(1);
    await opened.close();
    await expect(opened.load(key)).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
  });
});

describe('parseRedisUrl()', () => {
  it('reads standalone, TLS, Sentinel and Cluster URLs', () => {
    expect(parseRedisUrl('redis://localhost')).toEqual({ mode: 'standalone', host: 'localhost', port: 6379, db: 0, tls: false });
    expect(parseRedisUrl('rediss://app:p%40ss@cache.example:6380/2?prefix=s:')).toEqual({
      mode: 'standalone', host: 'cache.example', port: 6380, db: 2, tls: true, username: 'app', password: 'p@ss', prefix: 's:',
    });
    expect(parseRedisUrl('redis://:secret@[::1]:7000')).toMatchObject({ host: '::1', port: 7000, password: 'secret' });
    expect(parseRedisUrl('redis-sentinel://:pw@s1:26379,s2,[::1]:26380/mymaster/3?sentinelPassword=sp')).toEqual({
      mode: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }, { host: '::1', port: 26380 }],
      name: 'mymaster', db: 3, tls: false, password: 'pw', sentinelPassword: 'sp',
    });
    expect(parseRedisUrl('rediss-cluster://n1:7000,n2:7001')).toEqual({ mode: 'cluster', nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }], tls: true });
  });

  it('refuses malformed URLs without repeating them (they may hold passwords)', () => {
    for (const bad of ['http://x', 'redis://a:1,b:2', 'redis-sentinel://s1:26379', 'redis-cluster://n1:7000/1', 'redis://:hunter2@h:99999', 'redis://h?tls=yes']) {
      let error: unknown;
      try {
        parseRedisUrl(bad);
      } catch (caught) {
        error = caught;
      }
      expect(isSessionError(error, 'ESESS_CONFIG'), bad).toBe(true);
      expect((error as Error).message).not.toContain('hunter2');
      expect((error as Error).message).not.toContain(bad);
    }
  });
});

describe('redis store on private servers', () => {
  let server: RedisServer;
  let admin: Redis;
  const stores: RedisStore[] = [];
  const clients: Redis[] = [];

  const client = (options: Partial<typeof BOUNDED> = {}): Redis => {
    const created = new Redis({ ...BOUNDED, port: server.port, ...options });
    created.on('error', () => {});
    clients.push(created);
    return created;
  };
  const open = (options: Partial<Parameters<typeof redisStore>[0]> = {}): RedisStore => {
    const store = redisStore({ client: client(), prefix: 'es:', ...options });
    stores.push(store);
    return store;
  };

  /** Commands the server received from clients (not from scripts) while `fn` ran. */
  async function commandsDuring(fn: () => Promise<unknown>, via: Redis): Promise<string[][]> {
    await via.ping();
    const watching = await monitor(server.port);
    const marker = `marker-${randomBytes(4).toString('hex')}`;
    try {
      await fn();
      await via.echo(marker);
      for (let i = 0; i < 100 && !watching.seen.some((entry) => entry.command === 'ECHO' && entry.args[0] === marker); i++) await sleep(10);
      const until = watching.seen.findIndex((entry) => entry.command === 'ECHO' && entry.args[0] === marker);
      expect(until, 'the marker arrived').toBeGreaterThanOrEqual(0);
      return watching.seen.slice(0, until).filter((entry) => entry.source !== 'lua').map((entry) => [entry.command, ...entry.args]);
    } finally {
      watching.stop();
    }
  }

  beforeAll(async () => {
    await checkRedisBinaries();
    server = await startRedis();
    admin = new Redis({ ...BOUNDED, port: server.port });
    admin.on('error', () => {});
  });

  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    for (const created of clients.splice(0)) created.disconnect();
  });

  afterAll(async () => {
    admin?.disconnect();
    await stopAll();
  });

  it('reloads its scripts transparently after SCRIPT FLUSH (NOSCRIPT)', async () => {
    const store = open();
    const key = storeKey();
    await store.create(key, storedRecord({ a: 1 }));
    await admin.script('FLUSH');
    expect(await admin.script('EXISTS', SCRIPTS.apply.sha)).toEqual([0]);
    expect((await store.apply(key, { fields: { b: { value: '2', stamp: stampAt(Date.now() + 1) } } })).status).toBe('ok');
    expect(await admin.script('EXISTS', SCRIPTS.apply.sha)).toEqual([1]);
    expect((await store.load(key))?.fields.b?.value).toBe('2');
  });

  it('recognises a script ioredis resends after a lost reply, and does not apply it twice', async () => {
    const connection = client();
    const store = redisStore({ client: connection, prefix: 'es:' });
    stores.push(store);
    const key = storeKey();
    await store.create(key, storedRecord({ n: 0 }));
    const spy = vi.spyOn(connection, 'evalsha');
    const replayLast = async () => admin.call('EVALSHA', ...(spy.mock.calls.at(-1) ?? []).map(String));

    const applied = await store.apply(key, { fields: { n: { value: '1', stamp: stampAt(Date.now() + 1) } }, expectVersion: 1 });
    expect(applied).toEqual({ status: 'ok', version: 2 });
    expect((await replayLast()) as number[], 'the replay reports success, not a conflict with itself').toEqual([1, 2, expect.any(Number)]);
    expect((await store.load(key))?.version).toBe(2);

    const fresh = storeKey();
    expect(await store.create(fresh, storedRecord())).toBe(true);
    expect(await replayLast(), 'a replayed create still reports the key as created').toBe(1);
    expect(await store.create(fresh, storedRecord()), 'another create is refused').toBe(false);

    const merged = await store.mergeState(key, { kind: 'live', record: storedRecord({ m: 1 }) });
    expect(merged).toEqual({ state: 'live', changed: true });
    expect(((await replayLast()) as unknown[]).slice(0, 3), 'a replayed merge reports the first run\'s outcome').toEqual([0, 1, 1]);
    expect((await store.load(key))?.version, 'and does not raise the version again').toBe(3);

    expect(await store.destroy(key, 1_000)).toBe(true);
    expect(await replayLast(), 'a replayed destroy still reports the destroy').toBe(1);
    expect(await store.destroy(key, 1_000)).toBe(false);
    const stamp = stampAt(Date.now());
    expect(await store.mergeState(key, { kind: 'tombstone', stamp, until: Date.now() + 60_000 })).toEqual({ state: 'tombstone', changed: true });
    expect(((await replayLast()) as unknown[]).slice(0, 3)).toEqual([0, 2, 1]);
    expect((await store.readState(key))?.kind).toBe('tombstone');
    spy.mockRestore();
  });

  it('costs one command per operation: HGETALL for load, one EVALSHA for every write', async () => {
    const store = open();
    const via = clients[clients.length - 1] as Redis;
    const key = storeKey();
    const user = 'alice';
    await store.create(storeKey(), storedRecord({}, { userId: user }));
    const ops: [string, () => Promise<unknown>][] = [
      ['create', () => store.create(key, storedRecord({ a: 1 }, { userId: user }))],
      ['load', () => store.load(key)],
      ['apply', () => store.apply(key, { fields: { a: { value: '2', stamp: stampAt(Date.now() + 1) } }, lastSeenAt: Date.now() })],
      ['apply (principal change)', () => store.apply(key, { fields: {}, userId: 'bob', userStamp: stampAt(Date.now() + 1) })],
      ['readState', () => store.readState(key)],
      ['mergeState', () => store.mergeState(key, { kind: 'live', record: storedRecord({ m: 1 }, { userId: 'carl' }) })],
      ['listByUser', () => store.listByUser('bob')],
      ['readWatermark', () => store.readWatermark('bob')],
      ['mergeWatermark', () => store.mergeWatermark('carl', stampAt(Date.now() - 60_000))],
      ['destroy', () => store.destroy(key, TOMBSTONE_GRACE_MS, stampAt(Date.now()))],
      ['destroyByUser', () => store.destroyByUser(user, TOMBSTONE_GRACE_MS)],
      ['destroyByUser (with a revoke stamp)', () => store.destroyByUser('bob', TOMBSTONE_GRACE_MS, stampAt(Date.now()))],
    ];
    const warm = storeKey();
    await store.create(warm, storedRecord({}, { userId: 'warm' }));
    await store.apply(warm, { fields: {} });
    await store.readState(warm);
    await store.mergeState(warm, { kind: 'tombstone', stamp: '', until: Date.now() });
    await store.listByUser('warm');
    await store.destroyByUser('warm', 1_000);
    await store.destroy(warm, 1_000);
    const figures: Record<string, string> = {};
    for (const [name, op] of ops) {
      const commands = await commandsDuring(op, via);
      figures[name] = commands.map((args) => (args[0] as string).toUpperCase()).join(' ');
      expect(commands, name).toHaveLength(1);
    }
    expect(figures.load).toBe('HGETALL');
    expect(figures.readWatermark).toBe('HMGET');
    expect(figures.mergeState).toBe('EVALSHA');
    console.log('[redis] commands per store operation (standalone):', figures);

    const manager = new SessionManager({ store, secrets: [SECRET] });
    const eager = new SessionManager({ store, secrets: [SECRET], touchAfter: 0 });
    const session = manager.create({ data: { cart: [] } });
    const perRequest: Record<string, number> = {};
    perRequest['new session (create)'] = (await commandsDuring(() => manager.save(session), via)).length;
    perRequest['read-only, refresh not due'] = (await commandsDuring(async () => manager.save((await manager.load(session.id))!), via)).length;
    perRequest['read-only, refresh due'] = (await commandsDuring(async () => eager.save((await eager.load(session.id))!), via)).length;
    perRequest['modifying'] = (
      await commandsDuring(async () => {
        const loaded = (await manager.load(session.id))!;
        loaded.set('cart', ['book']);
        await manager.save(loaded);
      }, via)
    ).length;
    perRequest['logout (destroy)'] = (await commandsDuring(async () => manager.destroy((await manager.load(session.id))!), via)).length;
    expect(perRequest).toEqual({ 'new session (create)': 1, 'read-only, refresh not due': 1, 'read-only, refresh due': 2, modifying: 2, 'logout (destroy)': 2 });
    console.log('[redis] commands per request through the manager (standalone):', perRequest);
  });

  it('measures Redis memory per session (empty, and with 1 KiB of data)', async () => {
    const store = open();
    const count = 2_000;
    const measure = async (fields: Record<string, unknown>, userOf: (i: number) => string | null = () => null) => {
      await admin.flushall();
      await sleep(50);
      const before = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
      const keys = Array.from({ length: count }, () => storeKeyOf(randomBytes(32).toString('base64url')));
      for (let i = 0; i < count; i += 200) await Promise.all(keys.slice(i, i + 200).map((key, j) => store.create(key, storedRecord(fields, { userId: userOf(i + j) }))));
      const after = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
      const usage = Number(await admin.call('MEMORY', 'USAGE', `es:{${keys[0]}}`, 'SAMPLES', '0'));
      return { perSession: Math.round((after - before) / count), memoryUsageOfOneKey: usage };
    };
    const figures = {
      empty: await measure({}),
      'empty, each with its own principal (+ user index)': await measure({}, (i) => `user-${i}`),
      '1 KiB in one field': await measure({ data: 'x'.repeat(1022) }),
      '1 KiB in 8 fields': await measure(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, 'x'.repeat(126)]))),
    };
    console.log('[redis] memory per session (bytes, used_memory delta over 2000 sessions; MEMORY USAGE of one key):', figures);
    expect(figures.empty.perSession).toBeGreaterThan(50);
    expect(figures['1 KiB in one field'].perSession).toBeGreaterThan(1_024);
    await admin.flushall();
  });

  it('waitForReplicas: WAITs in the same round trip, and says so when replicas did not acknowledge', async () => {
    const lonely = open({ waitForReplicas: { replicas: 1, timeoutMs: 100 } });
    const key = storeKey();
    const error = await lonely.create(key, storedRecord({ a: 1 })).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SessionError);
    expect(error).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { reason: 'replication', acknowledged: 0, required: 1, operation: 'create' } });
    expect((error as Error).message).toMatch(/applied on the primary/);
    expect(await lonely.load(key), 'the write itself happened').not.toBeNull();
    expect((await lonely.apply(storeKey(), { fields: {} })).status, 'nothing written, nothing to wait for').toBe('gone');

    const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(server.port)] });
    const replicaClient = new Redis({ ...BOUNDED, port: replica.port });
    try {
      await waitForReplicasOnline(admin, 1);
      const durable = open({ waitForReplicas: { replicas: 1, timeoutMs: 1_000 } });
      const via = clients[clients.length - 1] as Redis;
      const durableKey = storeKey();
      expect(await durable.create(durableKey, storedRecord({ a: 1 }, { userId: 'carol' }))).toBe(true);
      const commands = await commandsDuring(() => durable.apply(durableKey, { fields: { b: { value: '2', stamp: stampAt(Date.now() + 1) } } }), via);
      expect(commands.map((args) => (args[0] as string).toUpperCase())).toEqual(['EVALSHA', 'WAIT']);
      await admin.script('FLUSH');
      expect((await durable.apply(durableKey, { fields: {} })).status, 'NOSCRIPT inside the WAIT pipeline reloads too').toBe('ok');
      expect(await replicaClient.hget(`es:{${durableKey}}`, 'f:b')).toMatch(/\|2$/);
      expect(await durable.listByUser('carol')).toHaveLength(1);
      expect(await durable.destroyByUser('carol', 1_000)).toBe(1);
      expect(await replicaClient.hget(`es:{${durableKey}}`, 'm:t')).toBe('1');
    } finally {
      replicaClient.disconnect();
      await replica.kill();
    }
  });

  it('types server refusals by kind and never carries keys or session contents in the error', async () => {
    const store = open();
    const key = storeKey();
    await admin.config('SET', 'maxmemory', '1');
    try {
      const error = await store.create(key, storedRecord({ secret: 'top-secret-value' })).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'redis', operation: 'create', kind: 'oom' } });
      const printed = inspect(error, { depth: 10 });
      expect(printed).toContain('OOM');
      expect(printed).not.toContain(key);
      expect(printed).not.toContain('top-secret-value');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
  });

  it('follows a redis-sentinel:// URL, and keeps every write acknowledged with waitForReplicas through a Sentinel failover', async () => {
    const primary = await startRedis();
    const replicas = await Promise.all([0, 1].map(() => startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] })));
    const admins = replicas.map((replica) => {
      const connection = new Redis({ ...BOUNDED, port: replica.port });
      connection.on('error', () => {});
      return connection;
    });
    const primaryClient = new Redis({ ...BOUNDED, port: primary.port });
    primaryClient.on('error', () => {});
    await waitForReplicasOnline(primaryClient, 2);
    primaryClient.disconnect();
    const sentinel = await startSentinel(primary.port);
    const sentinelClient = new Redis({ ...BOUNDED, port: sentinel.port });
    sentinelClient.on('error', () => {});
    const url = `redis-sentinel://127.0.0.1:${sentinel.port}/mymaster?prefix=es-sentinel:`;
    const clientOptions = { maxRetriesPerRequest: 1, commandTimeout: 2_000, connectTimeout: 500 };
    const durable = await openRedisStore(url, { waitForReplicas: { replicas: 1, timeoutMs: 500 }, operationTimeoutMs: 5_000, clientOptions });
    stores.push(durable);
    try {
      // Sentinel learns the replicas from the primary's INFO; a failover needs them known.
      for (let i = 0; i < 100 && ((await sentinelClient.call('SENTINEL', 'REPLICAS', 'mymaster')) as unknown[]).length < 2; i++) await sleep(50);
      const load = new SessionLoad(durable, { workers: 4 });
      load.start();
      await sleep(700);
      // A walk begun on the old primary must not go on, with its SCAN cursor, on the new one.
      const walk = await durable.scan(null, 1);
      expect(walk.cursor).not.toBeNull();
      const killedAt = Date.now();
      await primary.kill();
      let promotedAfterMs = -1;
      let heir = -1;
      for (let attempt = 0; attempt < 150 && promotedAfterMs < 0; attempt++) {
        await sleep(100);
        const address = (await sentinelClient.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')) as string[];
        heir = replicas.findIndex((replica) => replica.port === Number(address[1]));
        if (heir >= 0 && /role:master/.test(await (admins[heir] as Redis).info('replication'))) promotedAfterMs = Date.now() - killedAt;
      }
      expect(promotedAfterMs, 'Sentinel promoted a replica').toBeGreaterThan(0);
      await waitForReplicasOnline(admins[heir] as Redis, 1);
      const recoveredAt = Date.now();
      await sleep(1_000);
      const report = await load.stop();
      const reader = await openRedisStore(url, { clientOptions });
      stores.push(reader);
      const check = await load.verify(reader);
      console.log('[redis] Sentinel failover with waitForReplicas:', JSON.stringify({ promotedAfterMs, ...report, ...check }));
      expect(report.nonRetriable).toEqual([]);
      expect(report.hangs).toBe(0);
      expect(report.goneAfterAck).toBe(0);
      expect(report.lastAcknowledgedAt, 'acknowledged writes resumed after the failover').toBeGreaterThan(recoveredAt);
      expect(check.lostSessions).toBe(0);
      expect(check.lostWrites).toBe(0);
      expect(check.unlisted).toBe(0);
      await expect(reader.scan(walk.cursor, 100)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { kind: 'failover' } });
      expect((await reader.scan(null, 100_000)).cursor, 'a new walk on the new primary goes through').toBeNull();
    } finally {
      sentinelClient.disconnect();
      for (const connection of admins) connection.disconnect();
      await sentinel.kill();
      for (const replica of replicas) await replica.kill();
    }
  });

  it('survives a restart with persistence off: typed errors while down, recovery after, vanished sessions absent', async () => {
    const store = redisStore({ client: client({ retryStrategy: () => 100 }), prefix: 'es:' });
    stores.push(store);
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const session = manager.create({ data: { cart: ['a'] } });
    await manager.save(session);
    const stale = (await manager.load(session.id))!;

    await server.kill();
    for (const operation of [() => store.load(storeKey()), () => store.create(storeKey(), storedRecord()), () => store.ping(), () => manager.load(session.id)]) {
      const started = Date.now();
      const error = await operation().then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(isSessionError(error, 'ESESS_STORE_UNAVAILABLE'), String(error)).toBe(true);
      expect((error as SessionError).retriable).toBe(true);
      expect((error as SessionError).context.kind).toBe('connection');
      expect(Date.now() - started, 'fails fast, no hang').toBeLessThan(3_000);
    }

    await server.restart();
    let recovered = false;
    for (let attempt = 0; attempt < 50 && !recovered; attempt++) {
      recovered = await store.ping().then(
        () => true,
        () => false,
      );
      if (!recovered) await sleep(100);
    }
    expect(recovered, 'the store recovers once the server is back').toBe(true);
    expect(await manager.load(session.id), 'a session lost with the server is absent, not an error').toBeNull();
    stale.set('late', true);
    await expect(manager.save(stale)).rejects.toMatchObject({ code: 'ESESS_GONE' });
    const fresh = manager.create({ data: { n: 1 } });
    await manager.save(fresh);
    const loaded = (await manager.load(fresh.id))!;
    loaded.set('n', 2);
    await manager.save(loaded);
    expect((await manager.load(fresh.id))?.get('n'), 'scripts reloaded after the restart').toBe(2);
    admin.disconnect();
    admin = new Redis({ ...BOUNDED, port: server.port });
    admin.on('error', () => {});
  });
});
