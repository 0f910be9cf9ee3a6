import diagnostics from 'node:diagnostics_channel';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import type { SessionStore, StoredSession } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { memoryStore } from '../src/stores/memory.js';
import { NEAR_CACHE_CHANNELS, nearCache } from '../src/stores/near-cache.js';
import type { InvalidationSink, InvalidationSource, NearCacheEvent } from '../src/stores/near-cache.js';
import { runStoreConformance } from '../src/testing/index.js';
import { fieldValue, stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { countingStore } from './helpers/counting-store.js';

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'near-cache over memory',
  fakeClock: true,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
  multiClient: false,
  corrupts: false,
  setup: async ({ clock }) => ({ store: nearCache(memoryStore({ clock }), { clock }) }),
});

const SECRET = 'near-cache-tests-secret-0123456789abcdef';
const MINUTE = 60_000;

/** A clock the test moves. */
function fakeClock(): { clock: () => number; advance: (ms: number) => void } {
  let now = Date.now();
  return { clock: () => now, advance: (ms) => void (now += ms) };
}

/** An invalidation source the test drives by hand. */
function manualSource(): { source: InvalidationSource; sink: () => InvalidationSink; closed: () => boolean } {
  let sink: InvalidationSink | undefined;
  let closed = false;
  return {
    source: {
      name: 'manual',
      start: (given) => void (sink = given),
      close: async () => void (closed = true),
    },
    sink: () => {
      if (!sink) throw new Error('the near-cache did not start its source');
      return sink;
    },
    closed: () => closed,
  };
}

/**
 * A store whose loads read the inner store at once but answer only when the test releases them:
 * a load in flight, made to straddle a write.
 */
function heldLoads(inner: SessionStore): { store: SessionStore; hold: () => void; release: () => void; reads: () => number } {
  let held: Promise<void> | null = null;
  let releaseHeld: () => void = () => {};
  let reads = 0;
  const load = async (key: string) => {
    reads++;
    const gate = held;
    const record = await inner.load(key);
    if (gate) await gate;
    return record;
  };
  const store = new Proxy(inner, {
    get: (target, property) => {
      if (property === 'load') return load;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    store,
    hold: () => {
      held = new Promise<void>((resolve) => (releaseHeld = resolve));
    },
    release: () => {
      held = null;
      releaseHeld();
    },
    reads: () => reads,
  };
}

/** The events published on the near-cache channel while `fn` runs. */
async function cacheEvents(fn: () => Promise<unknown>): Promise<NearCacheEvent[]> {
  const events: NearCacheEvent[] = [];
  const listener = (message: unknown) => void events.push(message as NearCacheEvent);
  diagnostics.subscribe(NEAR_CACHE_CHANNELS.event, listener);
  try {
    await fn();
  } finally {
    diagnostics.unsubscribe(NEAR_CACHE_CHANNELS.event, listener);
  }
  return events;
}

const field = (value: unknown, at = Date.now()) => ({ value: JSON.stringify(value), stamp: stampAt(at) });

describe('near-cache: hits', () => {
  it('a hit costs no call to the inner store', async () => {
    const counted = countingStore(memoryStore());
    const store = nearCache(counted.store);
    const k = storeKey();
    await store.create(k, storedRecord({ cart: ['a'] }));
    await store.load(k);
    const loadsAfterMiss = counted.calls.load;
    for (let i = 0; i < 10; i++) expect(fieldValue(await store.load(k), 'cart')).toEqual(['a']);
    expect(counted.calls.load).toBe(loadsAfterMiss);
    expect(loadsAfterMiss).toBe(1);
    expect(store.stats).toMatchObject({ hits: 10, misses: 1, entries: 1 });
  });

  it('every load gets its own copy: changing one changes neither the cache nor the next load', async () => {
    const store = nearCache(memoryStore());
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }));
    const first = (await store.load(k)) as StoredSession;
    const second = (await store.load(k)) as StoredSession;
    expect(second).not.toBe(first);
    first.fields.a = field(2);
    first.fields.b = field(3);
    first.userId = 'mallory';
    const third = await store.load(k);
    expect(fieldValue(third, 'a')).toBe(1);
    expect(third?.fields.b).toBeUndefined();
    expect(third?.userId).toBeNull();
    expect(store.stats.hits).toBe(2);
  });

  it('concurrent misses of one key share one load of the inner store', async () => {
    const held = heldLoads(memoryStore());
    const store = nearCache(held.store);
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }));
    held.hold();
    const loads = Array.from({ length: 5 }, () => store.load(k));
    held.release();
    const records = await Promise.all(loads);
    expect(held.reads()).toBe(1);
    expect(new Set(records).size).toBe(5);
    expect(records.every((record) => fieldValue(record, 'a') === 1)).toBe(true);
  });

  it('a cached record past its idle deadline is never served, whatever the inner store says', async () => {
    const { clock, advance } = fakeClock();
    // The inner store's clock stands still: it would serve the record forever.
    const frozen = clock();
    const counted = countingStore(memoryStore({ clock: () => frozen }));
    const store = nearCache(counted.store, { clock });
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }, { idleTimeout: MINUTE }, clock()));
    await store.load(k);
    await store.load(k);
    expect(counted.calls.load).toBe(1);
    advance(MINUTE);
    await store.load(k);
    expect(counted.calls.load).toBe(2);
    expect(store.stats.evictions).toBe(1);
  });

  it('a copy is served for at most maxAgeMs after it was read', async () => {
    const { clock, advance } = fakeClock();
    const counted = countingStore(memoryStore({ clock }));
    const store = nearCache(counted.store, { clock, maxAgeMs: 5_000 });
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }, {}, clock()));
    await store.load(k);
    advance(4_999);
    await store.load(k);
    expect(counted.calls.load).toBe(1);
    advance(1);
    await store.load(k);
    expect(counted.calls.load).toBe(2);
  });
});

describe('near-cache: bounded memory', () => {
  it('evicts the least recently used record beyond maxEntries', async () => {
    const counted = countingStore(memoryStore());
    const store = nearCache(counted.store, { maxEntries: 3 });
    const [a, b, c, d] = [storeKey(), storeKey(), storeKey(), storeKey()] as [string, string, string, string];
    for (const k of [a, b, c, d]) await store.create(k, storedRecord({ k }));
    for (const k of [a, b, c]) await store.load(k);
    await store.load(a);
    await store.load(d);
    expect(store.stats.entries).toBe(3);
    const before = counted.calls.load ?? 0;
    await store.load(a);
    await store.load(d);
    expect(counted.calls.load).toBe(before);
    await store.load(b);
    expect(counted.calls.load).toBe(before + 1);
  });

  it('keeps its approximate bytes within maxBytes and does not cache a record larger than all of it', async () => {
    const counted = countingStore(memoryStore());
    const store = nearCache(counted.store, { maxBytes: 10_000 });
    const keys = Array.from({ length: 10 }, () => storeKey());
    for (const k of keys) {
      await store.create(k, storedRecord({ data: 'x'.repeat(2_000) }));
      await store.load(k);
      expect(store.stats.bytes).toBeLessThanOrEqual(10_000);
    }
    expect(store.stats.entries).toBeLessThan(10);
    expect(store.stats.evictions).toBeGreaterThan(0);
    const big = storeKey();
    await store.create(big, storedRecord({ data: 'x'.repeat(20_000) }));
    await store.load(big);
    await store.load(big);
    expect(counted.calls.load).toBe(12);
    expect(store.stats.bytes).toBeLessThanOrEqual(10_000);
  });

  it('refuses bounds that are not positive integers, naming the option', () => {
    const inner = memoryStore();
    expect(() => nearCache(inner, { maxEntries: 0 })).toThrow(/maxEntries/);
    expect(() => nearCache(inner, { maxBytes: 1.5 })).toThrow(/maxBytes/);
    expect(() => nearCache(inner, { maxAgeMs: -1 })).toThrow(/maxAgeMs/);
    expect(() => nearCache(inner, { invalidation: {} as InvalidationSource })).toThrow(/invalidation/);
    expect(() => nearCache({} as SessionStore)).toThrow(/store/);
  });
});

describe('near-cache: a write on this instance is never served stale here', () => {
  const setup = () => {
    const counted = countingStore(memoryStore());
    const store = nearCache(counted.store);
    return { store, calls: counted.calls, sessions: new SessionManager({ store, secrets: [SECRET] }) };
  };

  it('apply(): the next load shows the delta', async () => {
    const { store } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({ n: 0 }));
    for (let n = 1; n <= 5; n++) {
      expect(fieldValue(await store.load(k), 'n')).toBe(n - 1);
      expect((await store.apply(k, { fields: { n: field(n, Date.now() + n) } })).status).toBe('ok');
      expect(fieldValue(await store.load(k), 'n')).toBe(n);
    }
  });

  it('destroy(), regenerate() and the old ID: gone at once', async () => {
    const { sessions } = setup();
    const session = sessions.create({ data: { cart: ['a'] } });
    await sessions.save(session);
    expect(await sessions.load(session.id)).not.toBeNull();
    const oldId = session.id;
    await sessions.regenerate(session);
    expect(await sessions.load(oldId)).toBeNull();
    expect((await sessions.load(session.id))?.get('cart')).toEqual(['a']);
    await sessions.destroy(session.id);
    expect(await sessions.load(session.id)).toBeNull();
  });

  it('revokeUser() and revokeUserSession(): the revoked sessions are gone at once, the others stay cached', async () => {
    const { sessions, store } = setup();
    const make = async (userId: string) => {
      const session = sessions.create({ data: { u: userId } });
      session.userId = userId;
      await sessions.save(session);
      expect(await sessions.load(session.id)).not.toBeNull();
      return session.id;
    };
    const [alice1, alice2, bob] = [await make('alice'), await make('alice'), await make('bob')];
    const hits = store.stats.hits;
    expect(await sessions.load(bob)).not.toBeNull();
    expect(store.stats.hits).toBe(hits + 1);
    expect(await sessions.revokeUser('alice')).toBe(2);
    expect(await sessions.load(alice1)).toBeNull();
    expect(await sessions.load(alice2)).toBeNull();
    expect(await sessions.load(bob)).not.toBeNull();
    expect(store.stats.hits).toBe(hits + 2);
    const [handle] = (await sessions.listUserSessions('bob')).map((summary) => summary.handle);
    expect(await sessions.revokeUserSession('bob', handle as string)).toBe(true);
    expect(await sessions.load(bob)).toBeNull();
  });

  it('mergeState() of a tombstone and mergeWatermark(): gone at once', async () => {
    const store = nearCache(memoryStore());
    const [k, j] = [storeKey(), storeKey()];
    await store.create(k, storedRecord({ a: 1 }));
    await store.create(j, storedRecord({ a: 1 }, { userId: 'carol', createdAt: Date.now() - 1_000 }));
    await store.load(k);
    await store.load(j);
    expect(await store.mergeState?.(k, { kind: 'tombstone', stamp: stampAt(Date.now()), until: Date.now() + MINUTE })).toEqual({ state: 'tombstone', changed: true });
    expect(await store.load(k)).toBeNull();
    expect(await store.mergeWatermark?.('carol', stampAt(Date.now()))).toBe(1);
    expect(await store.load(j)).toBeNull();
  });

  it('a write that fails drops the cached copy too (it may have landed)', async () => {
    const counted = countingStore(memoryStore());
    const store = nearCache(counted.store);
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }));
    await store.load(k);
    counted.down(true);
    await expect(store.apply(k, { fields: { a: field(2) } })).rejects.toThrow();
    counted.down(false);
    await store.load(k);
    expect(counted.calls.load).toBe(2);
  });
});

describe('near-cache: a load in flight during a write does not cache the state from before', () => {
  const setup = () => {
    const inner = memoryStore();
    const held = heldLoads(inner);
    return { held, store: nearCache(held.store) };
  };

  it('destroy() while a load is in flight: the load answers (it was concurrent) but the next one finds the session gone', async () => {
    const { held, store } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }));
    held.hold();
    const inFlight = store.load(k);
    expect(await store.destroy(k, TOMBSTONE_GRACE_MS, stampAt(Date.now()))).toBe(true);
    held.release();
    expect(fieldValue(await inFlight, 'a')).toBe(1);
    expect(await store.load(k)).toBeNull();
    expect(store.stats.entries).toBe(0);
  });

  it('a load issued while a destroy is in flight does not cache what it read', async () => {
    const { held, store } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }));
    held.hold();
    const inFlight = store.load(k);
    const destroyed = store.destroy(k, TOMBSTONE_GRACE_MS);
    held.release();
    await Promise.all([inFlight, destroyed]);
    expect(await store.load(k)).toBeNull();
  });

  it('apply() while a load is in flight: the next load shows the delta', async () => {
    const { held, store } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({ n: 0 }));
    held.hold();
    const inFlight = store.load(k);
    await store.apply(k, { fields: { n: field(1, Date.now() + 1) } });
    held.release();
    expect(fieldValue(await inFlight, 'n')).toBe(0);
    expect(fieldValue(await store.load(k), 'n')).toBe(1);
  });

  it('a load issued after a write does not join a load issued before it', async () => {
    const { held, store } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({ n: 0 }));
    held.hold();
    const before = store.load(k);
    await store.apply(k, { fields: { n: field(1, Date.now() + 1) } });
    const after = store.load(k);
    held.release();
    expect(fieldValue(await before, 'n')).toBe(0);
    expect(fieldValue(await after, 'n')).toBe(1);
  });

  it('revokeUser() while a load of one of the user\'s sessions is in flight: the next load finds it gone', async () => {
    const { held, store } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }, { userId: 'dave' }));
    held.hold();
    const inFlight = store.load(k);
    expect(await store.destroyByUser('dave', TOMBSTONE_GRACE_MS, stampAt(Date.now()))).toBe(1);
    held.release();
    expect(fieldValue(await inFlight, 'a')).toBe(1);
    expect(await store.load(k)).toBeNull();
  });
});

describe('near-cache: the invalidation source', () => {
  const setup = () => {
    const counted = countingStore(memoryStore());
    const manual = manualSource();
    const store = nearCache(counted.store, { invalidation: manual.source });
    return { ...manual, store, calls: counted.calls, inner: counted.store };
  };

  it('serves no hit before the source is up, then does', async () => {
    const { store, sink, calls } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }));
    await store.load(k);
    await store.load(k);
    expect(calls.load).toBe(2);
    expect(store.stats.caching).toBe(false);
    sink().up();
    await store.ready();
    await store.load(k);
    await store.load(k);
    expect(calls.load).toBe(3);
  });

  it('an invalidation from the source drops the cached copy, and a load in flight does not cache the state from before', async () => {
    const held = heldLoads(memoryStore());
    const manual = manualSource();
    const store = nearCache(held.store, { invalidation: manual.source });
    manual.sink().up();
    const k = storeKey();
    await held.store.create(k, storedRecord({ n: 0 }));
    await store.load(k);
    // Another instance writes, straight to the shared store; the source reports it.
    await held.store.apply(k, { fields: { n: field(1, Date.now() + 1) } });
    expect(fieldValue(await store.load(k), 'n')).toBe(0);
    const events = await cacheEvents(async () => manual.sink().invalidate([k, storeKey()]));
    expect(events).toEqual([{ store: 'memory', event: 'invalidation', origin: 'remote', count: 1, keys: 2, entries: 0, bytes: 0 }]);
    held.hold();
    const inFlight = store.load(k);
    await held.store.apply(k, { fields: { n: field(2, Date.now() + 2) } });
    manual.sink().invalidate([k]);
    held.release();
    expect(fieldValue(await inFlight, 'n')).toBe(1);
    expect(fieldValue(await store.load(k), 'n')).toBe(2);
    expect(store.stats.invalidations).toEqual({ local: 0, remote: 1 });
  });

  it('down() flushes everything, is counted, and stops caching until up(); a load in flight across it is not cached', async () => {
    const held = heldLoads(memoryStore());
    const manual = manualSource();
    const store = nearCache(held.store, { invalidation: manual.source });
    manual.sink().up();
    const [k, j] = [storeKey(), storeKey()];
    for (const key of [k, j]) {
      await held.store.create(key, storedRecord({ n: 0 }));
      await store.load(key);
    }
    expect(store.stats.entries).toBe(2);
    held.hold();
    const inFlight = store.load(storeKey());
    const events = await cacheEvents(async () => manual.sink().down('invalidation-lost'));
    expect(events).toEqual([{ store: 'memory', event: 'flush', reason: 'invalidation-lost', count: 2, entries: 0, bytes: 0 }]);
    expect(store.stats).toMatchObject({ flushes: 1, entries: 0, caching: false });
    const reads = held.reads();
    held.release();
    await inFlight;
    await store.load(k);
    await store.load(k);
    expect(held.reads()).toBe(reads + 2);
    held.hold();
    const acrossUp = store.load(j);
    manual.sink().up();
    held.release();
    await acrossUp;
    expect(store.stats.entries).toBe(0);
    await store.load(k);
    await store.load(k);
    expect(held.reads()).toBe(reads + 4);
  });

  it('invalidateUser() drops the cached sessions of that user only; flush() drops all and caching goes on', async () => {
    const { store, sink } = setup();
    sink().up();
    const [a, b] = [storeKey(), storeKey()];
    await store.create(a, storedRecord({}, { userId: 'erin' }));
    await store.create(b, storedRecord({}, { userId: 'frank' }));
    await store.load(a);
    await store.load(b);
    sink().invalidateUser('erin');
    expect(store.stats.entries).toBe(1);
    sink().flush('server-flush');
    expect(store.stats).toMatchObject({ entries: 0, flushes: 1, caching: true });
  });

  it('close() closes the source and the inner store, rejects what follows, and rejects ready() if the source never came up', async () => {
    const { store, closed } = setup();
    const k = storeKey();
    await store.create(k, storedRecord({}));
    await store.close();
    expect(closed()).toBe(true);
    await expect(store.ready()).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    await expect(store.load(k)).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    await store.close();
  });
});

describe('near-cache: metrics', () => {
  it('publishes hits, misses, local invalidations and evictions with entries and bytes, and never a key or a value', async () => {
    const { clock, advance } = fakeClock();
    const store = nearCache(memoryStore({ clock }), { clock, maxEntries: 1 });
    const [k, j] = [storeKey(), storeKey()];
    const events = await cacheEvents(async () => {
      await store.create(k, storedRecord({ secret: 'hunter2' }, { idleTimeout: MINUTE }, clock()));
      await store.create(j, storedRecord({}, {}, clock()));
      await store.load(k);
      await store.load(k);
      await store.load(j);
      await store.load(j);
      await store.apply(j, { fields: { b: field(1, clock() + 1) } });
      await store.load(k);
      advance(MINUTE);
      await store.load(k);
    });
    expect(events.map(({ event, origin, reason }) => [event, origin ?? reason ?? null])).toEqual([
      ['miss', null],
      ['hit', null],
      ['miss', null],
      ['eviction', 'capacity'],
      ['hit', null],
      ['invalidation', 'local'],
      ['miss', null],
      ['eviction', 'expired'],
      ['miss', null],
    ]);
    expect(events[1]).toMatchObject({ store: 'memory', count: 1, entries: 1 });
    expect(events[1]?.bytes).toBeGreaterThan(0);
    const text = JSON.stringify(events);
    expect(text).not.toContain(k);
    expect(text).not.toContain(j);
    expect(text).not.toContain('hunter2');
    expect(store.stats).toMatchObject({ hits: 2, misses: 4, invalidations: { local: 1, remote: 0 }, evictions: 2, flushes: 0 });
  });
});
