import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runStoreConformance } from '../src/testing/index.js';
import { memoryStore } from '../src/stores/memory.js';
import { formatStamp } from '../src/core/hlc.js';
import type { StoredSession } from '../src/core/types.js';

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'memory',
  fakeClock: true,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
  multiClient: false,
  corrupts: false,
  setup: async ({ clock }) => ({ store: memoryStore({ clock }) }),
});

const record = (bytes: number): StoredSession => ({
  createdAt: Date.now(),
  lastSeenAt: Date.now(),
  idleTimeout: 60_000,
  absoluteExpiresAt: Date.now() + 60_000,
  userId: null,
  userStamp: '',
  version: 1,
  fields: { data: { value: JSON.stringify('x'.repeat(bytes)), stamp: formatStamp(Date.now(), 0, '00000000') } },
});

describe('memory store bounds', () => {
  it('evicts the least recently used session beyond maxEntries', async () => {
    const store = memoryStore({ maxEntries: 3 });
    for (const key of ['a', 'b', 'c']) await store.create(key, record(10));
    await store.load('a');
    await store.create('d', record(10));
    expect(await store.load('b')).toBeNull();
    expect(await store.load('a')).not.toBeNull();
    expect(await store.load('d')).not.toBeNull();
    expect(store.usage.entries).toBe(3);
  });

  it('evicts by approximate bytes beyond maxBytes', async () => {
    const store = memoryStore({ maxBytes: 10_000 });
    for (let i = 0; i < 10; i++) await store.create(`k${i}`, record(2_000));
    expect(store.usage.bytes).toBeLessThanOrEqual(10_000);
    expect(await store.load('k9')).not.toBeNull();
    expect(await store.load('k0')).toBeNull();
  });

  it('scan() refuses a limit that is not a positive integer rather than ending the walk early', async () => {
    const store = memoryStore();
    await store.create('k', record(1));
    await expect(store.scan(null, 0)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(store.scan(null, 1.5)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    expect(await store.scan(null, 1)).toEqual({ keys: ['k'], cursor: null });
  });

  it('refuses bounds that are not positive integers, naming the option', () => {
    expect(() => memoryStore({ maxEntries: 0 })).toThrow(/maxEntries/);
    expect(() => memoryStore({ maxBytes: 1.5 })).toThrow(/maxBytes/);
  });
});
