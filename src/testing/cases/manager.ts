import assert from 'node:assert/strict';
import type { SessionManager } from '../../core/manager.js';
import type { SuiteContext } from '../context.js';

export function managerCases({ t, options, when, store, connect, manager }: SuiteContext): void {
  t.describe('through the session manager', () => {
    t.it('keeps every field when 50 requests save distinct fields of one session', async () => {
      const first = manager(store());
      const session = first.create({ data: { start: 0 } });
      await first.save(session);
      const clients = await Promise.all(Array.from({ length: 5 }, () => connect()));
      const managers = clients.map((client) => manager(client));
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

    when(options.capabilities.cas, 'needs the cas capability', 'update() increments one field exactly once per call under contention', async () => {
      const sessions = manager(store(), { maxRetries: 100 });
      const session = sessions.create({ data: { n: 0 } });
      await sessions.save(session);
      const clients = await Promise.all(Array.from({ length: 3 }, () => connect()));
      const managers = clients.map((client) => manager(client, { maxRetries: 100 }));
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (managers[i % managers.length] as SessionManager).update(session.id, (s) => {
            s.set('n', (s.get('n') as number) + 1);
          }),
        ),
      );
      assert.equal((await sessions.load(session.id))?.get('n'), 20);
    });

    t.it('a regenerated session keeps its data under a new ID and the old ID stays dead', async () => {
      const sessions = manager(store());
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
}
