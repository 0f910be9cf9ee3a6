import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeEntry } from '../src/changelog/entry.js';
import { decodeEntry, encodeEntry } from '../src/changelog/entry.js';
import { encodeEvent, eventOf } from '../src/changelog/events.js';
import { EventRelay } from '../src/changelog/relay.js';
import { CHANGE_LOG_CHANNELS } from '../src/changelog/telemetry.js';
import { isSessionError } from '../src/core/errors.js';
import { handleOf, storeKeyOf } from '../src/core/ids.js';
import { SessionManager } from '../src/core/manager.js';
import { mergeRecords, sameState } from '../src/core/record.js';
import type { KeyState } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import type { RedisStore } from '../src/stores/redis.js';
import { redisStore } from '../src/stores/redis.js';
import { stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { published } from './helpers/channels.js';
import { BOUNDED, changeLogOf, deletePrefix, eventsOf, reconcileUntil, SECRET, SHARED_REDIS_URL, sharedRedis } from './helpers/redis-fixtures.js';
import { checkRedisBinaries, startRedis, startSentinel, stopAll } from './helpers/redis-servers.js';

const EVENT_KEYS = ['id', 'type', 'at', 'region', 'handle', 'userId', 'fields', 'reason'];
const sorted = (names: string[]) => [...names].sort();

describe('change-log entries and events, pure', () => {
  const base: ChangeEntry = {
    id: 'abc.1', op: 'create', at: Date.UTC(2025, 0, 31, 12), region: 'eu', key: storeKey(), userId: 'u', state: null,
    fields: ['a'], principal: false, partial: false, reason: null, next: null, previous: null, watermark: null,
  };

  it('an event has exactly the documented keys, in order, and regenerated adds previousHandle', () => {
    const created = eventOf(base);
    expect(encodeEvent(created!)).toBe(JSON.stringify({ id: 'abc.1', type: 'created', at: '2025-01-31T12:00:00.000Z', region: 'eu', handle: handleOf(base.key!), userId: 'u', fields: ['a'], reason: null }));
    const next = storeKey();
    const regenerated = eventOf({ ...base, op: 'regenerate', next, fields: [] })!;
    expect(Object.keys(JSON.parse(encodeEvent(regenerated)) as object)).toEqual([...EVENT_KEYS, 'previousHandle']);
    expect(regenerated).toMatchObject({ type: 'regenerated', handle: handleOf(next), previousHandle: handleOf(base.key!) });
  });

  it('each op maps to its event type, and watermarks and a tombstone extended by a merge have none', () => {
    const tomb = { kind: 'tombstone' as const, stamp: stampAt(1), until: 5 };
    const live = { kind: 'live' as const, record: storedRecord() };
    const cases: [Partial<ChangeEntry>, string | null, string | null][] = [
      [{ op: 'update' }, 'updated', null],
      [{ op: 'touch' }, 'touched', null],
      [{ op: 'destroy' }, 'destroyed', null],
      [{ op: 'revoke', reason: 'revoke-all' }, 'revoked', 'revoke-all'],
      [{ op: 'expire', reason: 'idle' }, 'expired', 'idle'],
      [{ op: 'merge', previous: 'absent', state: live }, 'created', 'merged'],
      [{ op: 'merge', previous: 'live', state: live, fields: [] }, 'touched', 'merged'],
      [{ op: 'merge', previous: 'live', state: live, fields: [], principal: true }, 'updated', 'merged'],
      [{ op: 'merge', previous: 'live', state: { ...tomb, stamp: '' } }, 'revoked', 'watermark'],
      [{ op: 'merge', previous: 'live', state: tomb }, 'destroyed', 'merged'],
      [{ op: 'merge', previous: 'tombstone', state: tomb }, null, null],
      [{ op: 'merge', previous: 'live', state: null }, 'expired', 'merged'],
      [{ op: 'watermark', key: null, watermark: stampAt(1) }, null, null],
    ];
    for (const [change, type, reason] of cases) {
      const event = eventOf({ ...base, ...change });
      expect(event?.type ?? null, JSON.stringify(change)).toBe(type);
      if (event) expect(event.reason).toBe(reason);
    }
  });

  it('decodeEntry() refuses what is not an entry and reads an empty Lua list as []', () => {
    expect(decodeEntry(JSON.stringify({ ...JSON.parse(encodeEntry(base)), fields: {} })).fields).toEqual([]);
    for (const bad of ['nope', '[]', JSON.stringify({ ...base, v: 2 }), JSON.stringify({ ...base, v: 1, op: 'boom' }), JSON.stringify({ ...base, v: 1, key: null }), JSON.stringify({ ...base, v: 1, op: 'regenerate' })]) {
      expect(() => decodeEntry(bad)).toThrow(/Malformed change-log entry/);
    }
  });
});

interface Target {
  admin: Redis;
  prefix: string;
  stream: string;
  events: string;
  store: RedisStore;
  manager: SessionManager;
  hashKey: Buffer;
  clock: { now: number };
  relay: EventRelay;
}

describe('change log on Redis: every operation produces exactly its entries and events', () => {
  let t: Target;
  const keyOf = (id: string) => storeKeyOf(id, t.hashKey);
  const ops = async () => (await changeLogOf(t.admin, t.stream)).map(({ entry }) => entry.op);
  const entries = async () => (await changeLogOf(t.admin, t.stream)).map(({ entry }) => entry);
  const events = async () => {
    while ((await t.relay.relayOnce()).entries > 0);
    return eventsOf(t.admin, t.events);
  };

  beforeEach(async () => {
    const admin = await sharedRedis();
    const prefix = `es-test:${randomBytes(6).toString('hex')}:`;
    const stream = `${prefix}log`;
    const store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true, changeLog: { stream, region: 'eu-1' } });
    const clock = { now: Date.now() };
    const hashKey = randomBytes(32);
    const manager = new SessionManager({ store, secrets: [SECRET], hashKey, clock: () => clock.now, idleTimeout: 600, absoluteTimeout: 3600 });
    t = { admin, prefix, stream, events: `${prefix}events`, store, manager, hashKey, clock, relay: new EventRelay({ from: admin, stream, events: `${prefix}events` }) };
  });

  afterEach(async () => {
    t.relay.close();
    await t.store.close();
    await deletePrefix(t.admin, t.prefix);
    t.admin.disconnect();
  });

  it('create, update and touch each write one entry carrying the post-write state; a save that changes nothing writes none', async () => {
    const session = t.manager.create({ userId: 'alice' });
    session.set('theme', 'dark');
    session.set('cart', [1, 2]);
    await t.manager.save(session);
    const key = keyOf(session.id);
    const [created] = await entries();
    expect(created).toMatchObject({ op: 'create', key, userId: 'alice', region: 'eu-1', reason: null, next: null });
    expect(sorted(created!.fields)).toEqual(expect.arrayContaining(['cart', 'theme']));
    expect(sameState(created!.state, await t.store.readState(key))).toBe(true);

    session.set('theme', 'light');
    await t.manager.save(session);
    t.clock.now += 120_000;
    await t.manager.touch(session);
    await t.manager.save(session);
    expect(await ops()).toEqual(['create', 'update', 'touch']);
    const [, updated, touched] = await entries();
    expect(created).toMatchObject({ partial: false });
    expect(updated).toMatchObject({ op: 'update', fields: ['theme'], principal: false, partial: true });
    expect(touched).toMatchObject({ op: 'touch', fields: [], partial: true });
    // A delta carries the metadata after the write and only the fields it changed.
    const stored = await t.store.readState(key);
    expect(updated!.state?.kind === 'live' && Object.keys(updated!.state.record.fields)).toEqual(['theme']);
    expect(touched!.state?.kind === 'live' && Object.keys(touched!.state.record.fields)).toEqual([]);
    expect(sameState(touched!.state, stored && stored.kind === 'live' ? { kind: 'live', record: { ...stored.record, fields: {} } } : null)).toBe(true);
    // Merged in order, a key's entries are the stored record.
    expect(sameState([created, updated, touched].reduce<KeyState>((state, entry) => mergeRecords(state, entry!.state), null), stored)).toBe(true);

    const log = await events();
    expect(log.map((event) => event.type)).toEqual(['created', 'updated', 'touched']);
    for (const [i, event] of log.entries()) {
      expect(Object.keys(event)).toEqual(EVENT_KEYS);
      expect(event).toMatchObject({ handle: handleOf(key), userId: 'alice', region: 'eu-1', reason: null, id: (await entries())[i]!.id });
      expect(new Date(event.at as string).toISOString()).toBe(event.at);
    }
    expect(log[1]!.fields).toEqual(['theme']);
    expect(log[2]!.fields).toEqual([]);
  });

  it('regenerate is the create of the new key, then the old key\'s tombstone naming it: events created, regenerated with previousHandle', async () => {
    const session = t.manager.create();
    session.set('step', 1);
    await t.manager.save(session);
    const oldKey = keyOf(session.id);
    session.userId = 'bob';
    await t.manager.regenerate(session);
    const newKey = keyOf(session.id);
    const log = await entries();
    expect(log.map((entry) => [entry.op, entry.key])).toEqual([['create', oldKey], ['create', newKey], ['regenerate', oldKey]]);
    expect(log[2]).toMatchObject({ next: newKey, state: { kind: 'tombstone' } });
    expect(sameState(log[2]!.state, await t.store.readState(oldKey))).toBe(true);
    const [, created, regenerated] = await events();
    expect(created).toMatchObject({ type: 'created', handle: handleOf(newKey), userId: 'bob' });
    expect(regenerated).toMatchObject({ type: 'regenerated', handle: handleOf(newKey), previousHandle: handleOf(oldKey), fields: [] });
    expect(Object.keys(regenerated!)).toEqual([...EVENT_KEYS, 'previousHandle']);
  });

  it('destroy writes the tombstone; revoke-all writes the watermark, then one revoke per session', async () => {
    const one = t.manager.create({ userId: 'carol', data: { a: 1 } });
    const two = t.manager.create({ userId: 'carol', data: { a: 2 } });
    const other = t.manager.create({ userId: 'dave', data: { a: 3 } });
    const gone = t.manager.create({ data: { a: 4 } });
    for (const session of [one, two, other, gone]) await t.manager.save(session);
    await t.manager.destroy(gone);
    expect(await t.manager.revokeUser('carol')).toBe(2);
    const log = await entries();
    expect(log.map((entry) => entry.op)).toEqual(['create', 'create', 'create', 'create', 'destroy', 'watermark', 'revoke', 'revoke']);
    expect(log[4]).toMatchObject({ key: keyOf(gone.id), userId: null });
    expect(sameState(log[4]!.state, await t.store.readState(keyOf(gone.id)))).toBe(true);
    expect(log[5]).toMatchObject({ key: null, userId: 'carol', watermark: (await t.store.readWatermark('carol'))!.stamp });
    expect(sorted(log.slice(6).map((entry) => entry.key!))).toEqual(sorted([keyOf(one.id), keyOf(two.id)]));
    for (const entry of log.slice(6)) {
      expect(entry).toMatchObject({ userId: 'carol', reason: 'revoke-all' });
      expect(sameState(entry.state, await t.store.readState(entry.key!))).toBe(true);
    }
    const types = (await events()).map((event) => [event.type, event.reason]);
    expect(types).toEqual([['created', null], ['created', null], ['created', null], ['created', null], ['destroyed', null], ['revoked', 'revoke-all'], ['revoked', 'revoke-all']]);
  });

  it('the replica powers log what they changed: a merge that creates, one that changes nothing (no entry), a watermark and what it covered', async () => {
    const key = storeKey();
    const record = storedRecord({ x: 1 }, { userId: 'erin', createdAt: Date.now() - 1000 });
    await t.store.mergeState(key, { kind: 'live', record });
    await t.store.mergeState(key, { kind: 'live', record });
    await t.store.mergeWatermark('erin', stampAt(Date.now()));
    const tombKey = storeKey();
    await t.store.mergeState(tombKey, { kind: 'live', record: storedRecord({ y: 1 }) });
    await t.store.mergeState(tombKey, { kind: 'tombstone', stamp: stampAt(Date.now()), until: Date.now() + 60_000 });
    const log = await entries();
    expect(log.map((entry) => [entry.op, entry.previous])).toEqual([['merge', 'absent'], ['watermark', null], ['revoke', null], ['merge', 'absent'], ['merge', 'live']]);
    expect(log[2]).toMatchObject({ key, reason: 'watermark', state: { kind: 'tombstone', stamp: '' } });
    expect(sameState(log[4]!.state, await t.store.readState(tombKey))).toBe(true);
    expect((await events()).map((event) => [event.type, event.reason])).toEqual([['created', 'merged'], ['revoked', 'watermark'], ['created', 'merged'], ['destroyed', 'merged']]);
  });

  it('field names that JSON must escape, or that are not ASCII, are listed exactly', async () => {
    const key = storeKey();
    const now = Date.now();
    await t.store.create(key, storedRecord({ plain: 1 }, {}, now));
    const names = ['quote"d', 'back\\slash', 'tab\there', 'ünïcødé', '日本', 'a,b'];
    for (const [i, name] of names.entries()) await t.store.apply(key, { fields: { [name]: { value: '1', stamp: stampAt(now + 1 + i) } } });
    await t.store.apply(key, { fields: Object.fromEntries(names.map((name, i) => [name, { value: '2', stamp: stampAt(now + 100 + i) }])) });
    const log = await entries();
    expect(log.slice(1, -1).map((entry) => entry.fields)).toEqual(names.map((name) => [name]));
    expect(sorted(log.at(-1)!.fields)).toEqual(sorted(names));
  });

  it('writes the store refuses or that change nothing write no entry', async () => {
    const key = storeKey();
    const now = Date.now();
    expect(await t.store.apply(key, { fields: { a: { value: '1', stamp: stampAt(now) } } })).toEqual({ status: 'gone' });
    await t.store.create(key, storedRecord({ a: 1 }, {}, now));
    expect(await t.store.create(key, storedRecord({ a: 2 }))).toBe(false);
    expect(await t.store.apply(key, { fields: { a: { value: '3', stamp: stampAt(now + 1) } }, expectVersion: 7 })).toMatchObject({ status: 'conflict' });
    expect(await t.store.apply(key, { fields: { a: { value: '0', stamp: stampAt(now - 10_000) } }, lastSeenAt: now - 1 })).toMatchObject({ status: 'ok' });
    expect(await t.store.destroy(storeKey(), 1_000)).toBe(false);
    await t.store.destroy(key, 1_000, stampAt(now + 2));
    expect(await t.store.destroy(key, 1_000, stampAt(now + 3))).toBe(false);
    expect(await ops()).toEqual(['create', 'destroy']);
  });

  it('Redis expiries are found by the reconciler: one expire entry each, with the deadline, the principal and which deadline passed, and counted', async () => {
    const now = Date.now();
    const idle = storeKey();
    const absolute = storeKey();
    const live = storeKey();
    await t.store.create(idle, storedRecord({ a: 1 }, { userId: 'frank', idleTimeout: 300 }, now));
    await t.store.create(absolute, storedRecord({ a: 1 }, { absoluteExpiresAt: now + 400 }, now));
    await t.store.create(live, storedRecord({ a: 1 }, { idleTimeout: 300 }, now));
    await t.store.apply(live, { fields: {}, lastSeenAt: now + 60_000 });
    const counts = await published(CHANGE_LOG_CHANNELS.expired, async () => {
      expect(await reconcileUntil(t.store, 2)).toBe(2);
      expect(await t.store.reconcileExpirations(10)).toBe(0);
    });
    for (const message of counts) expect(message).toMatchObject({ transport: 'redis-streams' });
    expect((counts as { count: number }[]).reduce((sum, message) => sum + message.count, 0)).toBe(2);
    const expired = (await entries()).filter((entry) => entry.op === 'expire');
    expect(expired.map((entry) => [entry.key, entry.reason, entry.userId, entry.at]).sort()).toEqual(
      [[idle, 'idle', 'frank', now + 300], [absolute, 'absolute', null, now + 400]].sort(),
    );
    expect((await events()).filter((event) => event.type === 'expired').map((event) => event.reason).sort()).toEqual(['absolute', 'idle']);
    expect(await t.store.load(live)).not.toBeNull();
  });

  it('entries of one session keep its order under concurrent writers (versions rise in stream order), and merged they are the stored state', async () => {
    const keys = Array.from({ length: 6 }, () => storeKey());
    for (const key of keys) await t.store.create(key, storedRecord({ n: 0 }));
    const writers = Array.from({ length: 3 }, () => redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix: t.prefix, ownsClient: true, changeLog: { stream: t.stream } }));
    const appended = await published(CHANGE_LOG_CHANNELS.appended, async () => {
      await Promise.all(
        writers.map(async (writer, w) => {
          for (let i = 0; i < 40; i++) {
            const key = keys[(i * 7 + w) % keys.length]!;
            await writer.apply(key, { fields: { [`w${w}`]: { value: String(i), stamp: stampAt(Date.now(), i, `0${w}`) } }, lastSeenAt: Date.now() });
          }
        }),
      );
    });
    for (const writer of writers) await writer.close();
    const log = await entries();
    expect((appended as { count: number }[]).reduce((sum, message) => sum + message.count, 0)).toBe(log.length - keys.length);
    for (const key of keys) {
      const mine = log.filter((entry) => entry.key === key);
      const versions = mine.map((entry) => (entry.state?.kind === 'live' ? entry.state.record.version : -1));
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
      expect(new Set(versions).size).toBe(versions.length);
      expect(sameState(mine.reduce<KeyState>((state, entry) => mergeRecords(state, entry.state), null), await t.store.readState(key))).toBe(true);
    }
    expect(new Set(log.map((entry) => entry.id)).size).toBe(log.length);
  });

  it('no session ID, store key or field value appears anywhere in the events stream', async () => {
    const marker = () => `value-${randomBytes(9).toString('base64url')}`;
    const values: string[] = [];
    const ids: string[] = [];
    const put = (session: ReturnType<SessionManager['create']>, field: string) => {
      const value = marker();
      values.push(value);
      session.set(field, value);
    };
    const sessions = Array.from({ length: 4 }, (_, i) => t.manager.create({ userId: i < 2 ? 'grace' : null }));
    for (const session of sessions) {
      put(session, 'a');
      put(session, 'b');
      await t.manager.save(session);
      ids.push(session.id);
    }
    put(sessions[0]!, 'a');
    await t.manager.save(sessions[0]!);
    await t.manager.regenerate(sessions[2]!);
    ids.push(sessions[2]!.id);
    await t.manager.destroy(sessions[3]!);
    await t.manager.revokeUser('grace');
    const expiring = storeKey();
    const value = marker();
    values.push(value);
    await t.store.create(expiring, storedRecord({ c: value }, { idleTimeout: 200 }));
    await reconcileUntil(t.store, 1);
    await events();

    const raw = (await t.admin.xrange(t.events, '-', '+')) as [string, string[]][];
    const bytes = raw.flatMap(([id, fields]) => [id, ...fields]).join('\n');
    const keys = [...ids.map(keyOf), expiring];
    expect(raw.length).toBeGreaterThanOrEqual(12);
    for (const secret of [...ids, ...keys, ...values, ...values.map((text) => JSON.stringify(text))]) expect(bytes).not.toContain(secret);
    // The scan looked at the right bytes: every session is there, by its handle.
    for (const key of keys) expect(bytes).toContain(handleOf(key));
  });

  it('the relay is idempotent: relays racing over the same log write each event once, in change-log order', async () => {
    for (let i = 0; i < 60; i++) await t.store.create(storeKey(), storedRecord({ i }));
    const relays = Array.from({ length: 3 }, () => new EventRelay({ from: t.admin, stream: t.stream, events: t.events, batch: 7 }));
    const relayed = await published(CHANGE_LOG_CHANNELS.relayed, async () => {
      await Promise.all(relays.map(async (relay) => {
        while ((await relay.relayOnce()).entries > 0);
      }));
    });
    await t.relay.relayOnce();
    const log = await entries();
    const seen = await eventsOf(t.admin, t.events);
    expect(seen.map((event) => event.id)).toEqual(log.map((entry) => entry.id));
    expect((relayed as { count: number }[]).reduce((sum, message) => sum + message.count, 0)).toBe(60);
    expect(await t.relay.position()).toBe((await changeLogOf(t.admin, t.stream)).at(-1)!.streamId);
  });

  it('the relay follows the log while it runs, and resumes from its checkpoint after a stop', async () => {
    const controller = new AbortController();
    const relay = new EventRelay({ from: t.admin, stream: t.stream, events: t.events, blockMs: 200 });
    const running = relay.run({ signal: controller.signal });
    await t.store.create(storeKey(), storedRecord({ a: 1 }));
    const reader = t.admin.duplicate();
    await reader.call('XREAD', 'BLOCK', 10_000, 'STREAMS', t.events, '0-0');
    controller.abort();
    await running;
    relay.close();
    await t.store.create(storeKey(), storedRecord({ a: 2 }));
    await t.relay.relayOnce();
    expect((await eventsOf(t.admin, t.events)).map((event) => event.type)).toEqual(['created', 'created']);
    reader.disconnect();
  });
});

describe('the changeLog option', () => {
  it('is refused with a Cluster client, naming the option (a script cannot write the session and the stream in two slots)', () => {
    const client = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    try {
      redisStore({ client, changeLog: { stream: 'es:log' } });
      expect.unreachable();
    } catch (error) {
      expect(isSessionError(error, 'ESESS_CONFIG')).toBe(true);
      expect((error as Error).message).toMatch(/"changeLog".*Cluster/);
    } finally {
      client.disconnect();
    }
  });

  it('refuses a malformed stream, age or region, naming each', () => {
    const client = new Redis({ lazyConnect: true });
    const cases: [unknown, string][] = [
      [{ stream: '' }, 'changeLog.stream'],
      [{ stream: 'es:{x}' }, 'changeLog.stream'],
      [{ stream: 'es:log', maxAgeMs: -1 }, 'changeLog.maxAgeMs'],
      [{ stream: 'es:log', maxAgeMs: 1.5 }, 'changeLog.maxAgeMs'],
      [{ stream: 'es:log', region: '' }, 'changeLog.region'],
    ];
    for (const [changeLog, option] of cases) {
      expect(() => redisStore({ client, changeLog: changeLog as { stream: string } })).toThrow(expect.objectContaining({ code: 'ESESS_CONFIG', context: { option } }));
    }
    client.disconnect();
  });
});

describe('change log through Sentinel', () => {
  afterEach(async () => {
    await stopAll();
  });

  it('a store over a Sentinel-managed primary writes the same entries', async () => {
    await checkRedisBinaries();
    const primary = await startRedis();
    const sentinel = await startSentinel(primary.port);
    const client = new Redis({ sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'mymaster', ...BOUNDED });
    const store = redisStore({ client, ownsClient: true, changeLog: { stream: 'es:log' } });
    const key = storeKey();
    await store.create(key, storedRecord({ a: 1 }, { userId: 'u' }));
    await store.destroy(key, TOMBSTONE_GRACE_MS, stampAt(Date.now()));
    const admin = new Redis({ port: primary.port, ...BOUNDED });
    expect((await changeLogOf(admin, 'es:log')).map(({ entry }) => [entry.op, entry.key])).toEqual([['create', key], ['destroy', key]]);
    admin.disconnect();
    await store.close();
  });
});
