import { createHash, randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { connect, StorageType } from 'nats';
import type { KV, KvOptions, NatsConnection } from 'nats';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { watermarkAt } from '../src/core/record.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { StoredSession } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { createService, silentLogger } from '../src/service/index.js';
import type { SessionResource, UserSessionResource } from '../src/service/index.js';
import { generateEncryptionKey } from '../src/stores/encrypted.js';
import { natsStore, NATS_STORE_DEFAULTS, openNatsStore, parseNatsUrl } from '../src/stores/nats.js';
import type { NatsKv, NatsStore } from '../src/stores/nats.js';
import { fieldValue, runStoreConformance, stampAt, storedRecord, storeKey as key } from '../src/testing/index.js';
import { NATS_URL, startNats } from './helpers/nats.js';
import type { TestNats } from './helpers/nats.js';
import { createTestPki, sessionRoundTrip } from './helpers/tls.js';
import type { TestPki } from './helpers/tls.js';
import { freePort } from './helpers/postgres-cluster.js';
import { expectAllUnderNewKey, sessionsUnderOldKey } from './helpers/reencrypt.js';
import { randomSecret, runCli } from './helpers/service.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let admin: NatsConnection;
/** Buckets made by the tests, deleted after the file. */
const buckets: string[] = [];

/** Fails loudly (instead of skipping) when the shared server is missing. */
beforeAll(async () => {
  try {
    admin = await connect({ servers: NATS_URL, timeout: 2_000 });
  } catch (error) {
    throw new Error(`These tests need NATS with JetStream at ${NATS_URL} (Debian: apt-get install nats-server, then nats-server -js)`, { cause: error });
  }
});

afterAll(async () => {
  if (!admin) return;
  const jsm = await admin.jetstreamManager();
  for (const name of buckets.splice(0)) await jsm.streams.delete(`KV_${name}`);
  await admin.close();
});

const randomBucketName = (): string => `es_test_${randomBytes(6).toString('hex')}`;

/** The name of a bucket that the test makes (here, or through a store URL), deleted after the file. */
const newBucketName = (): string => {
  const name = randomBucketName();
  buckets.push(name);
  return name;
};

/** A fresh bucket on the shared server, removed after the file. */
async function bucket(name = newBucketName(), options: Partial<KvOptions> = {}): Promise<KV> {
  return admin.jetstream().views.kv(name, { history: 1, ttl: 7 * DAY, storage: StorageType.Memory, ...options });
}

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'nats',
  fakeClock: true,
  capabilities: { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async ({ clock }) => {
    const name = randomBucketName();
    const kv = await admin.jetstream().views.kv(name, { history: 1, ttl: 7 * DAY, storage: StorageType.Memory });
    return {
      store: natsStore({ kv, clock }),
      connect: () => openNatsStore(`${NATS_URL}?bucket=${name}`, { clock }),
      corrupt: async (key) => {
        await kv.put(`s.${key}`, '{"created_at": "not a session"');
      },
      cleanup: async () => {
        await kv.destroy();
      },
    };
  },
});

const stamp = (offset = 0) => stampAt(Date.now() + offset);
const userHash = (userId: string) => createHash('sha256').update(userId).digest('base64url');
const text = async (kv: KV, item: string): Promise<string | null> => {
  const entry = await kv.get(item);
  return entry?.operation === 'PUT' ? entry.string() : null;
};

/** A fresh bucket holding `count` sessions that are expired by the returned clock. */
async function expiredSessions(count: number): Promise<{ kv: KV; keys: string[]; clock: () => number; advance: (ms: number) => void }> {
  let now = Date.now();
  const kv = await bucket();
  const keys = Array.from({ length: count }, () => key());
  for (const k of keys) await natsStore({ kv }).create(k, storedRecord({}, { idleTimeout: 1_000 }, now));
  now += 2_000;
  return { kv, keys, clock: () => now, advance: (ms) => void (now += ms) };
}

/** A bucket on which another writer changes the entry just before every compare-and-swap write of ours. */
function interfered(kv: KV): NatsKv {
  return {
    get: (...args) => kv.get(...args),
    delete: (...args) => kv.delete(...args),
    watch: (...args) => kv.watch(...args),
    status: () => kv.status(),
    put: async (item, value, options) => {
      const previous = options?.previousSeq;
      if (previous) {
        const current = await kv.get(item);
        if (current) await kv.put(item, current.value);
      }
      return kv.put(item, value, options);
    },
  };
}

describe('nats store', () => {
  it('keeps one entry per session (s.<key>), a user-index entry per session of a user, and a tombstone after destroy', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const k = key();
    const now = Date.now();
    const created = storedRecord({ a: 1 }, { userId: 'alice' }, now);
    await store.create(k, created);
    const [row, fields] = (await text(kv, `s.${k}`))?.split('\n') ?? [];
    expect(JSON.parse(row ?? 'null')).toEqual({ created_at: now, last_seen_at: now, idle_timeout: HOUR, absolute_expires_at: now + DAY, user_id: 'alice', user_stamp: created.userStamp, version: 1 });
    expect(JSON.parse(fields ?? 'null')).toEqual({ a: { v: '1', s: created.fields.a?.stamp } });
    expect(JSON.parse((await text(kv, `u.${userHash('alice')}.${k}`)) ?? 'null')).toEqual({ absolute_expires_at: now + DAY });

    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
    expect(JSON.parse((await text(kv, `s.${k}`)) ?? 'null')).toEqual({ tombstone_until: now + DAY + TOMBSTONE_GRACE_MS });
    expect(await text(kv, `u.${userHash('alice')}.${k}`), 'destroy drops the index entry').toBeNull();
  });

  it('declares no native TTL: a dead session reads as absent at once, stays in the bucket until sweep() deletes it', async () => {
    let now = Date.now();
    const kv = await bucket();
    const store = natsStore({ kv, clock: () => now });
    expect(store.capabilities).toEqual({ nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true });
    const k = key();
    await store.create(k, storedRecord({ a: 1 }, { idleTimeout: 60_000, userId: 'bob' }, now));
    now += 61_000;
    expect(await store.load(k)).toBeNull();
    expect(await text(kv, `s.${k}`)).not.toBeNull();
    expect(await store.sweep(100)).toBe(1);
    expect((await kv.get(`s.${k}`))?.operation, 'deleted on the revision it was read at').toBe('DEL');
    expect(await text(kv, `u.${userHash('bob')}.${k}`), 'the index entry lives until the absolute expiry').not.toBeNull();
    now += DAY;
    expect(await store.sweep(100)).toBe(1);
    expect(await text(kv, `u.${userHash('bob')}.${k}`)).toBeNull();
    expect(await store.sweep(100)).toBe(0);
  });

  it('create() takes a key over from a dead holder only: an expired session, a tombstone past its time, a deleted entry', async () => {
    let now = Date.now();
    const kv = await bucket();
    const store = natsStore({ kv, clock: () => now });
    const [expired, tombstone, deleted] = [key(), key(), key()];
    await store.create(expired, storedRecord({}, { idleTimeout: 1_000 }, now));
    await store.create(tombstone, storedRecord({}, { absoluteExpiresAt: now + 60_000 }, now));
    await store.destroy(tombstone, 60_000);
    await store.create(deleted, storedRecord({}, {}, now));
    await kv.delete(`s.${deleted}`);
    now += 100_000;
    expect(await store.create(tombstone, storedRecord({}, {}, now)), 'the tombstone holds the key until absolute expiry + grace').toBe(false);
    for (const k of [expired, deleted]) expect(await store.create(k, storedRecord({ again: true }, {}, now))).toBe(true);
    now += 30_000;
    expect(await store.create(tombstone, storedRecord({ again: true }, {}, now))).toBe(true);
    for (const k of [expired, tombstone, deleted]) expect((await store.load(k))?.fields.again?.value).toBe('true');
  });

  it('sweeps one instance at a time: while another holds the lease, sweep() returns 0 and removes nothing', async () => {
    const { kv, keys, clock, advance } = await expiredSessions(1);
    const store = natsStore({ kv, clock });
    await kv.put('m.sweep', JSON.stringify({ next_sequence: 1, held_until: clock() + 10_000 }));
    expect(await store.sweep(10)).toBe(0);
    expect(await text(kv, `s.${keys[0]}`)).not.toBeNull();
    advance(10_001);
    expect(await store.sweep(10), 'a lease left behind ends by itself').toBe(1);
    expect(JSON.parse((await text(kv, 'm.sweep')) ?? 'null')).toMatchObject({ held_until: 0 });
  });

  it('a batch continues where the previous batch of any instance stopped', async () => {
    const { kv, keys, clock } = await expiredSessions(6);
    expect(await natsStore({ kv, clock }).sweep(4)).toBe(4);
    expect(await natsStore({ kv, clock }).sweep(4), 'the second instance finds the last two').toBe(2);
    for (const k of keys) expect(await text(kv, `s.${k}`)).toBeNull();
  });

  it('does not list or revoke a session whose principal moved to another user, though its old index entry remains', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const k = key();
    await store.create(k, storedRecord({}, { userId: 'carol' }));
    await store.apply(k, { fields: {}, userId: 'dave', userStamp: stamp(1) });
    expect(await text(kv, `u.${userHash('carol')}.${k}`)).not.toBeNull();
    expect(await store.listByUser('carol')).toEqual([]);
    expect(await store.destroyByUser('carol', TOMBSTONE_GRACE_MS)).toBe(0);
    expect((await store.listByUser('dave')).map((summary) => summary.key)).toEqual([k]);
    expect(await store.load(k)).not.toBeNull();
  });

  it('a delta that keeps losing its compare-and-swap fails with ESESS_CONFLICT after maxAttempts', async () => {
    const kv = await bucket();
    const k = key();
    await natsStore({ kv }).create(k, storedRecord({ a: 1 }));
    const store = natsStore({ kv: interfered(kv), maxAttempts: 3 });
    const attempts: number[] = [];
    const onConflict = (message: unknown) => void attempts.push((message as { attempt: number }).attempt);
    diagnostics.subscribe(CHANNELS.conflict, onConflict);
    try {
      await expect(store.apply(k, { fields: { b: { value: '2', stamp: stamp(1) } } })).rejects.toMatchObject({ code: 'ESESS_CONFLICT', retriable: true, context: { store: 'nats', attempts: 3 } });
    } finally {
      diagnostics.unsubscribe(CHANNELS.conflict, onConflict);
    }
    expect(attempts).toEqual([1, 2, 3]);
    expect((await store.load(k))?.fields.b).toBeUndefined();
  });

  it('destroy wins even against a writer that always gets in first', async () => {
    const kv = await bucket();
    const k = key();
    await natsStore({ kv }).create(k, storedRecord({ a: 1 }));
    const store = natsStore({ kv: interfered(kv), maxAttempts: 2 });
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
    expect(await store.load(k)).toBeNull();
    expect((await store.apply(k, { fields: { b: { value: '2', stamp: stamp(1) } } })).status).toBe('gone');
  });

  it('refuses a record over the NATS message size limit with ESESS_TOO_LARGE and keeps the stored session', async () => {
    const store = natsStore({ kv: await bucket() });
    const k = key();
    await store.create(k, storedRecord({ a: 1 }));
    await expect(store.apply(k, { fields: { big: { value: JSON.stringify('x'.repeat(1100 * 1024)), stamp: stamp(1) } } })).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE', context: { store: 'nats', operation: 'apply' } });
    expect((await store.load(k))?.fields.a?.value).toBe('1');
    const small = natsStore({ kv: await bucket(undefined, { maxValueSize: 4096 }) });
    await expect(small.create(key(), storedRecord({ big: 'x'.repeat(8192) }))).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE', context: { natsCode: 10054 } });
  });

  it('refuses sessions that would outlive the bucket max_age (ESESS_CONFIG), and buckets that keep history', async () => {
    const short = natsStore({ kv: await bucket(undefined, { ttl: HOUR }) });
    await expect(short.create(key(), storedRecord())).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/max_age/) as unknown });
    expect(await short.create(key(), storedRecord({}, { absoluteExpiresAt: Date.now() + HOUR / 2 }))).toBe(true);
    const historic = natsStore({ kv: await bucket(undefined, { history: 5 }) });
    await expect(historic.load(key())).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/history 1/) as unknown });
  });

  it('refuses keys that are not store keys, invalid limits and cursors, and invalid options, naming the option', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    await expect(store.load('a.b')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(store.load('>')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(store.scan(null, 0)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(store.scan('r2.abc', 10)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(store.sweep(-1)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    expect(() => natsStore({ kv, maxAttempts: 0 })).toThrow(/"maxAttempts"/);
    expect(() => natsStore({ kv, walkBudgetMs: 0 })).toThrow(/"walkBudgetMs"/);
    expect(() => natsStore({ kv: {} as NatsKv })).toThrow(/"kv"/);
  });
});

describe('nats replica powers', () => {
  const user = () => `u-${randomBytes(6).toString('hex')}`;

  it('keeps the destroy stamp in the tombstone entry and a watermark entry per user, which sweep() deletes once past its time', async () => {
    let now = Date.now();
    const kv = await bucket();
    const store = natsStore({ kv, clock: () => now });
    const k = key();
    const created = storedRecord({ a: 1 }, {}, now);
    await store.create(k, created);
    const at = stamp(1);
    expect(await store.destroy(k, 1_234, at)).toBe(true);
    expect(JSON.parse((await text(kv, `s.${k}`)) ?? 'null')).toEqual({ tombstone_until: created.absoluteExpiresAt + 1_234, stamp: at });
    expect(await store.readState(k)).toEqual({ kind: 'tombstone', stamp: at, until: created.absoluteExpiresAt + 1_234 });

    const u = user();
    expect(await store.mergeWatermark(u, at)).toBe(0);
    expect(JSON.parse((await text(kv, `w.${userHash(u)}`)) ?? 'null')).toEqual(watermarkAt(at));
    expect(await store.readWatermark(u)).toEqual(watermarkAt(at));
    now = watermarkAt(at).until;
    expect(await store.readWatermark(u)).toBeNull();
    expect(await store.sweep(100), 'the tombstone and the watermark').toBe(2);
    expect(await text(kv, `w.${userHash(u)}`)).toBeNull();
  });

  it('mergeWatermark() destroys the indexed sessions of the user created before it and drops their index entries; destroyByUser() with a stamp raises it', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const u = user();
    const [before, after] = [key(), key()];
    await store.create(before, storedRecord({}, { userId: u }, Date.now() - 1_000));
    const at = stamp();
    await store.create(after, storedRecord({}, { userId: u }, Date.now() + 1_000));
    expect(await store.mergeWatermark(u, at)).toBe(1);
    expect(await store.readState(before)).toMatchObject({ kind: 'tombstone', stamp: '' });
    expect(await text(kv, `u.${userHash(u)}.${before}`)).toBeNull();
    expect(await store.load(after)).not.toBeNull();

    const later = stamp(5_000);
    expect(await store.destroyByUser(u, TOMBSTONE_GRACE_MS, later)).toBe(1);
    expect(await store.readWatermark(u)).toEqual(watermarkAt(later));
    expect(await store.readState(after)).toMatchObject({ kind: 'tombstone', stamp: later });
  });

  it('a watermark raised while mergeState() writes still kills the record it wrote: the merge reads the watermark again after writing', async () => {
    const kv = await bucket();
    const u = user();
    const k = key();
    const at = stamp();
    const other = natsStore({ kv });
    let raised = false;
    // Raises the watermark from another store just before the merge writes the session (after
    // its index entry, and after the merge read the absent watermark): the revoke's index walk
    // then finds no live session to kill.
    const racing: NatsKv = {
      get: (...args) => kv.get(...args),
      delete: (...args) => kv.delete(...args),
      watch: (...args) => kv.watch(...args),
      status: () => kv.status(),
      put: async (item, value, options) => {
        if (item === `s.${k}` && !raised) {
          raised = true;
          expect(await other.mergeWatermark(u, at)).toBe(0);
        }
        return kv.put(item, value, options);
      },
    };
    const bound = storedRecord({ a: 1 }, { userId: u }, Date.now() - 1_000);
    expect(await natsStore({ kv: racing }).mergeState(k, { kind: 'live', record: bound })).toEqual({ state: 'tombstone', changed: true });
    expect(raised).toBe(true);
    expect(await other.readState(k)).toEqual({ kind: 'tombstone', stamp: '', until: bound.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
  });

  it('mergeState() indexes a record that arrives with a user, so listByUser() and revokes find it', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const u = user();
    const k = key();
    expect(await store.mergeState(k, { kind: 'live', record: storedRecord({ a: 1 }, { userId: u }) })).toEqual({ state: 'live', changed: true });
    expect((await store.listByUser(u)).map((summary) => summary.key)).toEqual([k]);
    expect(await store.mergeWatermark(u, stamp(1))).toBe(1);
  });
});

describe('nats entries written by the previous release', () => {
  // Exactly as the previous release wrote them: a row without user_stamp, tombstones without a stamp.
  const oldLive = (r: StoredSession): string =>
    `${JSON.stringify({ created_at: r.createdAt, last_seen_at: r.lastSeenAt, idle_timeout: r.idleTimeout, absolute_expires_at: r.absoluteExpiresAt, user_id: r.userId, version: r.version })}\n${JSON.stringify(
      Object.fromEntries(Object.entries(r.fields).map(([name, field]) => [name, { v: field.value, s: field.stamp }])),
    )}`;
  const oldTombstone = (until: number): string => JSON.stringify({ tombstone_until: until });
  const put = async (kv: KV, k: string, r: StoredSession): Promise<void> => {
    if (r.userId !== null) await kv.put(`u.${userHash(r.userId)}.${k}`, JSON.stringify({ absolute_expires_at: r.absoluteExpiresAt }));
    await kv.put(`s.${k}`, oldLive(r));
  };

  it('load() and apply() read an old record with the empty user stamp, which any stamped principal write overrides (and indexes)', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const k = key();
    const old = storedRecord({ a: 1 }, { userId: 'alice' });
    await put(kv, k, old);
    expect(await store.load(k)).toEqual({ ...old, userStamp: '' });
    expect((await store.listByUser('alice')).map((summary) => summary.key)).toEqual([k]);
    const at = stamp(1);
    expect(await store.apply(k, { fields: { b: { value: '2', stamp: at } }, userId: 'bob', userStamp: at })).toEqual({ status: 'ok', version: 2 });
    const loaded = await store.load(k);
    expect({ userId: loaded?.userId, userStamp: loaded?.userStamp, a: fieldValue(loaded, 'a'), b: fieldValue(loaded, 'b') }).toEqual({ userId: 'bob', userStamp: at, a: 1, b: 2 });
    expect((await store.listByUser('bob')).map((summary) => summary.key)).toEqual([k]);
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
  });

  it('readState() shows an old record with the empty user stamp and an old tombstone with the empty stamp and its guard', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const [live, dead] = [key(), key()];
    const old = storedRecord({ a: 1 }, { userId: 'carol' });
    await put(kv, live, old);
    await kv.put(`s.${dead}`, oldTombstone(old.absoluteExpiresAt + TOMBSTONE_GRACE_MS));
    expect(await store.readState(live)).toEqual({ kind: 'live', record: { ...old, userStamp: '' } });
    expect(await store.readState(dead)).toEqual({ kind: 'tombstone', stamp: '', until: old.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
  });

  it('mergeState() merges into old entries: a stamped principal wins over the unstamped one, an old tombstone still wins; mergeWatermark() finds old sessions by the old index', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const [live, dead, ended, revoked] = [key(), key(), key(), key()];
    const old = storedRecord({ a: 1 }, { userId: 'dave' });
    const until = old.absoluteExpiresAt + TOMBSTONE_GRACE_MS;
    for (const k of [live, ended]) await put(kv, k, old);
    await put(kv, revoked, { ...old, userId: 'frank' });
    await kv.put(`s.${dead}`, oldTombstone(until));

    const at = stamp(1);
    const theirs = { ...old, userId: 'erin', userStamp: at, fields: { ...old.fields, b: { value: '2', stamp: at } } };
    expect(await store.mergeState(live, { kind: 'live', record: theirs })).toEqual({ state: 'live', changed: true });
    expect(await store.readState(live)).toEqual({ kind: 'live', record: { ...theirs, version: 2 } });
    expect((await store.listByUser('erin')).map((summary) => summary.key)).toEqual([live]);

    expect(await store.mergeState(dead, { kind: 'live', record: theirs })).toEqual({ state: 'tombstone', changed: false });
    expect(await store.mergeState(dead, { kind: 'tombstone', stamp: at, until })).toEqual({ state: 'tombstone', changed: true });
    expect(await store.readState(dead)).toEqual({ kind: 'tombstone', stamp: at, until });

    expect(await store.mergeState(ended, { kind: 'tombstone', stamp: at, until })).toEqual({ state: 'tombstone', changed: true });
    expect(await store.load(ended)).toBeNull();

    expect(await store.mergeWatermark('frank', stamp(2))).toBe(1);
    expect(await store.readState(revoked)).toEqual({ kind: 'tombstone', stamp: '', until });
  });
});

describe('nats scan()', () => {
  it('walks in stream order with a cursor another store can continue; a key rewritten during the walk comes again, none is missed', async () => {
    const kv = await bucket();
    const first = natsStore({ kv });
    const now = Date.now();
    const keys = Array.from({ length: 10 }, () => key());
    for (const k of keys) await first.create(k, storedRecord({}, {}, now));
    const page = await first.scan(null, 4);
    expect(page.keys).toEqual(keys.slice(0, 4));
    await first.apply(keys[1] as string, { fields: { touched: { value: 'true', stamp: stamp(1) } } });
    await first.apply(keys[6] as string, { fields: { touched: { value: 'true', stamp: stamp(1) } } });

    const rest = await natsStore({ kv }).scan(page.cursor, 100);
    expect(rest).toEqual({ keys: [...keys.slice(4, 6), ...keys.slice(7), keys[1], keys[6]], cursor: null });
  });

  it('a page may be empty while the cursor is not null: a walk ends when the cursor is null', async () => {
    const kv = await bucket();
    const store = natsStore({ kv });
    const live = key();
    await store.create(live, storedRecord());
    const destroyed = key();
    await store.create(destroyed, storedRecord());
    await store.destroy(destroyed, TOMBSTONE_GRACE_MS);
    const first = await store.scan(null, 1);
    expect(first.keys).toEqual([live]);
    expect(first.cursor).not.toBeNull();
    expect(await store.scan(first.cursor, 1)).toEqual({ keys: [], cursor: null });
  });
});

describe('elastic-session reencrypt over NATS', () => {
  it('re-encrypts every live session under the new key, walking the bucket in stream order; the old key can then go', async () => {
    const url = `${NATS_URL}?bucket=${newBucketName()}`;
    const oldKey = generateEncryptionKey('old');
    const newKey = generateEncryptionKey('new');
    const secrets = ['nats-reencrypt-secret-0123456789abcdef'];
    const inner = await openNatsStore(url);
    try {
      const ids = await sessionsUnderOldKey(inner, oldKey, secrets);

      const result = await runCli(['reencrypt', '--store', url], { env: { ELASTIC_SESSION_ENCRYPTION_KEYS: `${newKey},${oldKey}` } });
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ rewritten: 30, fields: 120, keyId: 'new', clean: true });
      await expectAllUnderNewKey(inner, ids, { newKey, oldKey }, secrets);
    } finally {
      await inner.close();
    }
  }, 60_000);
});

describe('openNatsStore() and its URL', () => {
  it('parses servers, credentials, bucket, max_age and replicas, with defaults', () => {
    expect(parseNatsUrl('nats://127.0.0.1')).toEqual({ servers: ['127.0.0.1:4222'], bucket: 'elastic_sessions', maxAgeMs: NATS_STORE_DEFAULTS.maxAgeMs, replicas: 1 });
    expect(parseNatsUrl('nats://app:p%40ss@n1:4223,n2,[::1]:4224/?bucket=web-sessions&max_age=12h&replicas=3')).toEqual({
      servers: ['n1:4223', 'n2:4222', '[::1]:4224'],
      user: 'app',
      pass: 'p@ss',
      bucket: 'web-sessions',
      maxAgeMs: 12 * HOUR,
      replicas: 3,
    });
    expect(parseNatsUrl('nats://s3cr3t-token@n1?max_age=0')).toMatchObject({ token: 's3cr3t-token', maxAgeMs: 0 });
  });

  it.each([
    ['another scheme', 'redis://:hunter2@127.0.0.1:4222'],
    ['no host', 'nats://:hunter2@'],
    ['a port out of range', 'nats://:hunter2@h:70000'],
    ['an unknown parameter', 'nats://:hunter2@h?buckett=x'],
    ['a bucket name NATS refuses', 'nats://:hunter2@h?bucket=a.b'],
    ['a max_age without unit', 'nats://:hunter2@h?max_age=30'],
    ['replicas out of range', 'nats://:hunter2@h?replicas=9'],
  ])('refuses %s with ESESS_CONFIG naming the option, never the password', (_name, url) => {
    let thrown: unknown;
    try {
      parseNatsUrl(url);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
    expect(String((thrown as Error).message)).not.toContain('hunter2');
  });

  it('creates a missing bucket with history 1, max_age and file storage, and closes its own connection on close()', async () => {
    const name = newBucketName();
    const store = await openNatsStore(`${NATS_URL}?bucket=${name}&max_age=2d`);
    let status;
    try {
      const k = key();
      expect(await store.create(k, storedRecord({ a: 1 }))).toBe(true);
      status = await (await admin.jetstream().views.kv(name, { bindOnly: true })).status();
      expect((await store.load(k))?.fields.a?.value).toBe('1');
    } finally {
      await store.close();
    }
    expect({ history: status.history, ttl: status.ttl, storage: status.storage, direct: status.streamInfo.config.allow_direct }).toEqual({ history: 1, ttl: 2 * DAY, storage: StorageType.File, direct: false });
    await expect(store.load(key())).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    await store.close();
  });

  it('an unreachable server is ESESS_STORE_UNAVAILABLE (kind connection) when opening', async () => {
    await expect(openNatsStore(`nats://127.0.0.1:${await freePort()}`)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'nats', operation: 'open', kind: 'connection' } });
  });

  it('a server without JetStream is ESESS_STORE_UNAVAILABLE (kind jetstream), saying how to enable it', async () => {
    const plain = await startNats({ jetstream: false });
    try {
      await expect(openNatsStore(plain.url, { requestTimeoutMs: 2_000 })).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', message: expect.stringMatching(/nats-server -js/) as unknown, context: { kind: 'jetstream' } });
    } finally {
      await plain.stop();
    }
  });

  it('a missing bucket is ESESS_STORE_UNAVAILABLE (kind bucket), not an empty store', async () => {
    const kv = await admin.jetstream().views.kv(randomBucketName(), { bindOnly: true });
    const store = natsStore({ kv });
    await expect(store.load(key())).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'nats', operation: 'load', kind: 'bucket' } });
  });

  it('a connection the application closed makes calls fail with ESESS_STORE_UNAVAILABLE (kind closed)', async () => {
    const name = newBucketName();
    await bucket(name);
    const own = await connect({ servers: NATS_URL });
    const store = natsStore({ kv: await own.jetstream().views.kv(name) });
    await store.create(key(), storedRecord());
    await own.close();
    await expect(store.load(key())).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { kind: 'closed' } });
  });
});

describe('the service on NATS', () => {
  it('creates, reads, lists and revokes sessions over HTTP with --store nats://...', async () => {
    const name = newBucketName();
    const service = await createService({ store: `${NATS_URL}?bucket=${name}`, secret: randomSecret(), port: 0, host: '127.0.0.1', log: silentLogger });
    try {
      const { url } = await service.listen();
      const created = await fetch(`${url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: { cart: ['a'] }, userId: 'erin' }) });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as SessionResource;
      const read = await fetch(`${url}/v1/sessions/${id}`);
      expect(read.status).toBe(200);
      expect((await read.json()) as SessionResource).toMatchObject({ userId: 'erin', data: { cart: ['a'] } });
      const listed = (await (await fetch(`${url}/v1/users/erin/sessions`)).json()) as { sessions: UserSessionResource[] };
      expect(listed.sessions).toHaveLength(1);
      expect(await (await fetch(`${url}/v1/users/erin/sessions`, { method: 'DELETE' })).json()).toEqual({ revoked: 1 });
      expect((await fetch(`${url}/v1/sessions/${id}`)).status).toBe(404);
    } finally {
      await service.close();
    }
  });

  it("refuses at startup an absolute timeout longer than the bucket's max_age, and answers 400 to a create asking for one", async () => {
    const name = newBucketName();
    const store = `${NATS_URL}?bucket=${name}&max_age=1h`;
    await expect(createService({ store, secret: randomSecret(), port: 0, log: silentLogger })).rejects.toMatchObject({
      code: 'ESESS_CONFIG',
      message: expect.stringMatching(/absoluteTimeout is longer than the nats store keeps any record \(3600 s\)/) as unknown,
    });
    expect(await openNatsStore(store).then(async (opened) => [await opened.maxLifetimeMs(), await opened.close()][0])).toBe(HOUR);
    const service = await createService({ store, secret: randomSecret(), absoluteTimeout: 1800, port: 0, host: '127.0.0.1', log: silentLogger });
    try {
      const { url } = await service.listen();
      const create = (absoluteTimeout: number) => fetch(`${url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ absoluteTimeout }) });
      const refused = await create(7200);
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ code: 'ESESS_INVALID_INPUT', detail: 'absoluteTimeout must be a number of seconds from 1 to 3600' });
      expect((await create(3600)).status).toBe(201);
    } finally {
      await service.close();
    }
  });

  it('needs an explicit secret: NATS is shared by every instance', async () => {
    await expect(createService({ store: `${NATS_URL}?bucket=${newBucketName()}`, port: 0, log: silentLogger })).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/required with a nats store/) as unknown });
  });
});

describe('nats restart', () => {
  it('fails with retriable ESESS_STORE_UNAVAILABLE while the server is down; acknowledged sessions are there after it restarts', async () => {
    const server = await startNats();
    const nc = await connect({ servers: `127.0.0.1:${server.port}`, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    let reconnected: () => void = () => undefined;
    void (async () => {
      for await (const status of nc.status()) if (status.type === 'reconnect') reconnected();
    })();
    let store: NatsStore | undefined;
    try {
      const kv = await nc.jetstream({ timeout: 1_000 }).views.kv('sessions', { history: 1, ttl: 7 * DAY });
      store = natsStore({ kv });
      const now = Date.now();
      const keys = Array.from({ length: 5 }, () => key());
      for (const k of keys) expect(await store.create(k, storedRecord({ a: 1 }, { userId: 'frank' }, now))).toBe(true);
      expect((await store.apply(keys[0] as string, { fields: { b: { value: '2', stamp: stamp(1) } } })).status).toBe('ok');

      await server.kill();
      const down = { code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'nats' } };
      await expect(store.load(keys[0] as string)).rejects.toMatchObject({ ...down, context: { store: 'nats', operation: 'load' } });
      await expect(store.apply(keys[1] as string, { fields: { c: { value: '3', stamp: stamp(2) } } })).rejects.toMatchObject({ ...down, context: { store: 'nats', operation: 'apply' } });
      await expect(store.create(key(), storedRecord({}, {}, now))).rejects.toMatchObject(down);
      await expect(store.listByUser('frank')).rejects.toMatchObject(down);

      const back = new Promise<void>((resolve) => (reconnected = resolve));
      await server.start();
      await back;
      const first = await store.load(keys[0] as string);
      expect(first?.fields.b?.value).toBe('2');
      for (const k of keys) expect(await store.load(k)).not.toBeNull();
      expect((await store.listByUser('frank')).map((summary) => summary.key).sort()).toEqual([...keys].sort());
      const after = key();
      expect(await store.create(after, storedRecord({ d: 4 }))).toBe(true);
      expect((await store.load(after))?.fields.d?.value).toBe('4');
    } finally {
      await store?.close();
      await nc.close();
      await server.stop();
    }
  }, 30_000);
});

describe('NATS over TLS (ssl-mode, ssl-ca, ssl-cert, ssl-key in the store URL)', () => {
  let pki: TestPki;
  let server: TestNats;
  let mutual: TestNats;

  beforeAll(async () => {
    pki = createTestPki();
    [server, mutual] = await Promise.all([
      startNats({ tls: { certPath: pki.server.certPath, keyPath: pki.server.keyPath } }),
      startNats({ tls: { certPath: pki.server.certPath, keyPath: pki.server.keyPath, clientCaPath: pki.ca.certPath } }),
    ]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([server?.stop(), mutual?.stop()]);
    pki?.cleanup();
  });

  const tls = (params: Record<string, string>) => `&${new URLSearchParams(params).toString()}`;
  const attempt = (url: string) => sessionRoundTrip(() => openNatsStore(url, { requestTimeoutMs: 2_000, connection: { maxReconnectAttempts: 0 } }), randomSecret());

  it('verify-full with the test CA works (create, update, load, destroy); it is the default once a CA is given', async () => {
    for (const params of [{ 'ssl-mode': 'verify-full', 'ssl-ca': pki.ca.certPath }, { 'ssl-ca': pki.ca.certPath }] as Record<string, string>[]) {
      expect(await attempt(`${server.url}?bucket=tls_${randomBytes(4).toString('hex')}${tls(params)}`)).toBe('ok');
    }
  });

  it('refuses a server certificate from an untrusted CA, and a TLS-only server refuses a plain client: ESESS_STORE_UNAVAILABLE', async () => {
    expect(await attempt(`${server.url}?bucket=tls_x${tls({ 'ssl-ca': pki.rogueCa.certPath })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    expect(await attempt(`${server.url}?bucket=tls_x`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
  });

  it('with --tlsverify, connects only with a client certificate from the CA (ssl-cert, ssl-key)', async () => {
    const bucketName = `tls_${randomBytes(4).toString('hex')}`;
    expect(await attempt(`${mutual.url}?bucket=${bucketName}${tls({ 'ssl-ca': pki.ca.certPath, 'ssl-cert': pki.client.certPath, 'ssl-key': pki.client.keyPath })}`)).toBe('ok');
    expect(await attempt(`${mutual.url}?bucket=${bucketName}${tls({ 'ssl-ca': pki.ca.certPath })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
    expect(await attempt(`${mutual.url}?bucket=${bucketName}${tls({ 'ssl-ca': pki.ca.certPath, 'ssl-cert': pki.rogueClient.certPath, 'ssl-key': pki.rogueClient.keyPath })}`)).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
  });

  it('bad TLS parameters are ESESS_CONFIG naming the store option', async () => {
    for (const params of [{ 'ssl-mode': 'sometimes' }, { 'ssl-ca': `${pki.dir}/missing.pem` }, { 'ssl-cert': pki.client.certPath }] as Record<string, string>[]) {
      await expect(openNatsStore(`${server.url}?bucket=tls_x${tls(params)}`)).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
    }
  });
});
