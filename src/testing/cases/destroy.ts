import assert from 'node:assert/strict';
import type { SessionStore } from '../../core/types.js';
import { TOMBSTONE_GRACE_MS } from '../../core/types.js';
import type { SuiteContext } from '../context.js';
import { storeKey as key } from '../fixtures.js';

export function destroyCases({ t, options, when, store, record, stamp, clock, connect }: SuiteContext): void {
  t.describe('destroy()', () => {
    t.it('destroys a live session once; load, apply and create then find it gone', async () => {
      const k = key();
      await store().create(k, record({ a: 1 }));
      assert.equal(await store().destroy(k, TOMBSTONE_GRACE_MS, stamp()), true);
      assert.equal(await store().load(k), null);
      assert.equal((await store().apply(k, { fields: { a: { value: '2', stamp: stamp(1) } } })).status, 'gone');
      assert.equal(await store().create(k, record({ a: 3 })), false, 'the tombstone holds the key');
      assert.equal(await store().load(k), null);
      assert.equal(await store().destroy(k, TOMBSTONE_GRACE_MS, stamp(2)), false);
    });

    t.it('destroy() of an unknown key is false', async () => {
      assert.equal(await store().destroy(key(), TOMBSTONE_GRACE_MS), false);
    });

    const racing = (clientCount: number) => async () => {
      const k = key();
      await store().create(k, record({ a: 1 }));
      const clients = clientCount === 1 ? [store()] : await Promise.all(Array.from({ length: clientCount }, () => connect()));
      const writes = Array.from({ length: 60 }, (_, i) =>
        (clients[i % clients.length] as SessionStore).apply(k, { fields: { [`f${i}`]: { value: String(i), stamp: stamp(i) } }, lastSeenAt: clock() }),
      );
      const destroyed = store().destroy(k, TOMBSTONE_GRACE_MS, stamp());
      const late = Array.from({ length: 20 }, (_, i) =>
        (clients[i % clients.length] as SessionStore).apply(k, { fields: { [`late${i}`]: { value: '1', stamp: stamp(1000) } } }),
      );
      await Promise.all([...writes, destroyed, ...late]);
      assert.equal(await destroyed, true);
      assert.equal(await store().load(k), null);
      for (const client of clients) assert.equal(await client.load(k), null);
      assert.equal((await store().apply(k, { fields: { x: { value: '1', stamp: stamp(5000) } } })).status, 'gone');
      assert.equal(await store().load(k), null);
    };
    t.it('deltas racing a destroy on one client never resurrect the session', racing(1));
    when(options.multiClient, 'needs a second client (multiClient)', 'deltas racing a destroy from other clients never resurrect the session', racing(4));
  });
}
