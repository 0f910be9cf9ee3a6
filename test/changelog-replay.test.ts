import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventRelay } from '../src/changelog/relay.js';
import { replay } from '../src/changelog/replay.js';
import { eventsCommand, replayCommand } from '../src/cli/changelog.js';
import type { CliIO } from '../src/cli/run.js';
import { isSessionError } from '../src/core/errors.js';
import { handleOf, storeKeyOf } from '../src/core/ids.js';
import { SessionManager } from '../src/core/manager.js';
import { sameState } from '../src/core/record.js';
import type { SessionStore } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { encryptedStore, generateEncryptionKey } from '../src/stores/encrypted.js';
import { memoryStore } from '../src/stores/memory.js';
import type { RedisStore } from '../src/stores/redis.js';
import { redisStore } from '../src/stores/redis.js';
import { stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { BOUNDED, changeLogOf, deletePrefix, SECRET, SHARED_REDIS_URL, sharedRedis } from './helpers/redis-fixtures.js';

/**
 * Replay: merging every entry into an empty store gives a store equal to the live one, record by
 * record with every stamp (`readState` compared by `sameState`), and the same revoke watermarks;
 * replaying again changes nothing; a replay from a time over a snapshot of that time catches up.
 */

const newPrefix = () => `es-test:${randomBytes(6).toString('hex')}:`;

interface Live {
  admin: Redis;
  prefix: string;
  stream: string;
  store: RedisStore;
  manager: SessionManager;
  clock: { now: number };
  prefixes: string[];
}

/** Sessions through every path that writes: create, update, touch, regenerate, destroy, revoke-all, merges, watermarks, expiry. */
async function workload(live: Live, round: number): Promise<string> {
  const { manager, store, clock } = live;
  const users = [`amy-${round}`, `ben-${round}`];
  const sessions = Array.from({ length: 12 }, (_, i) => manager.create({ userId: i % 3 === 2 ? null : (users[i % 2] as string) }));
  for (const [i, session] of sessions.entries()) {
    session.set('cart', [i, round]);
    session.set('name', `n${i}`);
    await manager.save(session);
  }
  clock.now += 90_000;
  for (const session of sessions.slice(0, 6)) {
    session.set('cart', ['changed']);
    session.delete('name');
    await manager.save(session);
  }
  for (const session of sessions.slice(6, 9)) await manager.touch(session);
  await manager.regenerate(sessions[9] as (typeof sessions)[number]);
  await manager.destroy(sessions[10] as (typeof sessions)[number]);
  await manager.revokeUser(users[0] as string);
  const foreign = storeKey();
  await store.mergeState(foreign, { kind: 'live', record: storedRecord({ f: round }, { userId: users[1] as string, createdAt: Date.now() - 5_000 }) });
  await store.mergeState(storeKey(), { kind: 'tombstone', stamp: stampAt(Date.now()), until: Date.now() + 600_000 });
  await store.mergeWatermark(users[1] as string, stampAt(Date.now() - 2_000));
  const short = storeKey();
  await store.create(short, storedRecord({ short: 1 }, { idleTimeout: 150 }));
  return short;
}

/** Polls until Redis has expired the key (there is no event to await: keyspace notifications are lossy). */
async function untilGone(store: RedisStore, key: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await store.load(key)) !== null) {
    if (Date.now() > deadline) throw new Error('the key did not expire within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits until the clock has moved past `ms`, so the next write gets a later stream ID time. */
async function pastMs(ms: number): Promise<void> {
  while (Date.now() <= ms) await new Promise((resolve) => setImmediate(resolve));
}

async function keysAndUsers(live: Live): Promise<{ keys: string[]; users: string[] }> {
  const log = (await changeLogOf(live.admin, live.stream)).map(({ entry }) => entry);
  return {
    keys: [...new Set(log.flatMap((entry) => (entry.key === null ? [] : [entry.key])))],
    users: [...new Set(log.flatMap((entry) => (entry.userId === null ? [] : [entry.userId])))],
  };
}

/** Record by record and watermark by watermark, the two stores hold the same. */
async function expectSameStores(live: Live, copy: SessionStore): Promise<number> {
  const { keys, users } = await keysAndUsers(live);
  let compared = 0;
  for (const key of keys) {
    const [a, b] = [await live.store.readState(key), await copy.readState!(key)];
    expect(sameState(a, b), `key ${handleOf(key)}: live ${JSON.stringify(a)} replayed ${JSON.stringify(b)}`).toBe(true);
    if (a !== null) compared++;
  }
  for (const user of users) expect(await copy.readWatermark!(user)).toEqual(await live.store.readWatermark(user));
  return compared;
}

describe('replay of the Redis change log', () => {
  let live: Live;

  beforeEach(async () => {
    const admin = await sharedRedis();
    const prefix = newPrefix();
    const stream = `${prefix}log`;
    const store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true, changeLog: { stream } });
    const clock = { now: Date.now() };
    const manager = new SessionManager({ store, secrets: [SECRET], clock: () => clock.now, idleTimeout: 600, absoluteTimeout: 7200 });
    live = { admin, prefix, stream, store, manager, clock, prefixes: [prefix] };
  });

  afterEach(async () => {
    await live.store.close();
    for (const prefix of live.prefixes) await deletePrefix(live.admin, prefix);
    live.admin.disconnect();
  });

  const secondRedis = () => {
    const prefix = newPrefix();
    live.prefixes.push(prefix);
    return redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true });
  };

  it('from the beginning into an empty memory store and into a second Redis gives stores equal record by record, stamps included', async () => {
    // The short session expires before the replay: both sides must agree it is gone.
    await untilGone(live.store, await workload(live, 1));
    for (const copy of [memoryStore({ maxEntries: 100_000 }), secondRedis()]) {
      const report = await replay({ client: live.admin, stream: live.stream }, copy);
      expect(report.entries).toBe((await changeLogOf(live.admin, live.stream)).length);
      expect(report).toMatchObject({ malformed: 0, watermarks: 2 });
      expect(report.merged + report.watermarks + report.skipped).toBe(report.entries);
      // Every key of the log but the expired one holds a record or a tombstone.
      expect(await expectSameStores(live, copy)).toBe(15);
      await copy.close();
    }
  });

  it('replaying twice changes nothing', async () => {
    await workload(live, 2);
    const copy = memoryStore({ maxEntries: 100_000 });
    const first = await replay({ client: live.admin, stream: live.stream }, copy);
    expect(first.changed).toBeGreaterThan(0);
    const second = await replay({ client: live.admin, stream: live.stream }, copy, { concurrency: 3, batch: 7 });
    expect(second).toMatchObject({ entries: first.entries, changed: 0, revoked: 0 });
    await expectSameStores(live, copy);
  });

  it('replay from a time over a snapshot taken at that time gives the live store', async () => {
    await workload(live, 3);
    const snapshot = memoryStore({ maxEntries: 100_000 });
    const before = await keysAndUsers(live);
    for (const key of before.keys) {
      const state = await live.store.readState(key);
      if (state !== null) await snapshot.mergeState(key, state);
    }
    for (const user of before.users) {
      const watermark = await live.store.readWatermark(user);
      if (watermark !== null) await snapshot.mergeWatermark(user, watermark.stamp);
    }
    const since = new Date(Number((await changeLogOf(live.admin, live.stream)).at(-1)!.streamId.split('-')[0])).toISOString();
    await workload(live, 4);
    const report = await replay({ client: live.admin, stream: live.stream }, snapshot, { since });
    expect(report.entries).toBeLessThan((await changeLogOf(live.admin, live.stream)).length);
    await expectSameStores(live, snapshot);
  });

  it('under encryptedStore the log carries ciphertext; a store rebuilt from it reads the plaintext with the same keys', async () => {
    const keys = [generateEncryptionKey('k1')];
    const manager = new SessionManager({ store: encryptedStore(live.store, { keys }), secrets: [SECRET] });
    const session = manager.create();
    session.set('card', 'plain-text-4111-1111');
    await manager.save(session);
    const raw = (await live.admin.xrange(live.stream, '-', '+')).flatMap(([, fields]) => fields).join('');
    expect(raw).not.toContain('plain-text-4111-1111');
    const copy = memoryStore();
    await replay({ client: live.admin, stream: live.stream }, copy);
    const rebuilt = new SessionManager({ store: encryptedStore(copy, { keys }), secrets: [SECRET] });
    expect((await rebuilt.load(session.id))?.get('card')).toBe('plain-text-4111-1111');
  });

  it('refuses a store without the replica powers', async () => {
    const plain: SessionStore = { ...memoryStore(), name: 'plain', capabilities: { ...memoryStore().capabilities, replica: false } } as SessionStore;
    await expect(replay({ client: live.admin, stream: live.stream }, plain)).rejects.toSatisfy((error: unknown) => isSessionError(error, 'ESESS_UNSUPPORTED'));
  });
});

describe('the events and replay commands', () => {
  let admin: Redis;
  let prefix: string;
  let store: RedisStore;
  const prefixes: string[] = [];

  function cli(stop?: Promise<string>): CliIO & { out: () => string; err: () => string } {
    let out = '';
    let err = '';
    return {
      stdout: (text) => (out += text),
      stderr: (text) => (err += text),
      env: {},
      cwd: process.cwd(),
      readStdin: async () => '',
      waitForStop: () => stop ?? new Promise<string>(() => {}),
      out: () => out,
      err: () => err,
    };
  }
  const url = (stream: string) => `${SHARED_REDIS_URL}?stream=${encodeURIComponent(stream)}`;
  const lines = (text: string) => text.trim().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>);

  beforeEach(async () => {
    admin = await sharedRedis();
    prefix = newPrefix();
    prefixes.push(prefix);
    store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true, changeLog: { stream: `${prefix}log` } });
  });

  afterEach(async () => {
    await store.close();
    for (const name of prefixes.splice(0)) await deletePrefix(admin, name);
    admin.disconnect();
  });

  it('events prints one JSON line per event, from the change log or from the events stream, and --since skips older ones', async () => {
    const manager = new SessionManager({ store, secrets: [SECRET] });
    const session = manager.create({ userId: 'ivy', data: { a: 1 } });
    await manager.save(session);
    const key = storeKeyOf(session.id);
    await pastMs(Number((await changeLogOf(admin, `${prefix}log`)).at(-1)!.streamId.split('-')[0]));
    const since = new Date().toISOString();
    await pastMs(Date.parse(since));
    await manager.destroy(session);

    const fromLog = cli();
    expect(await eventsCommand(['--from', url(`${prefix}log`)], fromLog)).toBe(0);
    expect(lines(fromLog.out()).map((event) => [event.type, event.handle, event.userId])).toEqual([['created', handleOf(key), 'ivy'], ['destroyed', handleOf(key), 'ivy']]);

    const relay = new EventRelay({ from: admin, stream: `${prefix}log`, events: `${prefix}events` });
    await relay.relayOnce();
    const fromEvents = cli();
    expect(await eventsCommand(['--from', url(`${prefix}events`)], fromEvents)).toBe(0);
    expect(fromEvents.out()).toBe(fromLog.out());

    const recent = cli();
    expect(await eventsCommand(['--from', url(`${prefix}log`), '--since', since], recent)).toBe(0);
    expect(lines(recent.out()).map((event) => event.type)).toEqual(['destroyed']);
  });

  it('events --follow prints new events as they come until the process is asked to stop', async () => {
    let stop: (signal: string) => void = () => {};
    const io = cli(new Promise<string>((resolve) => (stop = resolve)));
    await store.create(storeKey(), storedRecord({ a: 1 }));
    const running = eventsCommand(['--from', url(`${prefix}log`), '--follow'], io);
    const later = storeKey();
    await store.create(later, storedRecord({ a: 2 }));
    const deadline = Date.now() + 10_000;
    while (lines(io.out()).length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    stop('SIGINT');
    expect(await running).toBe(0);
    expect(lines(io.out()).map((event) => event.type)).toEqual(['created', 'created']);
    expect(lines(io.out())[1]!.handle).toBe(handleOf(later));
  });

  it('replay rebuilds a store from its URL and prints what it applied; twice, it changes nothing', async () => {
    const key = storeKey();
    await store.create(key, storedRecord({ a: 1 }, { userId: 'jo' }));
    await store.destroyByUser('jo', TOMBSTONE_GRACE_MS, stampAt(Date.now()));
    const target = newPrefix();
    prefixes.push(target);
    const storeUrl = `${SHARED_REDIS_URL}?prefix=${encodeURIComponent(target)}`;
    const first = cli();
    expect(await replayCommand(['--from', url(`${prefix}log`), '--store', storeUrl], first)).toBe(0);
    expect(JSON.parse(first.out())).toMatchObject({ entries: 3, merged: 2, changed: 2, watermarks: 1, malformed: 0 });
    const rebuilt = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix: target, ownsClient: true });
    expect(sameState(await rebuilt.readState(key), await store.readState(key))).toBe(true);
    expect(await rebuilt.readWatermark('jo')).toEqual(await store.readWatermark('jo'));
    await rebuilt.close();
    const second = cli();
    expect(await replayCommand(['--from', url(`${prefix}log`), '--store', storeUrl], second)).toBe(0);
    expect(JSON.parse(second.out())).toMatchObject({ entries: 3, changed: 0, revoked: 0 });
  });

  it('configuration errors exit 2 and name the flag, never the URL', async () => {
    const cases: [string[], RegExp][] = [
      [[], /--from/],
      [['--from', 'redis://user:hunter2@127.0.0.1:6379'], /--from.*\?stream=NAME/],
      [['--from', 'redis-cluster://127.0.0.1:7000?stream=x'], /--from.*not redis-cluster/],
      [['--from', url('x'), '--since', 'yesterday'], /--since/],
      [['--from', url('x'), '--bogus'], /bogus/],
    ];
    for (const [args, pattern] of cases) {
      const io = cli();
      expect(await eventsCommand(args, io), args.join(' ')).toBe(2);
      expect(io.err()).toMatch(pattern);
      expect(io.err()).not.toContain('hunter2');
    }
    const io = cli();
    expect(await replayCommand(['--from', url('x')], io)).toBe(2);
    expect(io.err()).toMatch(/--store/);
    const help = cli();
    expect(await replayCommand(['--help'], help)).toBe(0);
    expect(help.out()).toMatch(/^Usage: elastic-session replay/);
  });
});
