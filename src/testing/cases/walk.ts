import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TOMBSTONE_GRACE_MS } from '../../core/types.js';
import type { SuiteContext } from '../context.js';
import { storeKey as key } from '../fixtures.js';

export function walkCases({ t, options, when, store, record, clock, advance }: SuiteContext): void {
  const short = options.fakeClock ? 60_000 : 1_000;
  const { sweep, scan } = options.capabilities;

  t.describe('sweep()', () => {
    if (!sweep) t.it('a store that does not sweep removes nothing', async () => {
      const live = key();
      await store().create(live, record({ a: 1 }));
      assert.equal(await store().sweep(10), 0);
      assert.ok(await store().load(live));
    });

    when(sweep, 'needs the sweep capability', 'removes expired sessions and dead tombstones and keeps live sessions, in batches of at most the limit', async () => {
      const expired = Array.from({ length: 5 }, () => key());
      for (const k of expired) await store().create(k, record({ a: 1 }, { idleTimeout: short, absoluteExpiresAt: clock() + short }));
      const live = key();
      await store().create(live, record({ a: 1 }));
      const destroyed = key();
      await store().create(destroyed, record({}, { absoluteExpiresAt: clock() + short }));
      await store().destroy(destroyed, 0);
      await advance(short * 1.5);
      let removed = 0;
      for (let batch = await store().sweep(2); batch > 0; batch = await store().sweep(2)) {
        assert.ok(batch <= 2, 'a batch respects the limit');
        removed += batch;
      }
      assert.ok(removed >= 5, `removed ${removed}`);
      assert.ok(await store().load(live));
      for (const k of expired) assert.equal(await store().load(k), null);
    }, 20_000);
  });

  t.describe('sweep() limits', () => {
    when(sweep, 'needs the sweep capability', 'sweep() refuses a negative or fractional limit with a typed error, and removes nothing with 0', async () => {
      await assert.rejects(store().sweep(-1), { code: 'ESESS_INVALID_INPUT' });
      await assert.rejects(store().sweep(1.5), { code: 'ESESS_INVALID_INPUT' });
      assert.equal(await store().sweep(0), 0);
    });
  });

  t.describe('scan()', () => {
    when(scan, 'needs the scan capability', 'walks every live session, in pages of at most `limit`, skipping destroyed and expired ones', async () => {
      const walk = store().scan?.bind(store());
      assert.ok(walk, 'scan() exists');
      const live = Array.from({ length: 25 }, () => key());
      for (const k of live) await store().create(k, record({ a: 1 }, { userId: k === live[0] ? `u-${randomBytes(6).toString('hex')}` : null }));
      const destroyed = key();
      await store().create(destroyed, record({ a: 1 }));
      await store().destroy(destroyed, TOMBSTONE_GRACE_MS);
      const expired = key();
      await store().create(expired, record({ a: 1 }, { idleTimeout: short, absoluteExpiresAt: clock() + short }));
      await advance(short * 1.5);

      // The store may hold records of other cases (a shared schema or server): count only ours.
      const seen = new Map<string, number>();
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { keys: string[]; cursor: string | null } = await walk(cursor, 7);
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

    when(scan, 'needs the scan capability', 'scan() refuses a limit that is not a positive integer', async () => {
      await assert.rejects(store().scan?.(null, 0) ?? Promise.resolve(), { code: 'ESESS_INVALID_INPUT' });
      await assert.rejects(store().scan?.(null, 1.5) ?? Promise.resolve(), { code: 'ESESS_INVALID_INPUT' });
    });
  });
}
