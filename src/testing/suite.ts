import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { SessionManager } from '../core/manager.js';
import { formatStamp } from '../core/hlc.js';
import { storeKeyOf } from '../core/ids.js';
import { CHANNELS } from '../core/telemetry.js';
import type { SessionStore, StoredField, StoredSession } from '../core/types.js';
import { TOMBSTONE_GRACE_MS } from '../core/types.js';

type Body = () => void | Promise<void>;

/** The test functions of your runner (vitest, jest, node:test wrapped, ...). */
export interface TestRegistrar {
  describe: (name: string, body: () => void) => void;
  it: (name: string, body: Body, timeout?: number) => void;
  beforeEach: (body: Body) => void;
  afterEach: (body: Body) => void;
}

export interface StoreFixture {
  store: SessionStore;
  /** Another store on the same data over its own connection; enables the multi-client cases. */
  connect?: () => Promise<SessionStore>;
  /** Overwrites the stored record of `key` with unreadable bytes; enables the corrupt-data case. */
  corrupt?: (key: string) => Promise<void>;
  cleanup?: () => Promise<void>;
}

export interface ConformanceOptions {
  name: string;
  /** Whether the store reads time from the injected clock; otherwise expiry is tested with real short timeouts. */
  fakeClock: boolean;
  setup: (context: { clock: () => number }) => Promise<StoreFixture>;
}

const SECRET = 'conformance-suite-secret-0123456789abcdef';
const HOUR = 3_600_000;

/**
 * The store contract as tests. Every store runs it against a real server:
 *
 * @example
 * import { describe, it, beforeEach, afterEach } from 'vitest';
 * runStoreConformance({ describe, it, beforeEach, afterEach }, {
 *   name: 'my-store', fakeClock: false, setup: async () => ({ store: myStore({ client }) }),
 * });
 */
export function runStoreConformance(t: TestRegistrar, options: ConformanceOptions): void {
  const { describe, it, beforeEach, afterEach } = t;

  describe(`${options.name} store conformance`, () => {
    let now = Date.now();
    const clock = () => (options.fakeClock ? now : Date.now());
    let fixture: StoreFixture;
    let store: SessionStore;
    const extra: SessionStore[] = [];

    /** Time passing: the fake clock moves; a store on real time waits for real. */
    const advance = async (ms: number) => {
      if (options.fakeClock) now += ms;
      else await new Promise((resolve) => setTimeout(resolve, ms));
    };
    const connect = async (): Promise<SessionStore> => {
      if (!fixture.connect) return store;
      const other = await fixture.connect();
      extra.push(other);
      return other;
    };
    const stamp = (offset = 0) => formatStamp(clock() + offset, 0, randomBytes(4).toString('hex'));
    const record = (fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession => {
      const t0 = clock();
      const stored: Record<string, StoredField> = {};
      for (const [name, value] of Object.entries(fields)) stored[name] = { value: JSON.stringify(value), stamp: stamp() };
      return { createdAt: t0, lastSeenAt: t0, idleTimeout: HOUR, absoluteExpiresAt: t0 + 24 * HOUR, userId: null, version: 1, fields: stored, ...meta };
    };
    const key = () => randomBytes(32).toString('base64url');
    const valueOf = (session: StoredSession | null, field: string): unknown => {
      const stored = session?.fields[field];
      return stored?.value == null ? undefined : JSON.parse(stored.value);
    };
    const manager = (on: SessionStore) => new SessionManager({ store: on, secrets: [SECRET], clock });

    beforeEach(async () => {
      now = Date.now();
      fixture = await options.setup({ clock });
      store = fixture.store;
    });

    afterEach(async () => {
      for (const other of extra.splice(0)) await other.close();
      await store.close();
      await fixture.cleanup?.();
    });

    it('declares its capabilities and a name', () => {
      assert.equal(typeof store.name, 'string');
      assert.ok(store.name.length > 0);
      for (const flag of ['nativeTtl', 'cas', 'userIndex', 'sweep'] as const) assert.equal(typeof store.capabilities[flag], 'boolean');
    });

    describe('create and load', () => {
      it('load() of an unknown key is null', async () => {
        assert.equal(await store.load(key()), null);
      });

      it('create() stores a record that load() returns unchanged', async () => {
        const k = key();
        const r = record({ a: 1, b: { nested: ['x', 'ü', '🙂'] } }, { userId: 'alice' });
        assert.equal(await store.create(k, r), true);
        const loaded = await store.load(k);
        assert.ok(loaded);
        assert.equal(loaded.createdAt, r.createdAt);
        assert.equal(loaded.lastSeenAt, r.lastSeenAt);
        assert.equal(loaded.idleTimeout, r.idleTimeout);
        assert.equal(loaded.absoluteExpiresAt, r.absoluteExpiresAt);
        assert.equal(loaded.userId, 'alice');
        assert.equal(typeof loaded.version, 'number');
        assert.deepEqual(valueOf(loaded, 'a'), 1);
        assert.deepEqual(valueOf(loaded, 'b'), { nested: ['x', 'ü', '🙂'] });
        assert.equal(loaded.fields.a?.stamp, r.fields.a?.stamp);
      });

      it('create() refuses a key that is already taken', async () => {
        const k = key();
        assert.equal(await store.create(k, record({ a: 1 })), true);
        assert.equal(await store.create(k, record({ a: 2 })), false);
        assert.deepEqual(valueOf(await store.load(k), 'a'), 1);
      });

      it('keeps field names that look like object internals as plain data', async () => {
        const k = key();
        await store.create(k, record({ toString: 'a', hasOwnProperty: 'b', valueOf: 'c' }));
        const loaded = await store.load(k);
        assert.equal(valueOf(loaded, 'toString'), 'a');
        assert.equal(valueOf(loaded, 'hasOwnProperty'), 'b');
        assert.equal(Object.keys(loaded?.fields ?? {}).length, 3);
      });

      it('round-trips a 256 KiB field and 200 fields', async () => {
        const k = key();
        const big = 'x'.repeat(256 * 1024);
        const many: Record<string, unknown> = { big };
        for (let i = 0; i < 200; i++) many[`f${i}`] = i;
        await store.create(k, record(many));
        const loaded = await store.load(k);
        assert.equal(valueOf(loaded, 'big'), big);
        assert.equal(valueOf(loaded, 'f199'), 199);
        assert.equal(Object.keys(loaded?.fields ?? {}).length, 201);
      });
    });

    describe('apply()', () => {
      it('never creates a session: a delta to an unknown key is gone', async () => {
        const k = key();
        const result = await store.apply(k, { fields: { a: { value: '1', stamp: stamp() } } });
        assert.equal(result.status, 'gone');
        assert.equal(await store.load(k), null);
      });

      it('writes only the fields in the delta and keeps the others', async () => {
        const k = key();
        await store.create(k, record({ a: 1, b: 2 }));
        const result = await store.apply(k, { fields: { b: { value: '3', stamp: stamp(1) }, c: { value: '"new"', stamp: stamp(1) } } });
        assert.equal(result.status, 'ok');
        const loaded = await store.load(k);
        assert.equal(valueOf(loaded, 'a'), 1);
        assert.equal(valueOf(loaded, 'b'), 3);
        assert.equal(valueOf(loaded, 'c'), 'new');
      });

      it('orders writes of one field by stamp: an older write never overwrites a newer one', async () => {
        const k = key();
        await store.create(k, record({}));
        const t0 = clock();
        const newer = formatStamp(t0 + 10, 0, 'ffffffff');
        const older = formatStamp(t0 + 5, 0, 'ffffffff');
        await store.apply(k, { fields: { f: { value: '"newer"', stamp: newer } } });
        await store.apply(k, { fields: { f: { value: '"older"', stamp: older } } });
        assert.equal(valueOf(await store.load(k), 'f'), 'newer');
      });

      it('breaks stamp ties by the counter and node parts of the stamp', async () => {
        const k = key();
        await store.create(k, record({}));
        const wall = clock() + 10;
        await store.apply(k, { fields: { f: { value: '"b"', stamp: formatStamp(wall, 1, '00000001') } } });
        await store.apply(k, { fields: { f: { value: '"a"', stamp: formatStamp(wall, 0, 'ffffffff') } } });
        await store.apply(k, { fields: { f: { value: '"c"', stamp: formatStamp(wall, 1, '00000000') } } });
        assert.equal(valueOf(await store.load(k), 'f'), 'b');
      });

      it('keeps a deleted field deleted against an older write', async () => {
        const k = key();
        await store.create(k, record({ f: 'x' }));
        // One reference time: on a real clock, stamps taken later would order after the "newer" one.
        const t0 = clock();
        await store.apply(k, { fields: { f: { value: null, stamp: formatStamp(t0 + 10, 0, '00000000') } } });
        assert.equal(valueOf(await store.load(k), 'f'), undefined);
        await store.apply(k, { fields: { f: { value: '"late"', stamp: formatStamp(t0 + 5, 0, '00000000') } } });
        assert.equal(valueOf(await store.load(k), 'f'), undefined);
        await store.apply(k, { fields: { f: { value: '"again"', stamp: formatStamp(t0 + 20, 0, '00000000') } } });
        assert.equal(valueOf(await store.load(k), 'f'), 'again');
      });

      it('raises the version with every write', async () => {
        const k = key();
        await store.create(k, record({}));
        const before = (await store.load(k))?.version ?? 0;
        const first = await store.apply(k, { fields: { a: { value: '1', stamp: stamp(1) } } });
        const second = await store.apply(k, { fields: {}, lastSeenAt: clock() });
        assert.equal(first.status, 'ok');
        assert.equal(second.status, 'ok');
        if (first.status === 'ok' && second.status === 'ok') {
          assert.ok(first.version > before);
          assert.ok(second.version > first.version);
          assert.equal((await store.load(k))?.version, second.version);
        }
      });

      it('compare-and-swap: applies when expectVersion matches and changes nothing when it does not', async () => {
        if (!store.capabilities.cas) return;
        const k = key();
        await store.create(k, record({ n: 0 }));
        const version = (await store.load(k))?.version ?? -1;
        const stale = await store.apply(k, { fields: { n: { value: '1', stamp: stamp(1) } }, expectVersion: version + 7 });
        assert.equal(stale.status, 'conflict');
        assert.equal(valueOf(await store.load(k), 'n'), 0);
        const fresh = await store.apply(k, { fields: { n: { value: '2', stamp: stamp(2) } }, expectVersion: version });
        assert.equal(fresh.status, 'ok');
        assert.equal(valueOf(await store.load(k), 'n'), 2);
      });

      it('keeps the latest lastSeenAt and never moves it back', async () => {
        const k = key();
        const r = record({});
        await store.create(k, r);
        await store.apply(k, { fields: {}, lastSeenAt: r.lastSeenAt + 5000 });
        await store.apply(k, { fields: {}, lastSeenAt: r.lastSeenAt + 1000 });
        assert.equal((await store.load(k))?.lastSeenAt, r.lastSeenAt + 5000);
      });

      it('sets and clears the principal', async () => {
        const k = key();
        await store.create(k, record({}));
        await store.apply(k, { fields: {}, userId: 'bob' });
        assert.equal((await store.load(k))?.userId, 'bob');
        await store.apply(k, { fields: {}, userId: null });
        assert.equal((await store.load(k))?.userId, null);
      });

      it('keeps all of 50 concurrent deltas of distinct fields from separate clients', async () => {
        const k = key();
        await store.create(k, record({ base: true }));
        const clients = await Promise.all(Array.from({ length: 5 }, () => connect()));
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (clients[i % clients.length] as SessionStore).apply(k, { fields: { [`f${i}`]: { value: String(i), stamp: stamp() } } })),
        );
        assert.ok(results.every((result) => result.status === 'ok'));
        const loaded = await store.load(k);
        for (let i = 0; i < 50; i++) assert.equal(valueOf(loaded, `f${i}`), i, `field f${i}`);
        assert.equal(valueOf(loaded, 'base'), true);
      });
    });

    describe('destroy()', () => {
      it('destroys a live session once; load, apply and create then find it gone', async () => {
        const k = key();
        await store.create(k, record({ a: 1 }));
        assert.equal(await store.destroy(k, TOMBSTONE_GRACE_MS), true);
        assert.equal(await store.load(k), null);
        assert.equal((await store.apply(k, { fields: { a: { value: '2', stamp: stamp(1) } } })).status, 'gone');
        assert.equal(await store.create(k, record({ a: 3 })), false, 'the tombstone holds the key');
        assert.equal(await store.load(k), null);
        assert.equal(await store.destroy(k, TOMBSTONE_GRACE_MS), false);
      });

      it('destroy() of an unknown key is false', async () => {
        assert.equal(await store.destroy(key(), TOMBSTONE_GRACE_MS), false);
      });

      it('deltas racing a destroy from other clients never resurrect the session', async () => {
        const k = key();
        await store.create(k, record({ a: 1 }));
        const clients = await Promise.all(Array.from({ length: 4 }, () => connect()));
        const writes = Array.from({ length: 60 }, (_, i) =>
          (clients[i % clients.length] as SessionStore).apply(k, { fields: { [`f${i}`]: { value: String(i), stamp: stamp(i) } }, lastSeenAt: clock() }),
        );
        const destroyed = store.destroy(k, TOMBSTONE_GRACE_MS);
        const late = Array.from({ length: 20 }, (_, i) =>
          (clients[i % clients.length] as SessionStore).apply(k, { fields: { [`late${i}`]: { value: '1', stamp: stamp(1000) } } }),
        );
        await Promise.all([...writes, destroyed, ...late]);
        assert.equal(await destroyed, true);
        assert.equal(await store.load(k), null);
        for (const client of clients) assert.equal(await client.load(k), null);
        assert.equal((await store.apply(k, { fields: { x: { value: '1', stamp: stamp(5000) } } })).status, 'gone');
        assert.equal(await store.load(k), null);
      });
    });

    describe('expiry', () => {
      const short = options.fakeClock ? 60_000 : 1_000;

      it('a session idle longer than its idle timeout is gone', async () => {
        const k = key();
        await store.create(k, record({ a: 1 }, { idleTimeout: short }));
        await advance(short / 2);
        assert.ok(await store.load(k));
        await advance(short);
        assert.equal(await store.load(k), null);
        assert.equal((await store.apply(k, { fields: { a: { value: '2', stamp: stamp(1) } }, lastSeenAt: clock() })).status, 'gone');
        assert.equal(await store.load(k), null);
      }, 20_000);

      it('activity moves the idle deadline', async () => {
        const k = key();
        await store.create(k, record({}, { idleTimeout: short }));
        await advance(short * 0.6);
        assert.equal((await store.apply(k, { fields: {}, lastSeenAt: clock() })).status, 'ok');
        await advance(short * 0.6);
        assert.ok(await store.load(k), 'alive: touched within the idle window');
      }, 20_000);

      it('activity never extends a session past its absolute expiry', async () => {
        const k = key();
        const t0 = clock();
        await store.create(k, record({}, { idleTimeout: short * 10, absoluteExpiresAt: t0 + short }));
        await advance(short * 0.6);
        await store.apply(k, { fields: {}, lastSeenAt: clock() });
        await advance(short * 0.6);
        assert.equal(await store.load(k), null);
      }, 20_000);
    });

    /** A store without a user index must say so for every user call, never answer wrongly. */
    const refusesUserCalls = async (): Promise<void> => {
      const user = `u-${randomBytes(6).toString('hex')}`;
      await store.create(key(), record({}, { userId: user }));
      await assert.rejects(store.listByUser(user), { code: 'ESESS_UNSUPPORTED' });
      await assert.rejects(store.destroyByUser(user, TOMBSTONE_GRACE_MS), { code: 'ESESS_UNSUPPORTED' });
    };

    describe('user index', () => {
      it('lists the live sessions of a user and revokes them all (or refuses without a user index)', async (): Promise<void> => {
        if (!store.capabilities.userIndex) return refusesUserCalls();
        const user = `u-${randomBytes(6).toString('hex')}`;
        const other = `${user}-other`;
        const keys = [key(), key(), key()];
        for (const k of keys) await store.create(k, record({ a: 1 }, { userId: user }));
        const otherKey = key();
        await store.create(otherKey, record({}, { userId: other }));
        const later = key();
        await store.create(later, record({}));
        await store.apply(later, { fields: {}, userId: user });
        keys.push(later);

        const listed = await store.listByUser(user);
        assert.deepEqual(listed.map((summary) => summary.key).sort(), [...keys].sort());
        for (const summary of listed) assert.ok(summary.expiresAt > summary.lastSeenAt - 1 && summary.createdAt > 0);

        assert.equal(await store.destroyByUser(user, TOMBSTONE_GRACE_MS), 4);
        assert.deepEqual(await store.listByUser(user), []);
        for (const k of keys) {
          assert.equal(await store.load(k), null);
          assert.equal((await store.apply(k, { fields: { z: { value: '1', stamp: stamp(1) } } })).status, 'gone');
        }
        assert.equal((await store.listByUser(other)).length, 1);
        assert.ok(await store.load(otherKey));
      });

      it('does not list a session after its principal changes, is destroyed or expires', async () => {
        if (!store.capabilities.userIndex) return refusesUserCalls();
        const user = `u-${randomBytes(6).toString('hex')}`;
        const moved = key();
        const destroyed = key();
        const expiring = key();
        const kept = key();
        for (const k of [moved, destroyed, kept]) await store.create(k, record({}, { userId: user }));
        await store.create(expiring, record({}, { userId: user, idleTimeout: options.fakeClock ? 60_000 : 1_000 }));
        await store.apply(moved, { fields: {}, userId: 'someone-else' });
        await store.destroy(destroyed, TOMBSTONE_GRACE_MS);
        await advance(options.fakeClock ? 120_000 : 1_500);
        const listed = await store.listByUser(user);
        assert.deepEqual(listed.map((summary) => summary.key), [kept]);
      }, 20_000);

      it('refuses nothing and lists nothing for a user without sessions', async () => {
        if (!store.capabilities.userIndex) return refusesUserCalls();
        assert.deepEqual(await store.listByUser(`nobody-${randomBytes(6).toString('hex')}`), []);
        assert.equal(await store.destroyByUser(`nobody-${randomBytes(6).toString('hex')}`, TOMBSTONE_GRACE_MS), 0);
      });
    });

    describe('sweep()', () => {
      it('removes expired sessions and dead tombstones and keeps live sessions (or removes nothing without sweeping)', async () => {
        if (!store.capabilities.sweep) {
          const live = key();
          await store.create(live, record({ a: 1 }));
          assert.equal(await store.sweep(10), 0);
          assert.ok(await store.load(live));
          return;
        }
        const short = options.fakeClock ? 60_000 : 1_000;
        const expired = Array.from({ length: 5 }, () => key());
        for (const k of expired) await store.create(k, record({ a: 1 }, { idleTimeout: short, absoluteExpiresAt: clock() + short }));
        const live = key();
        await store.create(live, record({ a: 1 }));
        const destroyed = key();
        await store.create(destroyed, record({}, { absoluteExpiresAt: clock() + short }));
        await store.destroy(destroyed, 0);
        await advance(short * 1.5);
        let removed = 0;
        for (let batch = await store.sweep(2); batch > 0; batch = await store.sweep(2)) {
          assert.ok(batch <= 2, 'a batch respects the limit');
          removed += batch;
        }
        assert.ok(removed >= 5, `removed ${removed}`);
        assert.ok(await store.load(live));
        for (const k of expired) assert.equal(await store.load(k), null);
      }, 20_000);
    });

    describe('scan()', () => {
      it('walks every live session, in pages of at most `limit`, skipping destroyed and expired ones', async () => {
        const scan = store.scan?.bind(store);
        if (typeof scan !== 'function') return;
        const short = options.fakeClock ? 60_000 : 1_000;
        const live = Array.from({ length: 25 }, () => key());
        for (const k of live) await store.create(k, record({ a: 1 }, { userId: k === live[0] ? `u-${randomBytes(6).toString('hex')}` : null }));
        const destroyed = key();
        await store.create(destroyed, record({ a: 1 }));
        await store.destroy(destroyed, TOMBSTONE_GRACE_MS);
        const expired = key();
        await store.create(expired, record({ a: 1 }, { idleTimeout: short, absoluteExpiresAt: clock() + short }));
        await advance(short * 1.5);

        // The store may hold records of other cases (a shared schema or server): count only ours.
        const seen = new Map<string, number>();
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page: { keys: string[]; cursor: string | null } = await scan(cursor, 7);
          assert.ok(Array.isArray(page.keys) && page.keys.length <= 7, `a page holds at most the limit (got ${page.keys.length})`);
          assert.ok(page.cursor === null || typeof page.cursor === 'string');
          for (const k of page.keys) seen.set(k, (seen.get(k) ?? 0) + 1);
          cursor = page.cursor;
          assert.ok(++pages < 10_000, 'the walk ends');
        } while (cursor !== null);
        // The contract allows a key twice (Redis SCAN repeats keys when the keyspace shrinks meanwhile), never a miss.
        for (const k of live) assert.ok((seen.get(k) ?? 0) >= 1, 'every live session is returned');
        assert.equal(seen.has(destroyed), false, 'a destroyed session is not returned');
        assert.equal(seen.has(expired), false, 'an expired session is not returned');
      }, 20_000);
    });

    describe('corrupt data', () => {
      it('an unreadable stored record loads as null, is counted, and does not throw', async () => {
        if (!fixture.corrupt) return;
        const k = key();
        await store.create(k, record({ a: 1 }));
        await fixture.corrupt(k);
        let counted = 0;
        const onCorrupt = () => {
          counted++;
        };
        diagnostics.subscribe(CHANNELS.corrupt, onCorrupt);
        try {
          assert.equal(await store.load(k), null);
        } finally {
          diagnostics.unsubscribe(CHANNELS.corrupt, onCorrupt);
        }
        assert.equal(counted, 1);
      });

      it('a field holding invalid JSON makes the manager treat the session as absent', async () => {
        const sessions = manager(store);
        const session = sessions.create({ data: { a: 1 } });
        await sessions.save(session);
        await store.apply(storeKeyOf(session.id), { fields: { a: { value: '{"unterminated', stamp: stamp(100) } } });
        assert.equal(await sessions.load(session.id), null);
      });
    });

    describe('through the session manager', () => {
      it('keeps every field when 50 requests on separate clients save distinct fields of one session', async () => {
        const first = manager(store);
        const session = first.create({ data: { start: 0 } });
        await first.save(session);
        const clients = await Promise.all(Array.from({ length: 5 }, () => connect()));
        const managers = clients.map(manager);
        const loaded = await Promise.all(Array.from({ length: 50 }, (_, i) => (managers[i % managers.length] as SessionManager).load(session.id)));
        await Promise.all(
          loaded.map((copy, i) => {
            assert.ok(copy);
            copy.set(`field${i}`, i);
            return (managers[i % managers.length] as SessionManager).save(copy);
          }),
        );
        const final = await first.load(session.id);
        assert.ok(final);
        for (let i = 0; i < 50; i++) assert.equal(final.get(`field${i}`), i);
        assert.equal(final.get('start'), 0);
      });

      it('update() increments one field exactly once per call under contention', async () => {
        if (!store.capabilities.cas) return;
        const sessions = new SessionManager({ store, secrets: [SECRET], clock, maxRetries: 100 });
        const session = sessions.create({ data: { n: 0 } });
        await sessions.save(session);
        const clients = await Promise.all(Array.from({ length: 3 }, () => connect()));
        const managers = clients.map((client) => new SessionManager({ store: client, secrets: [SECRET], clock, maxRetries: 100 }));
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (managers[i % managers.length] as SessionManager).update(session.id, (s) => {
              s.set('n', (s.get('n') as number) + 1);
            }),
          ),
        );
        assert.equal((await sessions.load(session.id))?.get('n'), 20);
      });

      it('a regenerated session keeps its data under a new ID and the old ID stays dead', async () => {
        const sessions = manager(store);
        const session = sessions.create({ data: { cart: ['a'] } });
        await sessions.save(session);
        const oldId = session.id;
        const stale = await sessions.load(oldId);
        await sessions.regenerate(session);
        assert.notEqual(session.id, oldId);
        assert.equal(await sessions.load(oldId), null);
        assert.deepEqual((await sessions.load(session.id))?.get('cart'), ['a']);
        assert.ok(stale);
        stale.set('late', true);
        await assert.rejects(sessions.save(stale), { code: 'ESESS_GONE' });
        assert.equal(await sessions.load(oldId), null);
        assert.equal((await sessions.load(session.id))?.get('late'), undefined, 'a write to the old ID is never forwarded');
      });
    });

    describe('close()', () => {
      it('rejects operations after close() and tolerates a second close()', async () => {
        const closed = await connect();
        await closed.close();
        await assert.rejects(closed.load(key()));
        await assert.rejects(closed.create(key(), record({})));
        await closed.close();
      });
    });
  });
}
