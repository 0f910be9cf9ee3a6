import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeEntry } from '../../src/changelog/entry.js';
import { decodeStreamEntry } from '../../src/changelog/redis-entry.js';
import { covers, mergeWatermarks, revokedTombstone, sameState, watermarkAt } from '../../src/core/record.js';
import type { KeyState, LiveState, StoredField, StoredSession, TombstoneState, Watermark } from '../../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../../src/core/types.js';
import { mergeForeign } from '../../src/stores/kit/replica.js';
import type { RedisStore } from '../../src/stores/redis.js';
import type { StoreFixture } from '../../src/testing/index.js';
import type { SessionStore } from '../../src/core/types.js';
import { stampAt, storedRecord, storeKey } from '../../src/testing/fixtures.js';

/** The shared Redis server of the tests: `ES_TEST_REDIS_URL`, or the one on 127.0.0.1:6379. */
export const SHARED_REDIS_URL = process.env.ES_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Client settings the Redis tests use: every failure surfaces within a few seconds. */
export const BOUNDED: RedisOptions = { host: '127.0.0.1', maxRetriesPerRequest: 1, commandTimeout: 3_000, connectTimeout: 1_000 };

export const BOUNDED_CLUSTER: ClusterOptions = {
  retryDelayOnFailover: 100,
  retryDelayOnClusterDown: 100,
  retryDelayOnTryAgain: 100,
  slotsRefreshTimeout: 1_000,
  redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 3_000, connectTimeout: 1_000 },
};

export const SECRET = 'redis-tests-secret-0123456789abcdef0123';

/** An admin client on the shared server; fails loudly (instead of skipping) when the server is missing. */
export async function sharedRedis(): Promise<Redis> {
  const { Redis: Client } = await import('ioredis');
  const client = new Client(SHARED_REDIS_URL, { ...BOUNDED, lazyConnect: true });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw new Error(`These tests need Redis at ${SHARED_REDIS_URL} (redis-server --port 6379 --save "", or set ES_TEST_REDIS_URL)`, { cause: error });
  }
  return client;
}

/** Every entry of a change-log stream, decoded, with its stream ID, oldest first. */
export async function changeLogOf(client: Redis, stream: string): Promise<{ streamId: string; entry: ChangeEntry }[]> {
  const raw = (await client.xrange(stream, '-', '+')) as [string, string[]][];
  return raw.map(([streamId, fields]) => ({ streamId, entry: decodeStreamEntry(fields, streamId) }));
}

/**
 * Runs the store's expiry reconciler every 25 ms until it has written `count` expirations (Redis
 * announces expiries only through lossy keyspace notifications: there is nothing to await).
 */
export async function reconcileUntil(store: RedisStore, count: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let found = 0;
  while (found < count) {
    if (Date.now() > deadline) throw new Error(`${found} of ${count} expirations found within ${timeoutMs} ms`);
    found += await store.reconcileExpirations(100);
    if (found < count) await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return found;
}

/** Every event of an events stream (each entry: the one field `event`), parsed, oldest first. */
export async function eventsOf(client: Redis, stream: string): Promise<Record<string, unknown>[]> {
  const raw = (await client.xrange(stream, '-', '+')) as [string, string[]][];
  return raw.map(([, fields]) => {
    expect(fields).toHaveLength(2);
    expect(fields[0]).toBe('event');
    return JSON.parse(fields[1] as string) as Record<string, unknown>;
  });
}

/** Deletes every key under a prefix (SCAN, never KEYS), on one node or on every primary of a cluster. */
export async function deletePrefix(client: Redis | Cluster, prefix: string): Promise<void> {
  // A cluster client knows its primaries only once connected.
  await client.ping();
  const nodes: Redis[] = (client as { isCluster?: boolean }).isCluster ? (client as Cluster).nodes('master') : [client as Redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) await node.del(key);
    } while (cursor !== '0');
  }
}

/**
 * Writes a record exactly as the previous release did (its create script): the session hash
 * without `m:s`, its expiry, and the user's index entry. Works on a Cluster client too (the
 * index lives in another slot, so each command goes on its own).
 */
export async function writePreviousRecord(client: Redis | Cluster, prefix: string, key: string, record: StoredSession): Promise<void> {
  const hash = `${prefix}{${key}}`;
  const meta: string[] = ['m:c', String(record.createdAt), 'm:l', String(record.lastSeenAt), 'm:i', String(record.idleTimeout), 'm:a', String(record.absoluteExpiresAt), 'm:v', String(record.version), 'm:r', '0123456789abcdef'];
  if (record.userId !== null) meta.push('m:u', record.userId);
  for (const [name, field] of Object.entries(record.fields)) meta.push(`f:${name}`, field.value === null ? field.stamp : `${field.stamp}|${field.value}`);
  await client.hset(hash, ...meta);
  await client.pexpireat(hash, Math.min(record.lastSeenAt + record.idleTimeout, record.absoluteExpiresAt));
  if (record.userId !== null) {
    const index = `${prefix}u:{${createHash('sha1').update(record.userId).digest('hex')}}`;
    await client.zadd(index, record.absoluteExpiresAt, key);
    await client.pexpireat(index, record.absoluteExpiresAt + 1);
  }
}

/** A tombstone as the previous release left it: `{ m:t: "1", m:r }`, expiring at absolute expiry + grace. */
export async function writePreviousTombstone(client: Redis | Cluster, prefix: string, key: string, until: number): Promise<void> {
  const hash = `${prefix}{${key}}`;
  await client.hset(hash, 'm:t', '1', 'm:r', 'fedcba9876543210');
  await client.pexpireat(hash, until);
}

/** What the replica cases need: a store, an admin client on the same server(s), and the prefix. */
export interface ReplicaTarget {
  store: RedisStore;
  admin: Redis | Cluster;
  prefix: string;
  cleanup: () => Promise<void>;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * The replica powers against the model of src/core/record.ts, and records of the previous
 * release: run by the standalone and the Cluster test files alike.
 */
export function describeReplicaPowers(name: string, setup: () => Promise<ReplicaTarget>, options: { modelRuns: number }): void {
  describe(`${name}: replica powers`, () => {
    let target: ReplicaTarget;
    let store: RedisStore;
    const user = () => `user-${randomBytes(4).toString('hex')}`;
    const watermarkKey = (userId: string) => `${target.prefix}w:{${createHash('sha1').update(userId).digest('hex')}}`;

    beforeEach(async () => {
      target = await setup();
      store = target.store;
    });

    afterEach(async () => {
      await target.cleanup();
    });

    it('readState() returns a live record with every stamp, a tombstone with its stamp and until, and null for nothing', async () => {
      const key = storeKey();
      const record = storedRecord({ a: 1, gone: undefined }, { userId: user(), userStamp: stampAt(Date.now() - 5) });
      await store.create(key, record);
      expect(await store.readState(key)).toEqual({ kind: 'live', record });
      const stamp = stampAt(Date.now());
      await store.destroy(key, 2_000, stamp);
      expect(await store.readState(key)).toEqual({ kind: 'tombstone', stamp, until: record.absoluteExpiresAt + 2_000 });
      expect(await store.readState(storeKey())).toBeNull();
    });

    it('mergeState() creates a free key at version 1, merges live records field by field, and never revives past a tombstone', async () => {
      const now = Date.now();
      const key = storeKey();
      const older = stampAt(now - 10, 0, 'aa');
      const newer = stampAt(now - 5, 0, 'aa');
      const base = storedRecord({}, { createdAt: now - 1_000, lastSeenAt: now - 500, userId: 'ann', userStamp: older, version: 7 });
      base.fields = { kept: { value: '"old"', stamp: newer }, replaced: { value: '"old"', stamp: older }, tie: { value: '"\uffff"', stamp: older } };
      expect(await store.mergeState(key, { kind: 'live', record: base })).toEqual({ state: 'live', changed: true });
      expect((await store.load(key))?.version, 'the foreign version is ignored').toBe(1);

      const foreign = storedRecord({}, { createdAt: now - 2_000, lastSeenAt: now, idleTimeout: 2 * HOUR, absoluteExpiresAt: base.absoluteExpiresAt + 1_000, userId: 'bob', userStamp: newer });
      foreign.fields = { kept: { value: '"new"', stamp: older }, replaced: { value: null, stamp: newer }, tie: { value: '"\u{10000}"', stamp: older }, added: { value: '1', stamp: older } };
      expect(await store.mergeState(key, { kind: 'live', record: foreign })).toEqual({ state: 'live', changed: true });
      const merged = await store.load(key);
      expect(merged, 'createdAt and idleTimeout the minimum, lastSeenAt and absoluteExpiresAt the maximum, the later principal').toMatchObject({
        createdAt: now - 2_000, lastSeenAt: now, idleTimeout: base.idleTimeout, absoluteExpiresAt: foreign.absoluteExpiresAt, userId: 'bob', userStamp: newer, version: 2,
      });
      expect(merged?.fields, 'each field by its stamp; a tie by value in JavaScript order ("\\uffff" after "\\u{10000}")').toEqual({
        kept: { value: '"old"', stamp: newer },
        replaced: { value: null, stamp: newer },
        tie: { value: '"\uffff"', stamp: older },
        added: { value: '1', stamp: older },
      });
      expect(await target.admin.call('PEXPIRETIME', `${target.prefix}{${key}}`), 'the TTL follows the merged deadlines').toBe(Math.min(now + base.idleTimeout, foreign.absoluteExpiresAt));
      expect((await store.listByUser('bob')).map((summary) => summary.key), 'indexed under the merged principal').toEqual([key]);
      expect(await store.listByUser('ann')).toEqual([]);
      expect(await store.mergeState(key, { kind: 'live', record: foreign }), 'a duplicate changes nothing').toEqual({ state: 'live', changed: false });
      expect((await store.load(key))?.version).toBe(2);

      const destroyStamp = stampAt(now - 100);
      expect(await store.mergeState(key, { kind: 'tombstone', stamp: destroyStamp, until: now + HOUR })).toEqual({ state: 'tombstone', changed: true });
      const guard = foreign.absoluteExpiresAt + TOMBSTONE_GRACE_MS;
      expect(await store.readState(key), 'destroy wins, guarding at least the record\'s absolute expiry').toEqual({ kind: 'tombstone', stamp: destroyStamp, until: guard });
      expect(await target.admin.call('PEXPIRETIME', `${target.prefix}{${key}}`)).toBe(guard);
      expect(await store.listByUser('bob'), 'and leaves the index').toEqual([]);
      expect(await store.mergeState(key, { kind: 'live', record: { ...foreign, lastSeenAt: now + 10 } }), 'never revived').toEqual({ state: 'tombstone', changed: false });
      expect(await store.mergeState(key, { kind: 'live', record: { ...foreign, absoluteExpiresAt: foreign.absoluteExpiresAt + HOUR } }), 'a later expiry extends the guard').toEqual({ state: 'tombstone', changed: true });
      expect(await store.readState(key)).toEqual({ kind: 'tombstone', stamp: destroyStamp, until: guard + HOUR });
      expect(await store.mergeState(key, { kind: 'tombstone', stamp: older, until: now }), 'the later stamp, the later until').toEqual({ state: 'tombstone', changed: true });
      expect(await store.readState(key)).toEqual({ kind: 'tombstone', stamp: older, until: guard + HOUR });
      expect(await store.apply(key, { fields: { x: { value: '1', stamp: stampAt(now + 1) } } })).toEqual({ status: 'gone' });
      expect(await store.create(key, storedRecord())).toBe(false);

      const expired = storedRecord({ a: 1 }, { lastSeenAt: now - 2 * HOUR, createdAt: now - 2 * HOUR });
      expect(await store.mergeState(storeKey(), { kind: 'live', record: expired }), 'an expired record is nothing').toEqual({ state: 'absent', changed: false });
      expect(await store.mergeState(storeKey(), { kind: 'tombstone', stamp: older, until: now - 1 })).toEqual({ state: 'absent', changed: false });
      await expect(store.mergeState(storeKey(), { kind: 'tombstone', stamp: 'not a stamp', until: now })).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    });

    it('mergeState() behaves exactly as mergeRecords + settle of the model, watermarks included (fast-check)', async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(scenario(), async (steps) => {
          const now = Date.now();
          const users = [user(), user()];
          const key = storeKey();
          let model: KeyState = null;
          const marks = new Map<string, Watermark>();
          for (const [i, step] of steps.entries()) {
            const where = `run ${run}, step ${i}: ${JSON.stringify(step)}`;
            if (step.kind === 'watermark') {
              const userId = users[step.user] as string;
              const mark = mergeWatermarks(marks.get(userId) ?? null, watermarkAt(step.stamp)) as Watermark;
              marks.set(userId, mark);
              const killed = model?.kind === 'live' && model.record.userId === userId && covers(mark, model.record);
              if (killed && model?.kind === 'live') model = revokedTombstone(model.record);
              expect(await store.mergeWatermark(userId, step.stamp), where).toBe(killed ? 1 : 0);
              expect(await store.readWatermark(userId), where).toEqual(mark);
            } else {
              const foreign = build(step, now, users);
              const { next, outcome } = await mergeForeign(model, foreign, async (userId) => marks.get(userId) ?? null, now);
              expect(await store.mergeState(key, foreign), where).toEqual(outcome);
              model = next;
            }
            const state = await store.readState(key);
            expect(sameState(state, model), `${where}: ${JSON.stringify(state)} is not the model's ${JSON.stringify(model)}`).toBe(true);
            if (state?.kind === 'live' && model?.kind === 'live') expect(state.record.version, where).toBe(model.record.version);
          }
          run++;
        }),
        { numRuns: options.modelRuns },
      );
    }, 120_000);

    it('mergeWatermark() raises the watermark (never lowers it) and destroys the sessions of the user created at or before it', async () => {
      const now = Date.now();
      const ann = user();
      expect(await store.readWatermark(ann)).toBeNull();
      const early = storeKey();
      const late = storeKey();
      const other = storeKey();
      const mark = stampAt(now - 10);
      const covered = storedRecord({ a: 1 }, { createdAt: now - 10, userId: ann, userStamp: stampAt(now + 1_000) });
      await store.create(early, covered);
      await store.create(late, storedRecord({ a: 1 }, { createdAt: now - 9, userId: ann, userStamp: stampAt(now - 20) }));
      await store.create(other, storedRecord({ a: 1 }, { createdAt: now - 20, userId: user() }));
      expect(await store.mergeWatermark(ann, mark)).toBe(1);
      expect(await store.readWatermark(ann)).toEqual(watermarkAt(mark));
      expect(await target.admin.call('PEXPIRETIME', watermarkKey(ann)), 'kept until its until').toBe(watermarkAt(mark).until);
      expect(await store.readState(early), 'the revoked tombstone carries no stamp of its own').toEqual(revokedTombstone(covered));
      expect((await store.readState(late))?.kind, 'created after the revoke, whenever its principal was written').toBe('live');
      expect((await store.readState(other))?.kind).toBe('live');
      expect((await store.listByUser(ann)).map((summary) => summary.key)).toEqual([late]);
      expect(await store.mergeWatermark(ann, stampAt(now - 1_000)), 'an older stamp does not lower it').toBe(0);
      expect(await store.readWatermark(ann)).toEqual(watermarkAt(mark));

      const arriving = storeKey();
      const stale = storedRecord({ b: 2 }, { createdAt: now - 100, userId: ann });
      expect(await store.mergeState(arriving, { kind: 'live', record: stale }), 'a covered record arriving later dies').toEqual({ state: 'tombstone', changed: true });
      expect(await store.readState(arriving)).toEqual(revokedTombstone(stale));
      expect((await store.mergeState(storeKey(), { kind: 'live', record: storedRecord({}, { createdAt: now, userId: ann }) })).state).toBe('live');
      await expect(store.mergeWatermark(ann, '')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    });

    it('destroyByUser() with a stamp raises the watermark first, and its tombstones carry the stamp', async () => {
      const now = Date.now();
      const bea = user();
      const keys = [storeKey(), storeKey()];
      for (const key of keys) await store.create(key, storedRecord({}, { createdAt: now + 1_000, userId: bea }));
      const stamp = stampAt(now);
      expect(await store.destroyByUser(bea, 1_000, stamp), 'every live session, covered or not').toBe(2);
      for (const key of keys) expect(await store.readState(key)).toMatchObject({ kind: 'tombstone', stamp });
      expect(await store.readWatermark(bea)).toEqual(watermarkAt(stamp));
      expect((await store.mergeState(storeKey(), { kind: 'live', record: storedRecord({}, { createdAt: now - 1, userId: bea }) })).state).toBe('tombstone');
      const nobody = user();
      expect(await store.destroyByUser(nobody, 1_000), 'without a stamp no watermark').toBe(0);
      expect(await store.readWatermark(nobody)).toBeNull();
    });

    it('a watermark raised while covered records arrive by mergeState leaves none of them alive', async () => {
      const now = Date.now();
      const cid = user();
      const keys = Array.from({ length: 40 }, () => storeKey());
      const mark = stampAt(now);
      const merges = keys.map((key, i) =>
        store.mergeState(key, { kind: 'live', record: storedRecord({ i }, { createdAt: now - 1 - i, userId: cid }) }),
      );
      const revoke = store.mergeWatermark(cid, mark);
      await Promise.all([...merges, revoke]);
      const states = await Promise.all(keys.map((key) => store.readState(key)));
      expect(states.filter((state) => state?.kind === 'live')).toEqual([]);
      expect(await store.listByUser(cid)).toEqual([]);
    });

    it('loads, applies, reads and merges records and tombstones written by the previous release', async () => {
      const now = Date.now();
      const { admin, prefix } = target;
      const dan = user();
      const owned = storeKey();
      const plain = storeKey();
      const destroyed = storeKey();
      const old = storedRecord({ a: 1, deleted: undefined }, { createdAt: now - 1_000, userId: dan, userStamp: '' }, now - 1_000);
      await writePreviousRecord(admin, prefix, owned, old);
      await writePreviousRecord(admin, prefix, plain, { ...old, userId: null });
      await writePreviousTombstone(admin, prefix, destroyed, old.absoluteExpiresAt + TOMBSTONE_GRACE_MS);

      expect(await store.load(owned), 'the principal of an old record has the empty stamp').toEqual(old);
      expect(await store.readState(owned)).toEqual({ kind: 'live', record: old });
      expect(await store.readState(destroyed), 'an old tombstone guards until its expiry, unstamped').toEqual({ kind: 'tombstone', stamp: '', until: old.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
      expect(await store.load(destroyed)).toBeNull();
      expect((await store.listByUser(dan)).map((summary) => summary.key)).toEqual([owned]);

      const stamp = stampAt(now + 1);
      expect(await store.apply(plain, { fields: { a: { value: '2', stamp } }, userId: 'eve', userStamp: stamp })).toEqual({ status: 'ok', version: 2 });
      expect(await store.load(plain)).toMatchObject({ userId: 'eve', userStamp: stamp, version: 2, fields: { a: { value: '2', stamp } } });
      expect((await store.listByUser('eve')).map((summary) => summary.key)).toContain(plain);

      const foreign = storedRecord({ b: true }, { createdAt: old.createdAt, lastSeenAt: now + 5, absoluteExpiresAt: old.absoluteExpiresAt, userId: null, userStamp: stampAt(now - 1) });
      const { next, outcome } = await mergeForeign({ kind: 'live', record: old }, { kind: 'live', record: foreign }, async () => null, Date.now());
      expect(await store.mergeState(owned, { kind: 'live', record: foreign })).toEqual(outcome);
      expect(sameState(await store.readState(owned), next), 'merged by the model').toBe(true);
      expect((await store.load(owned))?.userId, 'any stamped principal wins over an old one').toBeNull();
      expect(await store.listByUser(dan)).toEqual([]);

      expect(await store.mergeState(destroyed, { kind: 'live', record: foreign }), 'an old tombstone is never revived').toEqual({ state: 'tombstone', changed: false });
      expect(await store.mergeState(destroyed, { kind: 'tombstone', stamp, until: old.absoluteExpiresAt })).toEqual({ state: 'tombstone', changed: true });
      expect(await store.readState(destroyed)).toEqual({ kind: 'tombstone', stamp, until: old.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
      expect(await store.apply(destroyed, { fields: {} })).toEqual({ status: 'gone' });

      const revoked = storeKey();
      const fay = user();
      await writePreviousRecord(admin, prefix, revoked, { ...old, userId: fay });
      expect(await store.mergeWatermark(fay, stampAt(now)), 'an old record created before the revoke dies').toBe(1);
      expect(await store.readState(revoked)).toMatchObject({ kind: 'tombstone' });
      const last = storeKey();
      await writePreviousRecord(admin, prefix, last, { ...old, userId: fay });
      expect(await store.destroy(last, 1_000, stamp)).toBe(true);
      expect(await store.readState(last)).toEqual({ kind: 'tombstone', stamp, until: old.absoluteExpiresAt + 1_000 });
    });
  });
}

type Step =
  | { kind: 'live'; user: number | null; userStamp: string; fields: Record<string, StoredField>; last: number; age: number; idle: number; abs: number; version: number }
  | { kind: 'tombstone'; stamp: string; until: number }
  | { kind: 'watermark'; user: number; stamp: string };

/**
 * Random merges and watermarks over few stamps (so ties happen), few fields and two users, with
 * times far enough from now that no deadline falls during a run. Values include characters on
 * both sides of the UTF-16 / UTF-8 order difference, for the value tie-break.
 */
function scenario(): fc.Arbitrary<Step[]> {
  const base = Date.now();
  const stamps = [-3_000, -2_000, -1_000].flatMap((offset) => ['aa', 'bb'].map((node) => stampAt(base + offset, 0, node)));
  const stamp = fc.constantFrom(...stamps);
  const value = fc.constantFrom(null, '"a"', '"b"', '"\uffff"', '"\u{10000}"', '"\u00e9"');
  const live = fc.record({
    kind: fc.constant('live' as const),
    user: fc.constantFrom(null, 0, 1),
    userStamp: fc.constantFrom('', ...stamps),
    fields: fc.dictionary(fc.constantFrom('x', 'y', 'z'), fc.record({ value, stamp }), { maxKeys: 3 }),
    last: fc.constantFrom(0, -30_000, -60_000),
    age: fc.constantFrom(0, 5_000),
    idle: fc.constantFrom(10_000, HOUR),
    abs: fc.constantFrom(DAY, 2 * DAY, -1_000),
    version: fc.nat(5),
  });
  const tombstone = fc.record({ kind: fc.constant('tombstone' as const), stamp: fc.constantFrom('', ...stamps), until: fc.constantFrom(HOUR, 2 * HOUR, -1_000) });
  const watermark = fc.record({ kind: fc.constant('watermark' as const), user: fc.constantFrom(0, 1), stamp });
  const merge = fc.oneof({ arbitrary: live, weight: 4 }, { arbitrary: tombstone, weight: 1 });
  return fc.array(fc.oneof({ arbitrary: merge, weight: 4 }, { arbitrary: watermark, weight: 1 }), { minLength: 1, maxLength: 5 });
}

function build(step: Exclude<Step, { kind: 'watermark' }>, now: number, users: string[]): LiveState | TombstoneState {
  if (step.kind === 'tombstone') return { kind: 'tombstone', stamp: step.stamp, until: now + step.until };
  const lastSeenAt = now + step.last;
  return {
    kind: 'live',
    record: {
      createdAt: lastSeenAt - step.age,
      lastSeenAt,
      idleTimeout: step.idle,
      absoluteExpiresAt: now + step.abs,
      userId: step.user === null ? null : (users[step.user] as string),
      userStamp: step.userStamp,
      version: step.version,
      fields: { ...step.fields },
    },
  };
}

/**
 * The conformance fixture of a Redis store under `prefix`: `store` and `connect()` each on a
 * connection of their own (from `open`), `corrupt` overwrites a session hash with a plain string,
 * and cleanup deletes the prefix through `admin` (disconnected after, unless `keepAdmin`).
 */
export function redisFixture(admin: Redis | Cluster, prefix: string, store: SessionStore, open: () => SessionStore, options: { keepAdmin?: boolean } = {}): StoreFixture {
  return {
    store,
    connect: async () => open(),
    corrupt: async (key) => {
      await admin.del(`${prefix}{${key}}`);
      await admin.set(`${prefix}{${key}}`, '\u0000not a session\u00ff');
    },
    cleanup: async () => {
      await deletePrefix(admin, prefix);
      if (!options.keepAdmin) admin.disconnect();
    },
  };
}
