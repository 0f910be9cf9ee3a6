import { SessionManager } from '../core/manager.js';
import type { SessionStore } from '../core/types.js';
import { applyCases } from './cases/apply.js';
import { basicCases } from './cases/basic.js';
import { corruptCases } from './cases/corrupt.js';
import { destroyCases } from './cases/destroy.js';
import { expiryCases } from './cases/expiry.js';
import { managerCases } from './cases/manager.js';
import { modelCases } from './cases/model.js';
import { replicaCases } from './cases/replica.js';
import { userCases } from './cases/users.js';
import { walkCases } from './cases/walk.js';
import type { ConformanceOptions, StoreFixture, SuiteContext, TestRegistrar } from './context.js';
import { SECRET } from './context.js';
import { stampAt, storedRecord } from './fixtures.js';

/**
 * The store contract as tests. Every store runs it against a real server; a case the store's
 * declared capabilities rule out is registered as skipped (by name), never passed silently:
 *
 * @example
 * import { describe, it, beforeEach, afterEach } from 'vitest';
 * runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
 *   name: 'my-store', fakeClock: false, multiClient: true, corrupts: false,
 *   capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: false, scan: true, replica: true },
 *   setup: async () => ({ store: myStore({ client }), connect: async () => myStore({ client: await newClient() }) }),
 * });
 */
export function runStoreConformance(t: TestRegistrar, options: ConformanceOptions): void {
  t.describe(`${options.name} store conformance`, () => {
    let now = Date.now();
    const clock = () => (options.fakeClock ? now : Date.now());
    let fixture: StoreFixture | undefined;
    const extra: SessionStore[] = [];
    const current = (): StoreFixture => {
      if (!fixture) throw new Error('the store fixture is set up in beforeEach');
      return fixture;
    };

    const context: SuiteContext = {
      t,
      options,
      when: (enabled, reason, name, body, timeout) => (enabled ? t.it(name, body, timeout) : t.skip(`${name} [skipped: ${reason}]`, body)),
      store: () => current().store,
      fixture: current,
      connect: async () => {
        const { connect, store } = current();
        if (!connect) return store;
        const other = await connect();
        extra.push(other);
        return other;
      },
      clock,
      advance: async (ms) => {
        if (options.fakeClock) now += ms;
        else await new Promise((resolve) => setTimeout(resolve, ms));
      },
      stamp: (offset = 0) => stampAt(clock() + offset),
      record: (fields = {}, meta = {}) => storedRecord(fields, meta, clock()),
      manager: (on, extraOptions = {}) => new SessionManager({ store: on, secrets: [SECRET], clock, ...extraOptions }),
    };

    t.beforeEach(async () => {
      now = Date.now();
      fixture = await options.setup({ clock });
      if (options.multiClient && !fixture.connect) throw new Error(`${options.name}: multiClient is declared but the fixture has no connect()`);
      if (options.corrupts && !fixture.corrupt) throw new Error(`${options.name}: corrupts is declared but the fixture has no corrupt()`);
    });

    t.afterEach(async () => {
      for (const other of extra.splice(0)) await other.close();
      await fixture?.store.close();
      await fixture?.cleanup?.();
      fixture = undefined;
    });

    basicCases(context);
    applyCases(context);
    destroyCases(context);
    expiryCases(context);
    userCases(context);
    walkCases(context);
    corruptCases(context);
    managerCases(context);
    replicaCases(context);
    modelCases(context);
  });
}
