import assert from 'node:assert/strict';
import { storeKey as key, fieldValue as valueOf } from '../fixtures.js';
import type { SuiteContext } from '../context.js';

export function basicCases({ t, options, store, record, connect }: SuiteContext): void {
  t.it('declares a name and exactly the capabilities the suite was told', () => {
    assert.equal(typeof store().name, 'string');
    assert.ok(store().name.length > 0);
    assert.deepEqual({ ...store().capabilities }, { ...options.capabilities });
    assert.equal(typeof store().scan === 'function', options.capabilities.scan, 'scan() exists exactly when the scan capability is declared');
    for (const power of ['readState', 'mergeState', 'readWatermark', 'mergeWatermark'] as const) {
      assert.equal(typeof store()[power] === 'function', options.capabilities.replica, `${power}() exists exactly when the replica capability is declared`);
    }
  });

  t.describe('create and load', () => {
    t.it('load() of an unknown key is null', async () => {
      assert.equal(await store().load(key()), null);
    });

    t.it('create() stores a record that load() returns unchanged, principal stamp included', async () => {
      const k = key();
      const r = record({ a: 1, b: { nested: ['x', 'ü', '🙂'] } }, { userId: 'alice' });
      assert.equal(await store().create(k, r), true);
      const loaded = await store().load(k);
      assert.ok(loaded);
      assert.equal(loaded.createdAt, r.createdAt);
      assert.equal(loaded.lastSeenAt, r.lastSeenAt);
      assert.equal(loaded.idleTimeout, r.idleTimeout);
      assert.equal(loaded.absoluteExpiresAt, r.absoluteExpiresAt);
      assert.equal(loaded.userId, 'alice');
      assert.equal(loaded.userStamp, r.userStamp);
      assert.equal(typeof loaded.version, 'number');
      assert.deepEqual(valueOf(loaded, 'a'), 1);
      assert.deepEqual(valueOf(loaded, 'b'), { nested: ['x', 'ü', '🙂'] });
      assert.equal(loaded.fields.a?.stamp, r.fields.a?.stamp);
    });

    t.it('create() refuses a key that is already taken', async () => {
      const k = key();
      assert.equal(await store().create(k, record({ a: 1 })), true);
      assert.equal(await store().create(k, record({ a: 2 })), false);
      assert.deepEqual(valueOf(await store().load(k), 'a'), 1);
    });

    t.it('create() refuses a malformed record with a typed error', async () => {
      await assert.rejects(store().create(key(), record({}, { userStamp: 'yesterday' })), { code: 'ESESS_INVALID_INPUT' });
      await assert.rejects(store().create(key(), record({}, { createdAt: Number.NaN })), { code: 'ESESS_INVALID_INPUT' });
    });

    t.it('keeps field names that look like object internals as plain data', async () => {
      const k = key();
      await store().create(k, record({ toString: 'a', hasOwnProperty: 'b', valueOf: 'c' }));
      const loaded = await store().load(k);
      assert.equal(valueOf(loaded, 'toString'), 'a');
      assert.equal(valueOf(loaded, 'hasOwnProperty'), 'b');
      assert.equal(Object.keys(loaded?.fields ?? {}).length, 3);
    });

    t.it('round-trips a 256 KiB field and 200 fields', async () => {
      const k = key();
      const big = 'x'.repeat(256 * 1024);
      const many: Record<string, unknown> = { big };
      for (let i = 0; i < 200; i++) many[`f${i}`] = i;
      await store().create(k, record(many));
      const loaded = await store().load(k);
      assert.equal(valueOf(loaded, 'big'), big);
      assert.equal(valueOf(loaded, 'f199'), 199);
      assert.equal(Object.keys(loaded?.fields ?? {}).length, 201);
    });
  });

  t.describe('close()', () => {
    t.it('rejects operations after close() and tolerates a second close()', async () => {
      const closed = await connect();
      await closed.close();
      await assert.rejects(closed.load(key()));
      await assert.rejects(closed.create(key(), record({})));
      await closed.close();
    });
  });
}
