import { createHash, randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import memjs from 'memjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { watermarkAt } from '../src/core/record.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { StoredSession } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { canScan, generateEncryptionKey } from '../src/stores/encrypted.js';
import { memcachedStore, openMemcachedStore } from '../src/stores/memcached.js';
import type { MemcachedStore, MemjsClient } from '../src/stores/memcached.js';
import { fieldValue, runStoreConformance, stampAt, storedRecord, storeKey as key } from '../src/testing/index.js';
import { startMemcached } from './helpers/memcached.js';
import { expectAllUnderNewKey, sessionsUnderOldKey } from './helpers/reencrypt.js';
import type { TestMemcached } from './helpers/memcached.js';
import { freePort } from './helpers/postgres-cluster.js';
import { runCli } from './helpers/service.js';

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

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'memcached',
  fakeClock: true,
  capabilities: { nativeTtl: true, cas: true, userIndex: false, sweep: false, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
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
const stamp = (offset = 0) => stampAt(Date.now() + offset);

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
    await expect(store.create(key(), storedRecord({ big: 'x'.repeat(1100 * 1024) }))).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE', context: { store: 'memcached' } });
  });

  it("maps the server's too-large answer to ESESS_TOO_LARGE and keeps the stored session", async () => {
    const store = memcachedStore({ client: raw, maxItemBytes: 8 * 1024 * 1024 });
    const k = key();
    await store.create(k, storedRecord({ a: 1 }));
    const delta = { fields: { big: { value: JSON.stringify('x'.repeat(1500 * 1024)), stamp: stamp(1) } } };
    await expect(store.apply(k, delta)).rejects.toMatchObject({ code: 'ESESS_TOO_LARGE' });
    expect((await store.load(k))?.fields.a?.value).toBe('1');
  });

  it('stores sessions that live longer than 30 days (memcached then needs an absolute expiry time)', async () => {
    const store = memcachedStore({ client: raw });
    const k = key();
    const now = Date.now();
    await store.create(k, storedRecord({ a: 1 }, { idleTimeout: 60 * DAY, absoluteExpiresAt: now + 90 * DAY }, now));
    expect(await store.load(k)).not.toBeNull();
    expect((await store.apply(k, { fields: {}, lastSeenAt: now + 1000 })).status).toBe('ok');
    expect((await raw.get(`es:${k}`)).value).not.toBeNull();
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
    expect(JSON.parse((await raw.get(`es:${k}`)).value?.toString() ?? 'null')).toEqual({ t: now + 90 * DAY + TOMBSTONE_GRACE_MS });
  });

  it('lets memcached expire items by itself (native TTL)', async () => {
    const store = memcachedStore({ client: raw });
    const k = key();
    await store.create(k, storedRecord({ a: 1 }, { idleTimeout: 300 }));
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
    await memcachedStore({ client: raw }).create(k, storedRecord({ a: 1 }));
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
    await memcachedStore({ client: raw }).create(k, storedRecord({ a: 1 }));
    const store = memcachedStore({ client: interfered(), maxAttempts: 2 });
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
    expect(await store.load(k)).toBeNull();
    expect((await store.apply(k, { fields: { b: { value: '2', stamp: stamp(1) } } })).status).toBe('gone');
  });

  it('a tombstone holds the key until its time; then create() can take the key', async () => {
    let now = Date.now();
    const store = memcachedStore({ client: raw, clock: () => now });
    const k = key();
    await store.create(k, storedRecord({}, { absoluteExpiresAt: now + 60_000 }, now));
    await store.destroy(k, 60_000);
    now += 100_000;
    expect(await store.create(k, storedRecord({}, {}, now))).toBe(false);
    now += 30_000;
    expect(await store.create(k, storedRecord({ again: true }, {}, now))).toBe(true);
    expect((await store.load(k))?.fields.again?.value).toBe('true');
  });

  it('has no user index: the store and the session manager refuse user calls with ESESS_UNSUPPORTED', async () => {
    const store = memcachedStore({ client: raw });
    expect(store.capabilities).toEqual({ nativeTtl: true, cas: true, userIndex: false, sweep: false, scan: true, replica: true });
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
      expect(await store.create(before, storedRecord({ a: 1 }))).toBe(true);
      await own.stop();
      await expect(store.load(before)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
      await expect(store.apply(before, { fields: { b: { value: '2', stamp: stamp(1) } } })).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE' });
      const again = await startMemcached({ port: own.port });
      try {
        const after = key();
        expect(await store.create(after, storedRecord({ a: 2 }))).toBe(true);
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
      await store.create(k, storedRecord({ a: 1 }));
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

describe('memcached replica powers', () => {
  const user = () => `u-${randomBytes(6).toString('hex')}`;
  const watermarkItem = (userId: string) => `es:wm:${createHash('sha256').update(userId).digest('base64url')}`;
  const item = async (name: string): Promise<unknown> => JSON.parse((await raw.get(name)).value?.toString() ?? 'null');

  it('keeps the destroy stamp and the exact guard in the tombstone item, though memcached expires items in whole seconds', async () => {
    const store = memcachedStore({ client: raw });
    const k = key();
    const created = storedRecord({ a: 1 });
    await store.create(k, created);
    const at = stamp(1);
    expect(await store.destroy(k, 1_234, at)).toBe(true);
    expect(await item(`es:${k}`)).toEqual({ t: created.absoluteExpiresAt + 1_234, s: at });
    expect(await store.readState(k)).toEqual({ kind: 'tombstone', stamp: at, until: created.absoluteExpiresAt + 1_234 });
  });

  it('keeps a watermark item per user until its time: mergeWatermark() destroys nothing (no index to find sessions by), mergeState() settles arriving records against it', async () => {
    let now = Date.now();
    const store = memcachedStore({ client: raw, clock: () => now });
    const u = user();
    const before = key();
    await store.create(before, storedRecord({}, { userId: u }, now - 1_000));
    const at = stamp();
    expect(await store.mergeWatermark(u, at)).toBe(0);
    expect(await store.load(before), 'a session already here is not found, so it lives').not.toBeNull();
    expect(await item(watermarkItem(u))).toEqual({ wm: at, until: watermarkAt(at).until });
    expect(await store.readWatermark(u)).toEqual(watermarkAt(at));
    expect(await store.mergeWatermark(u, stamp(-5_000)), 'an older stamp changes nothing').toBe(0);
    expect(await store.readWatermark(u)).toEqual(watermarkAt(at));

    const arriving = key();
    const bound = storedRecord({ a: 1 }, { userId: u }, now - 500);
    expect(await store.mergeState(arriving, { kind: 'live', record: bound })).toEqual({ state: 'tombstone', changed: true });
    expect(await store.readState(arriving)).toEqual({ kind: 'tombstone', stamp: '', until: bound.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
    const rebound = storedRecord({ a: 1 }, { userId: u }, now + 1_000);
    expect(await store.mergeState(key(), { kind: 'live', record: rebound }), 'created after the watermark: it lives').toEqual({ state: 'live', changed: true });

    now = watermarkAt(at).until;
    expect(await store.readWatermark(u), 'past its until the watermark is nothing').toBeNull();
  });

  it('a watermark raised while mergeState() writes still kills the record it wrote: the merge reads the watermark again after writing', async () => {
    const u = user();
    const k = key();
    const at = stamp();
    const other = memcachedStore({ client: raw });
    let raised = false;
    // Raises the watermark from another store just before the merge's add reaches memcached,
    // after the merge has read the (absent) watermark.
    const racing: MemjsClient = {
      get seq() {
        return raw.seq;
      },
      incrSeq: () => raw.incrSeq(),
      perform: (name, request, seq, callback) => {
        if (request[1] !== 0x02 || raised) return raw.perform(name, request, seq, callback);
        raised = true;
        void other.mergeWatermark(u, at).then(() => raw.perform(name, request, seq, callback));
      },
    };
    const bound = storedRecord({ a: 1 }, { userId: u }, Date.now() - 1_000);
    expect(await memcachedStore({ client: racing }).mergeState(k, { kind: 'live', record: bound })).toEqual({ state: 'tombstone', changed: true });
    expect(raised).toBe(true);
    expect(await other.readState(k)).toEqual({ kind: 'tombstone', stamp: '', until: bound.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
  });
});

describe('memcached items written by the previous release', () => {
  // Exactly as the previous release wrote them: no user stamp in a live item, tombstones without a stamp.
  const oldLive = (r: StoredSession): string =>
    JSON.stringify({ c: r.createdAt, l: r.lastSeenAt, i: r.idleTimeout, a: r.absoluteExpiresAt, u: r.userId, v: r.version, f: Object.fromEntries(Object.entries(r.fields).map(([name, field]) => [name, [field.value, field.stamp]])) });
  const oldTombstone = (until: number): string => JSON.stringify({ t: until });
  const put = async (k: string, value: string): Promise<void> => {
    await raw.set(`es:${k}`, value, { expires: 3_600 });
  };

  it('load() and apply() read an old record with the empty user stamp, which any stamped principal write overrides', async () => {
    const store = memcachedStore({ client: raw });
    const k = key();
    const old = storedRecord({ a: 1 }, { userId: 'alice' });
    await put(k, oldLive(old));
    expect(await store.load(k)).toEqual({ ...old, userStamp: '' });
    const at = stamp(1);
    expect(await store.apply(k, { fields: { b: { value: '2', stamp: at } }, userId: 'bob', userStamp: at })).toEqual({ status: 'ok', version: 2 });
    const loaded = await store.load(k);
    expect({ userId: loaded?.userId, userStamp: loaded?.userStamp, a: fieldValue(loaded, 'a'), b: fieldValue(loaded, 'b') }).toEqual({ userId: 'bob', userStamp: at, a: 1, b: 2 });
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
  });

  it('readState() shows an old record with the empty user stamp and an old tombstone with the empty stamp and its guard', async () => {
    const store = memcachedStore({ client: raw });
    const [live, dead] = [key(), key()];
    const old = storedRecord({ a: 1 }, { userId: 'carol' });
    await put(live, oldLive(old));
    await put(dead, oldTombstone(old.absoluteExpiresAt + TOMBSTONE_GRACE_MS));
    expect(await store.readState(live)).toEqual({ kind: 'live', record: { ...old, userStamp: '' } });
    expect(await store.readState(dead)).toEqual({ kind: 'tombstone', stamp: '', until: old.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
  });

  it('mergeState() merges into old items: a stamped principal wins over the unstamped one, an old tombstone still wins, a watermark covers an old session of the user', async () => {
    const store = memcachedStore({ client: raw });
    const [live, dead, ended, revoked] = [key(), key(), key(), key()];
    const old = storedRecord({ a: 1 }, { userId: 'dave' });
    const until = old.absoluteExpiresAt + TOMBSTONE_GRACE_MS;
    for (const k of [live, ended, revoked]) await put(k, oldLive(old));
    await put(dead, oldTombstone(until));

    const at = stamp(1);
    const theirs = { ...old, userId: 'erin', userStamp: at, fields: { ...old.fields, b: { value: '2', stamp: at } } };
    expect(await store.mergeState(live, { kind: 'live', record: theirs })).toEqual({ state: 'live', changed: true });
    expect(await store.readState(live)).toEqual({ kind: 'live', record: { ...theirs, version: 2 } });

    expect(await store.mergeState(dead, { kind: 'live', record: theirs })).toEqual({ state: 'tombstone', changed: false });
    expect(await store.mergeState(dead, { kind: 'tombstone', stamp: at, until })).toEqual({ state: 'tombstone', changed: true });
    expect(await store.readState(dead)).toEqual({ kind: 'tombstone', stamp: at, until });

    expect(await store.mergeState(ended, { kind: 'tombstone', stamp: at, until })).toEqual({ state: 'tombstone', changed: true });
    expect(await store.load(ended)).toBeNull();

    await store.mergeWatermark('dave', stamp());
    expect(await store.mergeState(revoked, { kind: 'live', record: { ...old, userStamp: '' } }), 'a later watermark covers a session of the user created before it').toEqual({ state: 'tombstone', changed: true });
  });
});

/** Every key of a walk in pages of `limit`, in the order returned. */
async function walk(store: MemcachedStore, limit: number): Promise<string[]> {
  const scan = store.scan;
  if (!scan) throw new Error('the store has no scan()');
  const keys: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { keys: string[]; cursor: string | null } = await scan(cursor, limit);
    expect(page.keys.length).toBeLessThanOrEqual(limit);
    keys.push(...page.keys);
    cursor = page.cursor;
  } while (cursor !== null);
  return keys;
}

describe('memcached connections', () => {
  it('a request in flight when the server closes the connection fails with ESESS_STORE_UNAVAILABLE instead of waiting for ever', async () => {
    // A real memcached cannot be made to close a connection with a request in flight at a chosen
    // moment; this server does it on the first request (plain memjs would wait for ever).
    const closing = createServer((socket) => socket.once('data', () => socket.end()));
    await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
    const { port } = closing.address() as AddressInfo;
    const store = await openMemcachedStore(`memcached://127.0.0.1:${port}`, { client: { retries: 1 } });
    try {
      await expect(store.load('k'.repeat(43))).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', context: { store: 'memcached', operation: 'load' } });
    } finally {
      await store.close();
      await new Promise((resolve) => closing.close(resolve));
    }
  });
});

describe('memcached scan() (lru_crawler metadump)', () => {
  const silent = { logger: { log: () => undefined } };
  const prefix = () => `scan-${randomBytes(4).toString('hex')}:`;

  it('walks the live sessions of every server of the client, each once, in key order, only under its prefix', async () => {
    const second = await startMemcached();
    const both = memjs.Client.create(`127.0.0.1:${server.port},127.0.0.1:${second.port}`, silent);
    try {
      const own = prefix();
      const store = memcachedStore({ client: both, prefix: own });
      const now = Date.now();
      // Six keys that memjs's hashing puts on each server.
      const perServer: string[][] = [[], []];
      while (perServer.some((keys) => keys.length < 6)) {
        const k = key();
        perServer[Number(both.getServer(`${own}${k}`))]?.push(k);
      }
      const written = perServer.flatMap((keys) => keys.slice(0, 6));
      for (const k of written) await store.create(k, storedRecord({}, {}, now));
      const destroyed = key();
      await store.create(destroyed, storedRecord({}, {}, now));
      await store.destroy(destroyed, TOMBSTONE_GRACE_MS);
      await memcachedStore({ client: both, prefix: prefix() }).create(key(), storedRecord({}, {}, now));
      expect((await raw.get(`${own}${perServer[1]?.[0]}`)).value, 'the second server holds keys the first does not').toBeNull();

      expect(await walk(store, 5)).toEqual([...written].sort());
    } finally {
      both.close();
      await second.stop();
    }
  });

  it('dumps once per walk: a walk does not see keys added after it started, a cursor taken to another store re-dumps and continues after its last key', async () => {
    const own = prefix();
    const first = memcachedStore({ client: raw, prefix: own });
    const now = Date.now();
    const before = Array.from({ length: 10 }, () => `a${key()}`).sort();
    for (const k of before) await first.create(k, storedRecord({}, {}, now));
    const page = await first.scan!(null, 4);
    expect(page.keys).toEqual(before.slice(0, 4));
    const added = `z${key()}`;
    await first.create(added, storedRecord({}, {}, now));

    const rest = await first.scan!(page.cursor, 100);
    expect(rest, 'the walk goes on over its own dump').toEqual({ keys: before.slice(4), cursor: null });

    const other = memcachedStore({ client: raw, prefix: own });
    const elsewhere = await other.scan!(page.cursor, 100);
    expect(elsewhere, 'a new dump, continued after the last key of the page').toEqual({ keys: [...before.slice(4), added], cursor: null });
  });

  it('refuses a cursor it did not return and a limit that is not a positive integer (ESESS_INVALID_INPUT)', async () => {
    const store = memcachedStore({ client: raw });
    await expect(store.scan!('r1.abc', 10)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(store.scan!(`mc1.${Buffer.from('[1,2]').toString('base64url')}`, 10)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(store.scan!(null, 0)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('has no scan() when it cannot dump: a client without a server list, or with SASL (memcached then has no text protocol)', () => {
    expect(canScan(memcachedStore({ client: raw }))).toBe(true);
    expect(canScan(memcachedStore({ client: interfered() }))).toBe(false);
    const sasl = memjs.Client.create(`user:secret@127.0.0.1:${server.port}`, silent);
    try {
      const store = memcachedStore({ client: sasl });
      expect(store.scan).toBeUndefined();
      expect(canScan(store)).toBe(false);
    } finally {
      sasl.close();
    }
  });

  it('a server without the LRU crawler makes scan() fail with ESESS_UNSUPPORTED saying what it needs', async () => {
    const own = await startMemcached({ args: ['-o', 'no_lru_crawler'] });
    const store = await openMemcachedStore(own.url);
    try {
      await store.create(key(), storedRecord());
      await expect(store.scan!(null, 10)).rejects.toMatchObject({ code: 'ESESS_UNSUPPORTED', context: { store: 'memcached', operation: 'scan' }, message: expect.stringMatching(/lru crawler disabled.*metadump hash.*memcached 1\.6/) as unknown });
    } finally {
      await store.close();
      await own.stop();
    }
  });

  it('an unreachable server makes scan() fail with ESESS_STORE_UNAVAILABLE', async () => {
    const store = await openMemcachedStore(`memcached://127.0.0.1:${await freePort()}`);
    try {
      await expect(store.scan!(null, 10)).rejects.toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'memcached', operation: 'scan' } });
    } finally {
      await store.close();
    }
  });
});

describe('elastic-session reencrypt over Memcached', () => {
  it('re-encrypts every live session under the new key, walking the servers with metadump; the old key can then go', async () => {
    const url = `${server.url}?prefix=${encodeURIComponent(`re-${randomBytes(4).toString('hex')}:`)}`;
    const oldKey = generateEncryptionKey('old');
    const newKey = generateEncryptionKey('new');
    const secrets = ['memcached-reencrypt-secret-0123456789abcdef'];
    const inner = await openMemcachedStore(url);
    try {
      const ids = await sessionsUnderOldKey(inner, oldKey, secrets);

      const result = await runCli(['reencrypt', '--store', url], { env: { ELASTIC_SESSION_ENCRYPTION_KEYS: `${newKey},${oldKey}` } });
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ rewritten: 30, fields: 120, keyId: 'new' });
      await expectAllUnderNewKey(inner, ids, { newKey, oldKey }, secrets);
    } finally {
      await inner.close();
    }
  }, 60_000);
});
