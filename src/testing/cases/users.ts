import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TOMBSTONE_GRACE_MS } from '../../core/types.js';
import type { SuiteContext } from '../context.js';
import { storeKey as key } from '../fixtures.js';

export function userCases({ t, options, when, store, record, stamp, advance }: SuiteContext): void {
  const indexed = options.capabilities.userIndex;
  const reason = 'needs the userIndex capability';
  const user = () => `u-${randomBytes(6).toString('hex')}`;

  t.describe('user index', () => {
    if (!indexed) t.it('a store without a user index refuses every user call, never answers wrongly', async () => {
      const u = user();
      await store().create(key(), record({}, { userId: u }));
      await assert.rejects(store().listByUser(u), { code: 'ESESS_UNSUPPORTED' });
      await assert.rejects(store().destroyByUser(u, TOMBSTONE_GRACE_MS), { code: 'ESESS_UNSUPPORTED' });
    });

    when(indexed, reason, 'lists the live sessions of a user and revokes them all', async () => {
      const u = user();
      const other = `${u}-other`;
      const keys = [key(), key(), key()];
      for (const k of keys) await store().create(k, record({ a: 1 }, { userId: u }));
      const otherKey = key();
      await store().create(otherKey, record({}, { userId: other }));
      const later = key();
      await store().create(later, record({}));
      await store().apply(later, { fields: {}, userId: u, userStamp: stamp(1) });
      keys.push(later);

      const listed = await store().listByUser(u);
      assert.deepEqual(listed.map((summary) => summary.key).sort(), [...keys].sort());
      for (const summary of listed) assert.ok(summary.expiresAt > summary.lastSeenAt - 1 && summary.createdAt > 0);

      assert.equal(await store().destroyByUser(u, TOMBSTONE_GRACE_MS, stamp(2)), 4);
      assert.deepEqual(await store().listByUser(u), []);
      for (const k of keys) {
        assert.equal(await store().load(k), null);
        assert.equal((await store().apply(k, { fields: { z: { value: '1', stamp: stamp(3) } } })).status, 'gone');
      }
      assert.equal((await store().listByUser(other)).length, 1);
      assert.ok(await store().load(otherKey));
    });

    when(indexed, reason, 'does not list a session after its principal changes, is destroyed or expires', async () => {
      const u = user();
      const moved = key();
      const destroyed = key();
      const expiring = key();
      const kept = key();
      for (const k of [moved, destroyed, kept]) await store().create(k, record({}, { userId: u }));
      await store().create(expiring, record({}, { userId: u, idleTimeout: options.fakeClock ? 60_000 : 1_000 }));
      await store().apply(moved, { fields: {}, userId: 'someone-else', userStamp: stamp(1) });
      await store().destroy(destroyed, TOMBSTONE_GRACE_MS, stamp(2));
      await advance(options.fakeClock ? 120_000 : 1_500);
      const listed = await store().listByUser(u);
      assert.deepEqual(listed.map((summary) => summary.key), [kept]);
    }, 20_000);

    when(indexed, reason, 'refuses nothing and lists nothing for a user without sessions', async () => {
      assert.deepEqual(await store().listByUser(`nobody-${randomBytes(6).toString('hex')}`), []);
      assert.equal(await store().destroyByUser(`nobody-${randomBytes(6).toString('hex')}`, TOMBSTONE_GRACE_MS), 0);
    });
  });
}
