import assert from 'node:assert/strict';
import type { SuiteContext } from '../context.js';
import { storeKey as key } from '../fixtures.js';

export function expiryCases({ t, options, store, record, stamp, clock, advance }: SuiteContext): void {
  const short = options.fakeClock ? 60_000 : 1_000;
  t.describe('expiry', () => {
    t.it('a session idle longer than its idle timeout is gone', async () => {
      const k = key();
      await store().create(k, record({ a: 1 }, { idleTimeout: short }));
      await advance(short / 2);
      assert.ok(await store().load(k));
      await advance(short);
      assert.equal(await store().load(k), null);
      assert.equal((await store().apply(k, { fields: { a: { value: '2', stamp: stamp(1) } }, lastSeenAt: clock() })).status, 'gone');
      assert.equal(await store().load(k), null);
    }, 20_000);

    t.it('activity moves the idle deadline', async () => {
      const k = key();
      await store().create(k, record({}, { idleTimeout: short }));
      await advance(short * 0.6);
      assert.equal((await store().apply(k, { fields: {}, lastSeenAt: clock() })).status, 'ok');
      await advance(short * 0.6);
      assert.ok(await store().load(k), 'alive: touched within the idle window');
    }, 20_000);

    t.it('activity never extends a session past its absolute expiry', async () => {
      const k = key();
      const t0 = clock();
      await store().create(k, record({}, { idleTimeout: short * 10, absoluteExpiresAt: t0 + short }));
      await advance(short * 0.6);
      await store().apply(k, { fields: {}, lastSeenAt: clock() });
      await advance(short * 0.6);
      assert.equal(await store().load(k), null);
    }, 20_000);
  });
}
