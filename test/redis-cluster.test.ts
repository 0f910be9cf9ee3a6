import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { openRedisStore, redisStore } from '../src/stores/redis.js';
import type { RedisStore, RedisStoreOptions } from '../src/stores/redis.js';
import { runStoreConformance } from '../src/testing/index.js';
import { stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { BOUNDED_CLUSTER, deletePrefix, describeReplicaPowers, redisFixture } from './helpers/redis-fixtures.js';
import { SessionLoad } from './helpers/redis-load.js';
import { checkRedisBinaries, monitor, redisCli, sleep, startCluster, stopAll } from './helpers/redis-servers.js';
import type { RedisClusterNodes } from './helpers/redis-servers.js';

let cluster: RedisClusterNodes;

beforeAll(async () => {
  await checkRedisBinaries();
  cluster = await startCluster(3);
}, 60_000);

afterAll(async () => {
  await stopAll();
});

const newPrefix = () => `es-test:${randomBytes(6).toString('hex')}:`;

function clusterClient(): Cluster {
  const client = new Cluster(cluster.seeds, BOUNDED_CLUSTER);
  client.on('error', () => {});
  client.on('node error', () => {});
  return client;
}

const openStore = (options: Partial<RedisStoreOptions> = {}): RedisStore => redisStore({ client: clusterClient(), ownsClient: true, ...options });

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'redis (cluster, 3 masters + 3 replicas)',
  fakeClock: false,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async () => {
    const prefix = newPrefix();
    const admin = clusterClient();
    // Connected, slots known and scripts cached: cases that time a few milliseconds measure the store, not the client's start.
    const store = openStore({ prefix });
    await store.loadScripts();
    return redisFixture(admin, prefix, store, () => openStore({ prefix }));
  },
});

describeReplicaPowers(
  'redis (cluster)',
  async () => {
    const prefix = newPrefix();
    const admin = clusterClient();
    const store = openStore({ prefix });
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
  { modelRuns: 40 },
);

describe('redis store on a cluster', () => {
  it('scan() walks every primary in turn, and refuses to go on once the primaries changed', async () => {
    const prefix = newPrefix();
    const store = openStore({ prefix });
    const admin = clusterClient();
    try {
      const keys = Array.from({ length: 40 }, () => storeKey());
      await Promise.all(keys.map((key) => store.create(key, storedRecord({ a: 1 }))));
      await admin.ping();
      const holders = await Promise.all(admin.nodes('master').map(async (node) => (await node.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000))[1].length));
      expect(holders.filter((count) => count > 0).length, 'the sessions live on several primaries').toBeGreaterThan(1);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { keys: string[]; cursor: string | null } = await store.scan(cursor, 4);
        expect(page.keys.length).toBeLessThanOrEqual(4);
        seen.push(...page.keys);
        cursor = page.cursor;
      } while (cursor !== null);
      expect([...new Set(seen)].sort()).toEqual([...keys].sort());
      const moved = `r2.${Buffer.from(JSON.stringify([0, 'another-topology', '0', []])).toString('base64url')}`;
      await expect(store.scan(moved, 4)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { kind: 'cluster' } });
    } finally {
      await store.close();
      await deletePrefix(admin, prefix);
      admin.disconnect();
    }
  });

  it('scan() refuses to walk while a slot migrates, and to go on after a slot moved: a walk that ends missed nothing', async () => {
    const prefix = newPrefix();
    const store = openStore({ prefix });
    try {
      await Promise.all(Array.from({ length: 40 }, () => store.create(storeKey(), storedRecord({ a: 1 }))));
      const masters = (await cluster.nodes()).filter((node) => node.flags.includes('master') && !node.flags.includes('fail'));
      const [source, target] = masters as [(typeof masters)[number], (typeof masters)[number]];
      const slot = String((JSON.parse(String(await cluster.command(source.port, 'EVAL', 'return cjson.encode(redis.call("CLUSTER", "SLOTS"))', '0'))) as [number, number, [string, number, string]][])
        .find((range) => range[2][1] === source.port)?.[0]);
      // A slot half-way through a migration: what redis-cli --cluster reshard does, slot by slot.
      await cluster.command(target.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id);
      await cluster.command(source.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id);
      try {
        await expect(store.scan(null, 5)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { kind: 'cluster' }, message: expect.stringMatching(/slot migration is under way/) });
      } finally {
        await cluster.command(source.port, 'CLUSTER', 'SETSLOT', slot, 'STABLE');
        await cluster.command(target.port, 'CLUSTER', 'SETSLOT', slot, 'STABLE');
      }
      const first = await store.scan(null, 5);
      expect(first.cursor).not.toBeNull();
      // The slot changes hands between two pages of the walk (it may hold none of its keys).
      await redisCli(['--cluster', 'reshard', `127.0.0.1:${source.port}`, '--cluster-from', source.id, '--cluster-to', target.id, '--cluster-slots', '1', '--cluster-yes']);
      await cluster.waitHealthy();
      await expect(store.scan(first.cursor, 5)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { kind: 'cluster' }, message: expect.stringMatching(/topology changed/) });
      const again: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { keys: string[]; cursor: string | null } = await store.scan(cursor, 7);
        again.push(...page.keys);
        cursor = page.cursor;
      } while (cursor !== null);
      expect(new Set(again).size, 'walked again on the new topology, every session').toBe(40);
    } finally {
      await store.close();
    }
  });

  it('spreads sessions over slots, keeps each user index in its own slot, and lists across them', async () => {
    const prefix = newPrefix();
    const store = openStore({ prefix });
    try {
      expect(store.isCluster).toBe(true);
      const user = `u-${randomBytes(4).toString('hex')}`;
      const keys = Array.from({ length: 30 }, () => storeKey());
      await Promise.all(keys.map((key) => store.create(key, storedRecord({ a: 1 }, { userId: user }))));
      const moved = keys[0] as string;
      expect((await store.apply(moved, { fields: {}, userId: 'someone-else', userStamp: stampAt(Date.now() + 1) })).status).toBe('ok');
      expect((await store.apply(moved, { fields: {}, userId: user, userStamp: stampAt(Date.now() + 2) })).status, 'moving back is listed again').toBe('ok');
      const gone = keys[1] as string;
      await store.destroy(gone, TOMBSTONE_GRACE_MS);
      const listed = (await store.listByUser(user)).map((summary) => summary.key).sort();
      expect(listed).toEqual(keys.filter((key) => key !== gone).sort());
      expect(await store.destroyByUser(user, TOMBSTONE_GRACE_MS)).toBe(29);
      expect(await store.listByUser(user)).toEqual([]);
      const usage = await store.usage();
      expect(usage.memoryBytes).toBeGreaterThan(0);
    } finally {
      await store.close();
      const admin = clusterClient();
      await deletePrefix(admin, prefix);
      admin.disconnect();
    }
  });

  it('measures the commands each operation sends in a cluster', async () => {
    const prefix = newPrefix();
    const store = openStore({ prefix });
    const masters = (await cluster.nodes()).filter((node) => node.flags.includes('master') && !node.flags.includes('fail'));
    const monitors = await Promise.all(masters.map((node) => monitor(node.port)));
    const ignored = ['CLUSTER', 'INFO', 'PING', 'READONLY', 'COMMAND'];
    const count = async (fn: () => Promise<unknown>): Promise<string> => {
      await sleep(100);
      for (const each of monitors) each.seen.length = 0;
      await fn();
      await sleep(150);
      const seen = monitors.flatMap((each) => each.seen).filter((entry) => entry.source !== 'lua' && !ignored.includes(entry.command));
      return seen.map((entry) => entry.command).sort().join(' ');
    };
    try {
      const user = `u-${randomBytes(4).toString('hex')}`;
      const keys = [storeKey(), storeKey(), storeKey()];
      await store.loadScripts();
      const figures: Record<string, string> = {};
      figures['create (no principal)'] = await count(() => store.create(storeKey(), storedRecord()));
      figures['create (with principal)'] = await count(() => store.create(keys[0] as string, storedRecord({}, { userId: user })));
      figures.load = await count(() => store.load(keys[0] as string));
      figures.apply = await count(() => store.apply(keys[0] as string, { fields: { a: { value: '1', stamp: stampAt(Date.now()) } }, lastSeenAt: Date.now() }));
      await store.create(keys[1] as string, storedRecord());
      figures['apply (principal change)'] = await count(() => store.apply(keys[1] as string, { fields: {}, userId: user, userStamp: stampAt(Date.now() + 1) }));
      figures.destroy = await count(() => store.destroy(keys[1] as string, TOMBSTONE_GRACE_MS));
      await store.create(keys[2] as string, storedRecord({}, { userId: user }));
      figures['listByUser (2 live, 1 destroyed)'] = await count(() => store.listByUser(user));
      figures['destroyByUser (2 live)'] = await count(() => store.destroyByUser(user, TOMBSTONE_GRACE_MS));
      const merged = storeKey();
      const revoked = `u-${randomBytes(4).toString('hex')}`;
      const arriving = storedRecord({ a: 1 }, { userId: revoked, createdAt: Date.now() - 1_000 });
      figures['mergeState (a new record with a principal)'] = await count(() => store.mergeState(merged, { kind: 'live', record: arriving }));
      figures['mergeState (a duplicate)'] = await count(() => store.mergeState(merged, { kind: 'live', record: arriving }));
      figures['mergeState (a tombstone)'] = await count(() => store.mergeState(storeKey(), { kind: 'tombstone', stamp: stampAt(Date.now()), until: Date.now() + 60_000 }));
      figures.readState = await count(() => store.readState(merged));
      figures.readWatermark = await count(() => store.readWatermark(revoked));
      await store.create(keys[0] as string, storedRecord({}, { userId: revoked, createdAt: Date.now() - 1_000 }));
      figures['mergeWatermark (2 live, both covered)'] = await count(() => store.mergeWatermark(revoked, stampAt(Date.now())));
      console.log('[redis-cluster] commands per store operation (cluster):', figures);
      expect(figures.load).toBe('HGETALL');
      expect(figures.apply).toBe('EVALSHA');
      expect(figures.destroy).toBe('EVALSHA');
      expect(figures['create (no principal)']).toBe('EVALSHA');
      expect(figures['create (with principal)']).toBe('EVALSHA EVALSHA');
      expect(figures['apply (principal change)']).toBe('EVALSHA EVALSHA EVALSHA');
      expect(figures['listByUser (2 live, 1 destroyed)']).toBe('EVALSHA HMGET HMGET HMGET ZREM');
      expect(figures['destroyByUser (2 live)']).toBe('EVALSHA EVALSHA EVALSHA ZREM');
      expect(figures['mergeState (a new record with a principal)'], 'watermark and index entry, merge, watermark again and exact score').toBe('EVALSHA EVALSHA EVALSHA');
      expect(figures['mergeState (a duplicate)']).toBe('EVALSHA EVALSHA');
      expect(figures['mergeState (a tombstone)']).toBe('EVALSHA');
      expect(figures.readState).toBe('EVALSHA');
      expect(figures.readWatermark).toBe('HMGET');
      expect(figures['mergeWatermark (2 live, both covered)']).toBe('EVALSHA EVALSHA EVALSHA ZREM');
    } finally {
      for (const each of monitors) each.stop();
      await store.close();
      const admin = clusterClient();
      await deletePrefix(admin, prefix);
      admin.disconnect();
    }
  });

  it('refuses a client that reads from replicas', () => {
    const client = new Cluster(cluster.seeds, { ...BOUNDED_CLUSTER, scaleReads: 'slave', lazyConnect: true });
    expect(() => redisStore({ client })).toThrow(/scaleReads/);
    client.disconnect();
  });

  it('openRedisStore() opens an owned Cluster client from a redis-cluster:// URL, with waitForReplicas', async () => {
    const prefix = newPrefix();
    const url = `redis-cluster://${cluster.seeds.map(({ host, port }) => `${host}:${port}`).join(',')}?prefix=${encodeURIComponent(prefix)}`;
    const store = await openRedisStore(url, { waitForReplicas: { replicas: 1, timeoutMs: 1_000 } });
    try {
      const key = storeKey();
      expect(await store.create(key, storedRecord({ a: 1 }, { userId: 'dora' }))).toBe(true);
      expect((await store.apply(key, { fields: { b: { value: '2', stamp: stampAt(Date.now() + 1) } } })).status).toBe('ok');
      expect((await store.listByUser('dora')).map((summary) => summary.key)).toEqual([key]);
    } finally {
      await store.close();
      const admin = clusterClient();
      await deletePrefix(admin, prefix);
      admin.disconnect();
    }
  });
});

describe('redis store through cluster failures', () => {
  const closing: RedisStore[] = [];
  afterEach(async () => {
    for (const store of closing.splice(0)) await store.close();
  });

  /** Two populations on one cluster: writes acknowledged after WAIT 1, and plain writes. */
  function populations(prefix: string) {
    const durable = openStore({ prefix, waitForReplicas: { replicas: 1, timeoutMs: 1_000 }, operationTimeoutMs: 6_000 });
    const plain = openStore({ prefix, operationTimeoutMs: 6_000 });
    const reader = openStore({ prefix });
    closing.push(durable, plain, reader);
    return { durable: new SessionLoad(durable, { workers: 8 }), plain: new SessionLoad(plain, { workers: 8 }), reader };
  }

  it('kill -9 of a master whose replica lags, under load: every write acknowledged with waitForReplicas survives, callers see only typed retriable errors', async () => {
    const { durable, plain, reader } = populations(newPrefix());
    durable.start();
    plain.start();
    await sleep(1_500);

    const before = await cluster.nodes();
    const victim = before.find((node) => node.flags.includes('master') && !node.flags.includes('fail'));
    const heir = before.find((node) => node.master === victim?.id);
    expect(victim && heir).toBeTruthy();
    const server = cluster.servers.find((candidate) => candidate.port === victim?.port);
    const lagging = cluster.servers.find((candidate) => candidate.port === heir?.port);
    // The replica falls 300 ms behind (frozen) just before its master dies: what asynchronous
    // replication loses in a crash. Writes acknowledged with WAIT cannot be among them.
    lagging?.pause();
    await sleep(300);
    const killedAt = Date.now();
    await server?.kill();
    lagging?.resume();

    let promotedAfterMs = -1;
    for (let attempt = 0; attempt < 150 && promotedAfterMs < 0; attempt++) {
      await sleep(100);
      const now = await cluster.nodes().catch(() => []);
      if (now.find((node) => node.id === heir?.id)?.flags.includes('master')) promotedAfterMs = Date.now() - killedAt;
    }
    expect(promotedAfterMs, 'the replica was promoted').toBeGreaterThan(0);
    await cluster.waitHealthy(15_000);
    await sleep(1_500);
    const [durableReport, plainReport] = await Promise.all([durable.stop(), plain.stop()]);
    const durableCheck = await durable.verify(reader);
    const plainCheck = await plain.verify(reader);

    console.log('[redis-cluster] failover:', JSON.stringify({ promotedAfterMs, withWaitForReplicas: { ...durableReport, ...durableCheck }, withoutWaitForReplicas: { ...plainReport, ...plainCheck } }, null, 1));
    for (const report of [durableReport, plainReport]) {
      expect(report.nonRetriable).toEqual([]);
      expect(report.hangs).toBe(0);
      expect(report.acknowledgedWrites).toBeGreaterThan(100);
    }
    expect(durableCheck.lostSessions).toBe(0);
    expect(durableCheck.lostWrites).toBe(0);
    expect(durableCheck.unlisted).toBe(0);
    expect(durableReport.goneAfterAck).toBe(0);

    // The killed master comes back as a replica of its heir, so the next test has a full cluster.
    await server?.restart();
    await cluster.waitHealthy(20_000);
  }, 60_000);

  it('live resharding of 4000 slots under load: zero lost sessions, zero non-retriable errors', async () => {
    const { durable, plain, reader } = populations(newPrefix());
    durable.start();
    plain.start();
    await sleep(1_000);
    const masters = (await cluster.nodes()).filter((node) => node.flags.includes('master') && !node.flags.includes('fail'));
    const [from, to] = masters;
    expect(from && to).toBeTruthy();
    const started = Date.now();
    await redisCli(['--cluster', 'reshard', `127.0.0.1:${from?.port}`, '--cluster-from', from?.id as string, '--cluster-to', to?.id as string, '--cluster-slots', '4000', '--cluster-yes'], 60_000);
    const reshardMs = Date.now() - started;
    await sleep(500);
    const [durableReport, plainReport] = await Promise.all([durable.stop(), plain.stop()]);
    const durableCheck = await durable.verify(reader);
    const plainCheck = await plain.verify(reader);
    console.log('[redis-cluster] resharding:', JSON.stringify({ reshardMs, withWaitForReplicas: { ...durableReport, ...durableCheck }, withoutWaitForReplicas: { ...plainReport, ...plainCheck } }, null, 1));
    for (const [report, check] of [
      [durableReport, durableCheck],
      [plainReport, plainCheck],
    ] as const) {
      expect(report.nonRetriable).toEqual([]);
      expect(report.hangs).toBe(0);
      expect(report.goneAfterAck).toBe(0);
      expect(check.lostSessions).toBe(0);
      expect(check.lostWrites).toBe(0);
      expect(check.unlisted).toBe(0);
    }
  }, 90_000);
});
