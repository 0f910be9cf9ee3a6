import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import memjs from 'memjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { formatStamp } from '../src/core/hlc.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { StoredField, StoredSession } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { memcachedStore, openMemcachedStore } from '../src/stores/memcached.js';
import type { MemjsClient } from '../src/stores/memcached.js';
import { runStoreConformance } from '../src/testing/index.js';
import { startMemcached } from './helpers/memcached.js';
import type { TestMemcached } from './helpers/memcached.js';
import { freePort } from './helpers/postgres-cluster.js';

let server: TestMemcached;
let raw: memjs.Client;

beforeAll(async () => {
  server = await startMemcached();
  raw = memjs.Client.create(`127.0.0.1:${server.port}`, { logger: { log: () => undefined } });
});

afterAll(async () => {
  raw?.close();
  await server?.stop();
});

runStoreConformance({ describe, it, beforeEach, afterEach }, {
  name: 'memcached',
  fakeClock: true,
  setup: async ({ clock }) => ({
    store: memcachedStore({ client: raw, clock }),
    connect: () => openMemcachedStore(server.url, { clock }),
    corrupt: async (key) => {
      await raw.set(`es:${key}`, '{"c": "not a session"', { expires: 3600 });
    },
  }),
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const record = (now: number, fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession => {
  const stored = Object.create(null) as Record<string, StoredField>;
  for (const [name, value] of Object.entries(fields)) stored[name] = { value: JSON.stringify(value), stamp: formatStamp(now, 0, '00000000') };
  return { createdAt: now, lastSeenAt: now, idleTimeout: HOUR, absoluteExpiresAt: now + DAY, userId: null, version: 1, fields: stored, ...meta };
};
const key = () => randomBytes(32).toString('base64url');
const stamp = (offset = 0) => formatStamp(Date.now() + offset, 0, randomBytes(4).toString('hex'));

/** A client on which another writer changes the item just before every replace of ours. */
function interfered(): MemjsClient {
  return {
    get seq() {
      return raw.seq;
    },
    incrSeq: () => raw.incrSeq(),
    perform: (item, request, seq, callback) => {
      if (request[1] !== 0x03) return raw.perform(item, request, seq, callback);
      void raw.append(item, '').then(() => raw.perform(item, request, seq, callback));
    },
  };
}

describe('memcached store', () => {
  it('refuses a record over the item size limit with ESESS_TOO_LARGE before sending it', async () => {
    const store = memcachedStore({ client: raw });
    await expect(store.create(key(), record(Date.now(), { big: 'x'.repeat(1100 * 1024) }))).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE', context: { store: 'memcached' } });
  });

  it("maps the server's too-large answer to ESESS_TOO_LARGE and keeps the stored session", async () => {
    const store = memcachedStore({ client: raw, maxItemBytes: 8 * 1024 * 1024 });
    const k = key();
    await store.create(k, record(Date.now(), { a: 1 }));
    const delta = { fields: { big: { value: JSON.stringify('x'.repeat(1500 * 1024)), stamp: stamp(1) } } };
    await expect(store.apply(k, delta)).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE' });
    expect((await store.load(k))?.fields.a?.value).toBe('1');
  });

  it('stores sessions that live longer than 30 days (memcached then needs an absolute expiry time)', async () => {
    const store = memcachedStore({ client: raw });
    const k = key();
    const now = Date.now();
    await store.create(k, record(now, { a: 1 }, { idleTimeout: 60 * DAY, absoluteExpiresAt: now + 90 * DAY }));
    expect(await store.load(k)).not.toBeNull();
    expect((await store.apply(k, { fields: {}, lastSeenAt: now + 1000 })).status).toBe('ok');
    expect((await raw.get(`es:${k}`)).value).not.toBeNull();
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
    expect(JSON.parse((await raw.get(`es:${k}`)).value?.toString() ?? 'null')).toEqual({ t: now + 90 * DAY + TOMBSTONE_GRACE_MS });
  });

  it('lets memcached expire items by itself (native TTL)', async () => {
    const store = memcachedStore({ client: raw });
    const k = key();
    await store.create(k, record(Date.now(), { a: 1 }, { idleTimeout: 300 }));
    expect((await raw.get(`es:${k}`)).value).not.toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await store.load(k), 'reads check the deadline before memcached drops the item').toBeNull();
    let present = true;
    for (let i = 0; i < 40 && present; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      present = (await raw.get(`es:${k}`)).value !== null;
    }
    expect(present).toBe(false);
  }, 10_000);

  it('a delta that keeps losing its compare-and-swap fails with ESESS_CONFLICT after maxAttempts', async () => {
    const k = key();
    await memcachedStore({ client: raw }).create(k, record(Date.now(), { a: 1 }));
    const store = memcachedStore({ client: interfered(), maxAttempts: 3 });
    const attempts: number[] = [];
    const onConflict = (message: unknown) => void attempts.push((message as { attempt: number }).attempt);
    diagnostics.subscribe(CHANNELS.conflict, onConflict);
    try {
      await expect(store.apply(k, { fields: { b: { value: '2', stamp: stamp(1) } } })).rejects.toMatchObject({ code: 'ESESS_CONFLICT', retriable: true, context: { attempts: 3 } });
    } finally {
      diagnostics.unsubscribe(CHANNELS.conflict, onConflict);
    }
    expect(attempts).toEqual([1, 2, 3]);
    expect((await store.load(k))?.fields.b).toBeUndefined();
  });

  it('destroy wins even against a writer that always gets in first', async () => {
    const k = key();
    await memcachedStore({ client: raw }).create(k, record(Date.now(), { a: 1 }));
    const store = memcachedStore({ client: interfered(), maxAttempts: 2 });
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
    expect(await store.load(k)).toBeNull();
    expect((await store.apply(k, { fields: { b: { value: '2', stamp: stamp(1) } } })).status).toBe('gone');
  });

  it('a tombstone holds the key until its time; then create() can take the key', async () => {
    let now = Date.now();
    const store = memcachedStore({ client: raw, clock: () => now });
    const k = key();
    await store.create(k, record(now, {}, { absoluteExpiresAt: now + 60_000 }));
    await store.destroy(k, 60_000);
    now += 100_000;
    expect(await store.create(k, record(now))).toBe(false);
    now += 30_000;
    expect(await store.create(k, record(now, { again: true }))).toBe(true);
    expect((await store.load(k))?.fields.again?.value).toBe('true');
  });

  it('has no user index: the store and the session manager refuse user calls with ESESS_UNSUPPORTED', async () => {
    const store = memcachedStore({ client: raw });
    expect(store.capabilities).toEqual({ nativeTtl: true, cas: true, userIndex: false, sweep: false });
    await expect(store.listByUser('alice')).rejects.toMatchObject({ code: 'ESESS_UNSUPPORTED', status: 501 });
    await expect(store.destroyByUser('alice', 0)).rejects.toMatchObject({ code: 'ESESS_UNSUPPORTED' });
    const sessions = new SessionManager({ store, secrets: ['memcached-test-secret-0123456789abcdef'] });
    await expect(sessions.listUserSessions('alice')).rejects.toMatchObject({ code: 'ESESS_UNSUPPORTED', message: expect.stringMatching(/no user index/) as unknown });
    await expect(sessions.revokeUser('alice')).rejects.toMatchObject({ code: 'ESESS_UNSUPPORTED' });
  });

  it('an unreachable server is ESESS_STORE_UNAVAILABLE', async () => {
    const store = await openMemcachedStore(`memcached://127.0.0.1:${await freePort()}`, { client: { retries: 1, timeout: 0.5 } });
    try {
      await expect(store.load(key())).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'memcached' } });
    } finally {
      await store.close();
    }
  });

  it('fails with ESESS_STORE_UNAVAILABLE while the server is down and works again once it is back', async () => {
    const own = await startMemcached();
    const store = await openMemcachedStore(own.url, { client: { retries: 1, timeout: 0.5 } });
    try {
      const before = key();
      expect(await store.create(before, record(Date.now(), { a: 1 }))).toBe(true);
      await own.stop();
      await expect(store.load(before)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
      await expect(store.apply(before, { fields: { b: { value: '2', stamp: stamp(1) } } })).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
      const again = await startMemcached({ port: own.port });
      try {
        const after = key();
        expect(await store.create(after, record(Date.now(), { a: 2 }))).toBe(true);
        expect((await store.load(after))?.fields.a?.value).toBe('2');
        expect(await store.load(before), 'memcached keeps nothing across a restart: the session is gone, not an error').toBeNull();
      } finally {
        await again.stop();
      }
    } finally {
      await store.close();
    }
  });

  it('openMemcachedStore() takes a server list and a key prefix, and refuses other URLs', async () => {
    const store = await openMemcachedStore(`memcached://127.0.0.1:${server.port},127.0.0.1:${server.port}/?prefix=other:`);
    const k = key();
    try {
      await store.create(k, record(Date.now(), { a: 1 }));
      expect((await raw.get(`other:${k}`)).value).not.toBeNull();
    } finally {
      await store.close();
    }
    await expect(store.load(k)).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    await expect(openMemcachedStore('redis://127.0.0.1:6379')).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
    await expect(openMemcachedStore('memcached://a b:1')).rejects.toMatchObject({ code: 'ESESS_CONFIG' });
  });

  it('refuses invalid options, naming the option', () => {
    expect(() => memcachedStore({ client: raw, maxAttempts: 0 })).toThrow(/"maxAttempts"/);
    expect(() => memcachedStore({ client: raw, prefix: 'has space' })).toThrow(/"prefix"/);
    expect(() => memcachedStore({ client: {} as MemjsClient })).toThrow(/"client"/);
  });
});
