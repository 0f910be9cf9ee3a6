import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { storeKeyOf } from '../../core/ids.js';
import { CHANNELS } from '../../core/telemetry.js';
import type { SuiteContext } from '../context.js';
import { storeKey as key } from '../fixtures.js';

export function corruptCases({ t, options, when, store, fixture, record, stamp, manager }: SuiteContext): void {
  t.describe('corrupt data', () => {
    when(options.corrupts, 'the fixture cannot write unreadable bytes (corrupts)', 'an unreadable stored record loads as null, is counted, and does not throw', async () => {
      const k = key();
      await store().create(k, record({ a: 1 }));
      await fixture().corrupt?.(k);
      let counted = 0;
      const onCorrupt = () => {
        counted++;
      };
      diagnostics.subscribe(CHANNELS.corrupt, onCorrupt);
      try {
        assert.equal(await store().load(k), null);
      } finally {
        diagnostics.unsubscribe(CHANNELS.corrupt, onCorrupt);
      }
      assert.equal(counted, 1);
    });

    t.it('a field holding invalid JSON makes the manager treat the session as absent', async () => {
      const sessions = manager(store());
      const session = sessions.create({ data: { a: 1 } });
      await sessions.save(session);
      await store().apply(storeKeyOf(session.id), { fields: { a: { value: '{"unterminated', stamp: stamp(100) } } });
      assert.equal(await sessions.load(session.id), null);
    });
  });
}
