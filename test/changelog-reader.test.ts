import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeEntry } from '../src/changelog/entry.js';
import { replayAction } from '../src/changelog/entry.js';
import { ChangeLogReader } from '../src/changelog/reader.js';
import { CHANGE_LOG_CHANNELS } from '../src/changelog/telemetry.js';
import { trimByAge } from '../src/changelog/trim.js';
import { sameState } from '../src/core/record.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { memoryStore } from '../src/stores/memory.js';
import type { RedisStore } from '../src/stores/redis.js';
import { redisStore } from '../src/stores/redis.js';
import { stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { published } from './helpers/channels.js';
import { BOUNDED, changeLogOf, deletePrefix, SHARED_REDIS_URL, sharedRedis } from './helpers/redis-fixtures.js';

/** The consumer-group reader: at-least-once, acknowledged after apply, pending entries read again after a crash. */

describe('ChangeLogReader (Redis consumer groups)', () => {
  let admin: Redis;
  let prefix: string;
  let stream: string;
  let store: RedisStore;
  const readers: ChangeLogReader[] = [];
  const reader = (consumer: string, options: { claimIdleMs?: number; count?: number } = {}) => {
    const made = new ChangeLogReader({ client: admin, stream, group: 'replicas', consumer, blockMs: 100, ...options });
    readers.push(made);
    return made;
  };
  const write = async (count: number) => {
    const keys = Array.from({ length: count }, () => storeKey());
    for (const key of keys) await store.create(key, storedRecord({ a: 1 }));
    return keys;
  };
  const pending = async () => ((await admin.xpending(stream, 'replicas')) as [number])[0];

  beforeEach(async () => {
    admin = await sharedRedis();
    prefix = `es-test:${randomBytes(6).toString('hex')}:`;
    stream = `${prefix}log`;
    store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true, changeLog: { stream } });
  });

  afterEach(async () => {
    for (const made of readers.splice(0)) made.close();
    await store.close();
    await deletePrefix(admin, prefix);
    admin.disconnect();
  });

  it('keeps a follower store equal to the live one, acknowledging each entry once it is applied', async () => {
    const follower = memoryStore();
    const keys = await write(5);
    await store.apply(keys[0]!, { fields: { b: { value: '2', stamp: stampAt(Date.now()) } } });
    await store.destroy(keys[1]!, TOMBSTONE_GRACE_MS, stampAt(Date.now()));
    const controller = new AbortController();
    const applied: string[] = [];
    const running = reader('f1').run(async (entry, streamId) => {
      const action = replayAction(entry);
      if (action.kind === 'state') await follower.mergeState(action.key, action.state);
      applied.push(streamId);
      if (applied.length === 7) controller.abort();
    }, { signal: controller.signal });
    await running;
    for (const key of keys) expect(sameState(await follower.readState(key), await store.readState(key))).toBe(true);
    expect(applied).toEqual((await changeLogOf(admin, stream)).map(({ streamId }) => streamId));
    expect(await pending()).toBe(0);
  });

  it('after a crash in the middle of a batch, the same consumer reads the unacknowledged entries again, first', async () => {
    await write(6);
    const seen: string[] = [];
    const failing = reader('c1', { count: 10 });
    await expect(
      failing.run(async (entry) => {
        if (seen.length === 3) throw new Error('crash');
        seen.push(entry.id);
      }),
    ).rejects.toThrow('crash');
    failing.close();
    expect(await pending()).toBe(3);
    // A new process with the same consumer name.
    const again: ChangeEntry[] = [];
    const batch = await reader('c1').read();
    again.push(...batch.map(({ entry }) => entry));
    await readers.at(-1)!.ack(batch.map(({ streamId }) => streamId));
    const all = (await changeLogOf(admin, stream)).map(({ entry }) => entry.id);
    expect(again.map((entry) => entry.id)).toEqual(all.slice(3));
    expect([...seen, ...again.map((entry) => entry.id)]).toEqual(all);
    expect(await pending()).toBe(0);
  });

  it('pending entries of a consumer that died are claimed by another after claimIdleMs', async () => {
    await write(4);
    const dead = reader('dead', { count: 10 });
    expect(await dead.read()).toHaveLength(4);
    dead.close();
    const heir = reader('heir', { claimIdleMs: 50 });
    const claimed: string[] = [];
    const deadline = Date.now() + 10_000;
    while (claimed.length < 4 && Date.now() < deadline) {
      const batch = await heir.read();
      await heir.ack(batch.map(({ streamId }) => streamId));
      claimed.push(...batch.map(({ streamId }) => streamId));
    }
    expect(claimed).toEqual((await changeLogOf(admin, stream)).map(({ streamId }) => streamId));
    expect(await pending()).toBe(0);
  });

  it('reports its lag (entries not yet applied, age of the oldest) and publishes it after each batch', async () => {
    await write(5);
    const slow = reader('lag', { count: 2 });
    const batch = await slow.read();
    expect(await slow.lag()).toMatchObject({ entries: 5, pending: 2 });
    expect((await slow.lag()).ageMs).toBeGreaterThanOrEqual(0);
    await slow.ack(batch.map(({ streamId }) => streamId));
    expect(await slow.lag()).toMatchObject({ entries: 3, pending: 0 });
    const controller = new AbortController();
    let handled = 0;
    const messages = await published(CHANGE_LOG_CHANNELS.lag, () =>
      slow.run(async () => {
        if (++handled === 3) controller.abort();
      }, { signal: controller.signal }),
    );
    expect(messages.at(-1)).toEqual({ transport: 'redis-streams', consumer: 'replicas', entries: 0, ageMs: 0 });
  });

  it('a malformed entry is acknowledged, skipped and counted; the others are delivered', async () => {
    await write(1);
    await admin.xadd(stream, '*', 'entry', '{"v":1,"op":"nope"}');
    await write(1);
    const failures = await published(CHANGE_LOG_CHANNELS.failed, async () => {
      const batch = await reader('m').read();
      expect(batch.map(({ entry }) => entry.op)).toEqual(['create', 'create']);
      await readers.at(-1)!.ack(batch.map(({ streamId }) => streamId));
    });
    expect(failures).toEqual([{ transport: 'redis-streams', stage: 'decode', count: 1 }]);
    expect(await pending()).toBe(0);
  });
});

describe('trimming the change log by age', () => {
  it('each reconciler round trims entries older than maxAgeMs (MINID ~), and trimByAge trims exactly', async () => {
    const admin = await sharedRedis();
    const prefix = `es-test:${randomBytes(6).toString('hex')}:`;
    const stream = `${prefix}log`;
    const store = redisStore({ client: new Redis(SHARED_REDIS_URL, BOUNDED), prefix, ownsClient: true, changeLog: { stream, maxAgeMs: 300 } });
    for (let i = 0; i < 250; i++) await store.create(storeKey(), storedRecord({ i }));
    const oldest = Number((await changeLogOf(admin, stream)).at(-1)!.streamId.split('-')[0]);
    while (Date.now() <= oldest + 300) await new Promise((resolve) => setTimeout(resolve, 20));
    const fresh = storeKey();
    await store.create(fresh, storedRecord({ fresh: true }));
    expect(await changeLogOf(admin, stream)).toHaveLength(251);
    await store.reconcileExpirations();
    const left = await changeLogOf(admin, stream);
    // Approximate trimming removes whole stream nodes (100 entries each): at least 200 of the 250 went.
    expect(left.length).toBeLessThanOrEqual(51);
    expect(left.at(-1)!.entry.key).toBe(fresh);
    expect(await trimByAge(admin, stream, 300)).toBe(left.length - 1);
    expect((await changeLogOf(admin, stream)).map(({ entry }) => entry.key)).toEqual([fresh]);
    await store.close();
    await deletePrefix(admin, prefix);
    admin.disconnect();
  });
});
