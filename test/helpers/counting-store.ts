import type { SessionStore } from '../../src/core/types.js';

export type StoreCalls = Record<string, number>;

/**
 * Counts the calls that reach a real store, and can make it fail like a store whose server is
 * down. It forwards everything else unchanged.
 */
export function countingStore(inner: SessionStore): { store: SessionStore; calls: StoreCalls; deltas: Parameters<SessionStore['apply']>[1][]; down: (isDown: boolean) => void } {
  const calls: StoreCalls = {};
  const deltas: Parameters<SessionStore['apply']>[1][] = [];
  let isDown = false;
  const count = (name: string) => {
    calls[name] = (calls[name] ?? 0) + 1;
    if (isDown) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  };
  const store: SessionStore = {
    name: inner.name,
    capabilities: inner.capabilities,
    load: async (key) => (count('load'), inner.load(key)),
    create: async (key, session) => (count('create'), inner.create(key, session)),
    apply: async (key, delta) => {
      count('apply');
      deltas.push(delta);
      return inner.apply(key, delta);
    },
    destroy: async (key, grace) => (count('destroy'), inner.destroy(key, grace)),
    listByUser: async (userId) => (count('listByUser'), inner.listByUser(userId)),
    destroyByUser: async (userId, grace) => (count('destroyByUser'), inner.destroyByUser(userId, grace)),
    sweep: async (limit) => (count('sweep'), inner.sweep(limit)),
    close: () => inner.close(),
  };
  return { store, calls, deltas, down: (value) => (isDown = value) };
}

export function total(calls: StoreCalls): number {
  return Object.values(calls).reduce((sum, n) => sum + n, 0);
}
