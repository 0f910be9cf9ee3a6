import assert from 'node:assert/strict';
import { formatStamp } from '../../core/hlc.js';
import type { SessionStore } from '../../core/types.js';
import type { SuiteContext } from '../context.js';
import { storeKey as key, fieldValue as valueOf } from '../fixtures.js';

export function applyCases({ t, options, when, store, record, stamp, clock, connect }: SuiteContext): void {
  const multi = 'needs a second client (multiClient)';
  t.describe('apply()', () => {
    t.it('never creates a session: a delta to an unknown key is gone', async () => {
      const k = key();
      const result = await store().apply(k, { fields: { a: { value: '1', stamp: stamp() } } });
      assert.equal(result.status, 'gone');
      assert.equal(await store().load(k), null);
    });

    t.it('writes only the fields in the delta and keeps the others', async () => {
      const k = key();
      await store().create(k, record({ a: 1, b: 2 }));
      const result = await store().apply(k, { fields: { b: { value: '3', stamp: stamp(1) }, c: { value: '"new"', stamp: stamp(1) } } });
      assert.equal(result.status, 'ok');
      const loaded = await store().load(k);
      assert.equal(valueOf(loaded, 'a'), 1);
      assert.equal(valueOf(loaded, 'b'), 3);
      assert.equal(valueOf(loaded, 'c'), 'new');
    });

    t.it('orders writes of one field by stamp: an older write never overwrites a newer one', async () => {
      const k = key();
      await store().create(k, record({}));
      const t0 = clock();
      await store().apply(k, { fields: { f: { value: '"newer"', stamp: formatStamp(t0 + 10, 0, 'ffffffff') } } });
      await store().apply(k, { fields: { f: { value: '"older"', stamp: formatStamp(t0 + 5, 0, 'ffffffff') } } });
      assert.equal(valueOf(await store().load(k), 'f'), 'newer');
    });

    t.it('breaks stamp ties by the counter and node parts of the stamp', async () => {
      const k = key();
      await store().create(k, record({}));
      const wall = clock() + 10;
      await store().apply(k, { fields: { f: { value: '"b"', stamp: formatStamp(wall, 1, '00000001') } } });
      await store().apply(k, { fields: { f: { value: '"a"', stamp: formatStamp(wall, 0, 'ffffffff') } } });
      await store().apply(k, { fields: { f: { value: '"c"', stamp: formatStamp(wall, 1, '00000000') } } });
      assert.equal(valueOf(await store().load(k), 'f'), 'b');
    });

    t.it('keeps a deleted field deleted against an older write', async () => {
      const k = key();
      await store().create(k, record({ f: 'x' }));
      // One reference time: on a real clock, stamps taken later would order after the "newer" one.
      const t0 = clock();
      await store().apply(k, { fields: { f: { value: null, stamp: formatStamp(t0 + 10, 0, '00000000') } } });
      assert.equal(valueOf(await store().load(k), 'f'), undefined);
      await store().apply(k, { fields: { f: { value: '"late"', stamp: formatStamp(t0 + 5, 0, '00000000') } } });
      assert.equal(valueOf(await store().load(k), 'f'), undefined);
      await store().apply(k, { fields: { f: { value: '"again"', stamp: formatStamp(t0 + 20, 0, '00000000') } } });
      assert.equal(valueOf(await store().load(k), 'f'), 'again');
    });

    t.it('raises the version with every write', async () => {
      const k = key();
      await store().create(k, record({}));
      const before = (await store().load(k))?.version ?? 0;
      const first = await store().apply(k, { fields: { a: { value: '1', stamp: stamp(1) } } });
      const second = await store().apply(k, { fields: {}, lastSeenAt: clock() });
      assert.equal(first.status, 'ok');
      assert.equal(second.status, 'ok');
      if (first.status === 'ok' && second.status === 'ok') {
        assert.ok(first.version > before);
        assert.ok(second.version > first.version);
        assert.equal((await store().load(k))?.version, second.version);
      }
    });

    when(options.capabilities.cas, 'needs the cas capability', 'compare-and-swap: applies when expectVersion matches and changes nothing when it does not', async () => {
      const k = key();
      await store().create(k, record({ n: 0 }));
      const version = (await store().load(k))?.version ?? -1;
      const stale = await store().apply(k, { fields: { n: { value: '1', stamp: stamp(1) } }, expectVersion: version + 7 });
      assert.equal(stale.status, 'conflict');
      assert.equal(valueOf(await store().load(k), 'n'), 0);
      const fresh = await store().apply(k, { fields: { n: { value: '2', stamp: stamp(2) } }, expectVersion: version });
      assert.equal(fresh.status, 'ok');
      assert.equal(valueOf(await store().load(k), 'n'), 2);
    });

    t.it('keeps the latest lastSeenAt and never moves it back', async () => {
      const k = key();
      const r = record({});
      await store().create(k, r);
      await store().apply(k, { fields: {}, lastSeenAt: r.lastSeenAt + 5000 });
      await store().apply(k, { fields: {}, lastSeenAt: r.lastSeenAt + 1000 });
      assert.equal((await store().load(k))?.lastSeenAt, r.lastSeenAt + 5000);
    });

    t.it('sets and clears the principal, a register ordered by its own stamp', async () => {
      const k = key();
      await store().create(k, record({}));
      const bob = stamp(10);
      await store().apply(k, { fields: {}, userId: 'bob', userStamp: bob });
      assert.equal((await store().load(k))?.userId, 'bob');
      assert.equal((await store().load(k))?.userStamp, bob);
      await store().apply(k, { fields: {}, userId: 'carol', userStamp: stamp(5) });
      assert.equal((await store().load(k))?.userId, 'bob', 'an older principal write loses');
      const cleared = stamp(20);
      await store().apply(k, { fields: {}, userId: null, userStamp: cleared });
      assert.equal((await store().load(k))?.userId, null);
      assert.equal((await store().load(k))?.userStamp, cleared);
    });

    t.it('refuses a principal write without a stamp, and a malformed stamp, with a typed error', async () => {
      const k = key();
      await store().create(k, record({}));
      await assert.rejects(store().apply(k, { fields: {}, userId: 'bob' }), { code: 'ESESS_INVALID_INPUT' });
      await assert.rejects(store().apply(k, { fields: {}, userId: 'bob', userStamp: 'now' }), { code: 'ESESS_INVALID_INPUT' });
      assert.equal((await store().load(k))?.userId, null);
    });

    const fiftyDeltas = (clientCount: number) => async () => {
      const k = key();
      await store().create(k, record({ base: true }));
      const clients = clientCount === 1 ? [store()] : await Promise.all(Array.from({ length: clientCount }, () => connect()));
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (clients[i % clients.length] as SessionStore).apply(k, { fields: { [`f${i}`]: { value: String(i), stamp: stamp() } } })),
      );
      assert.ok(results.every((result) => result.status === 'ok'));
      const loaded = await store().load(k);
      for (let i = 0; i < 50; i++) assert.equal(valueOf(loaded, `f${i}`), i, `field f${i}`);
      assert.equal(valueOf(loaded, 'base'), true);
    };
    t.it('keeps all of 50 concurrent deltas of distinct fields on one client', fiftyDeltas(1));
    when(options.multiClient, multi, 'keeps all of 50 concurrent deltas of distinct fields from separate clients', fiftyDeltas(5));
  });
}
