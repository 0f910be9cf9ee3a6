import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { published } from './helpers/channels.js';
import { SessionManager } from '../src/core/manager.js';
import { storeKeyOf } from '../src/core/ids.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { SessionStore, StoredSession } from '../src/core/types.js';
import { encryptedStore, EXAMPLE_ENCRYPTION_KEYS, generateEncryptionKey, parseEncryptionKeys, reencryptAll } from '../src/stores/encrypted.js';
import { memoryStore } from '../src/stores/memory.js';
import { sqliteStore } from '../src/stores/sqlite.js';
import { runStoreConformance, stampAt, storedRecord } from '../src/testing/index.js';

const SECRET = 'encrypted-store-test-secret-0123456789abcdef';

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'encrypted(memory)',
  fakeClock: true,
  capabilities: { nativeTtl: true, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
  multiClient: false,
  corrupts: false,
  setup: async ({ clock }) => ({ store: encryptedStore(memoryStore({ clock }), { keys: [generateEncryptionKey('k1')] }) }),
});

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'encrypted(sqlite)',
  fakeClock: true,
  capabilities: { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
  multiClient: true,
  corrupts: false,
  setup: async ({ clock }) => {
    const dir = await mkdtemp(join(tmpdir(), 'elastic-session-encrypted-'));
    const path = join(dir, 'sessions.db');
    const keys = [generateEncryptionKey('k1')];
    return {
      store: encryptedStore(sqliteStore({ path, clock }), { keys }),
      connect: async () => encryptedStore(sqliteStore({ path, clock }), { keys }),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});

/** Counts what reaches the corrupt channel while `fn` runs. */
async function countCorrupt(fn: () => Promise<void>): Promise<number> {
  return (await published(CHANNELS.corrupt, fn)).length;
}

describe('encrypted store', () => {
  let inner: SessionStore;
  let k1: string;
  let k2: string;

  beforeEach(() => {
    inner = memoryStore();
    k1 = generateEncryptionKey('k1');
    k2 = generateEncryptionKey('k2');
  });

  const managerOver = (store: SessionStore) => new SessionManager({ store, secrets: [SECRET] });

  async function saved(store: SessionStore, data: Record<string, unknown>): Promise<{ id: string; key: string }> {
    const manager = managerOver(store);
    const session = manager.create({ data, userId: 'alice' });
    await manager.save(session);
    return { id: session.id, key: storeKeyOf(session.id) };
  }

  describe('a store writer cannot change what the store keeps in clear (security round 2, item 3)', () => {
    const stampAfter = (ms: number) => stampAt(Date.now() + ms);

    it('writing another principal into a record makes it unreadable, and it is counted', async () => {
      const store = encryptedStore(inner, { keys: [k1] });
      const manager = managerOver(store);
      const attacker = manager.create({ data: { a: 1 }, userId: 'mallory' });
      await manager.save(attacker);
      // The store writer sets the clear principal of the attacker's own record to the victim's.
      expect((await inner.apply(storeKeyOf(attacker.id), { fields: {}, userId: 'alice', userStamp: stampAfter(60_000) })).status).toBe('ok');
      expect(await countCorrupt(async () => expect(await manager.load(attacker.id)).toBeNull())).toBe(1);
    });

    it('a principal ciphertext copied from another session does not open', async () => {
      const store = encryptedStore(inner, { keys: [k1] });
      const victim = await saved(store, { v: 1 });
      const manager = managerOver(store);
      const attacker = manager.create({ data: { a: 1 }, userId: 'mallory' });
      await manager.save(attacker);
      const stolen = (await inner.load(victim.key))!;
      const principal = stolen.fields['$es.principal']!;
      const later = stampAfter(60_000);
      await inner.apply(storeKeyOf(attacker.id), { fields: { '$es.principal': { value: principal.value, stamp: later } }, userId: 'alice', userStamp: later });
      expect((await inner.load(storeKeyOf(attacker.id)))?.userId, 'the write landed').toBe('alice');
      expect(await countCorrupt(async () => expect(await manager.load(attacker.id)).toBeNull())).toBe(1);
    });

    it('a longer absolute expiry written into a record makes it unreadable', async () => {
      const store = encryptedStore(inner, { keys: [k1] });
      const { id, key } = await saved(store, { a: 1 });
      const raw = (await inner.load(key))!;
      await inner.mergeState!(key, { kind: 'live', record: { ...raw, absoluteExpiresAt: raw.absoluteExpiresAt + 86_400_000 } });
      expect((await inner.load(key))?.absoluteExpiresAt).toBe(raw.absoluteExpiresAt + 86_400_000);
      expect(await countCorrupt(async () => expect(await managerOver(store).load(id)).toBeNull())).toBe(1);
    });

    it('a principal changed through the store itself (login, logout) stays readable, also after a key rotation', async () => {
      const store = encryptedStore(inner, { keys: [k1] });
      const manager = managerOver(store);
      const session = manager.create({ data: { a: 1 } });
      await manager.save(session);
      const loaded = (await manager.load(session.id))!;
      loaded.userId = 'bob';
      await manager.save(loaded);
      expect((await manager.load(session.id))?.userId).toBe('bob');
      const rotated = encryptedStore(inner, { keys: [k2, k1] });
      expect((await reencryptAll(rotated)).clean).toBe(true);
      const onlyNew = managerOver(encryptedStore(inner, { keys: [k2] }));
      const after = (await onlyNew.load(session.id))!;
      expect(after.userId).toBe('bob');
      after.userId = null;
      await onlyNew.save(after);
      expect((await onlyNew.load(session.id))?.userId).toBeNull();
    });

    it('refuses data fields under the reserved "$es." prefix', async () => {
      const store = encryptedStore(inner, { keys: [k1] });
      const manager = managerOver(store);
      const session = manager.create({ data: { '$es.principal': 'x' } });
      await expect(manager.save(session)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    });
  });

  it('the inner store never holds a value in clear, only v1.<kid>.<iv>.<ciphertext+tag>', async () => {
    const store = encryptedStore(inner, { keys: [k1] });
    const { key } = await saved(store, { card: 'visa-4111-secret', nested: { pin: 'pin-9876' } });
    const raw = (await inner.load(key)) as StoredSession;
    const text = JSON.stringify(raw);
    expect(text).not.toContain('visa-4111-secret');
    expect(text).not.toContain('pin-9876');
    for (const field of Object.values(raw.fields)) expect(field.value).toMatch(/^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,}$/);
    expect(raw.userId).toBe('alice');
  });

  it('uses a fresh IV for every write of the same value', async () => {
    const store = encryptedStore(inner, { keys: [k1] });
    const a = await saved(store, { x: 'same' });
    const b = await saved(store, { x: 'same' });
    const ivOf = async (key: string) => (await inner.load(key))?.fields.x?.value?.split('.')[2];
    expect(await ivOf(a.key)).not.toBe(await ivOf(b.key));
  });

  it('a ciphertext swapped between two sessions does not open: the record loads as absent and is counted', async () => {
    const store = encryptedStore(inner, { keys: [k1] });
    const a = await saved(store, { role: 'user' });
    const b = await saved(store, { role: 'admin' });
    const adminValue = (await inner.load(b.key))?.fields.role;
    await inner.apply(a.key, { fields: { role: { value: adminValue?.value ?? null, stamp: 'ffffffffffff.0000.00000000' } } });
    const manager = managerOver(store);
    const corrupt = await countCorrupt(async () => {
      expect(await manager.load(a.id)).toBeNull();
    });
    expect(corrupt).toBe(1);
    expect((await manager.load(b.id))?.get('role')).toBe('admin');
  });

  it('a ciphertext moved to another field of the same session does not open', async () => {
    const store = encryptedStore(inner, { keys: [k1] });
    const a = await saved(store, { role: 'user', note: 'admin' });
    const note = (await inner.load(a.key))?.fields.note;
    await inner.apply(a.key, { fields: { role: { value: note?.value ?? null, stamp: `${note?.stamp}~` } } });
    expect(await managerOver(store).load(a.id)).toBeNull();
  });

  const tamperings: [string, (value: string) => string][] = [
    ['a truncated tag', (value) => value.slice(0, -4)],
    ['a tag cut to 12 bytes (GCM would accept short tags)', (value) => {
      const parts = value.split('.');
      const body = Buffer.from(parts[3] as string, 'base64url');
      return [...parts.slice(0, 3), body.subarray(0, body.length - 4).toString('base64url')].join('.');
    }],
    ['a flipped ciphertext bit', (value) => {
      const parts = value.split('.');
      const body = Buffer.from(parts[3] as string, 'base64url');
      body[0] = (body[0] as number) ^ 1;
      return [...parts.slice(0, 3), body.toString('base64url')].join('.');
    }],
    ['an unknown key ID', (value) => value.replace('.k1.', '.k9.')],
    ['another known key ID', (value) => value.replace('.k1.', '.k2.')],
    ['a re-encoded ciphertext (another spelling of the same bytes)', (value) => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(value.at(-1) as string);
      return value.slice(0, -1) + (alphabet[last ^ 1] as string);
    }],
    ['another format version', (value) => value.replace(/^v1\./, 'v2.')],
    ['a value in clear', () => '"admin"'],
    ['an empty value', () => ''],
  ];
  for (const [name, tamper] of tamperings) {
    it(`fails closed on ${name}`, async () => {
      const store = encryptedStore(inner, { keys: [k1, k2] });
      const a = await saved(store, { role: 'user' });
      const role = (await inner.load(a.key))?.fields.role;
      await inner.apply(a.key, { fields: { role: { value: tamper(role?.value ?? ''), stamp: `${role?.stamp}~` } } });
      let loaded: unknown = 'not called';
      const corrupt = await countCorrupt(async () => {
        loaded = await managerOver(store).load(a.id);
      });
      expect(loaded).toBeNull();
      expect(corrupt).toBe(1);
    });
  }

  it('after rotation new writes use the new key, old values still open, and the next write re-encrypts them', async () => {
    const old = encryptedStore(inner, { keys: [k1] });
    const { id, key } = await saved(old, { a: 1, b: { deep: true }, c: 'three' });
    const rotated = encryptedStore(inner, { keys: [k2, k1] });
    const manager = managerOver(rotated);
    const session = await manager.load(id);
    expect(session?.toJSON()).toEqual({ a: 1, b: { deep: true }, c: 'three' });
    session?.set('a', 2);
    await manager.save(session!);
    const raw = (await inner.load(key)) as StoredSession;
    for (const field of Object.values(raw.fields)) expect(field.value?.split('.')[1]).toBe('k2');
    expect((await managerOver(encryptedStore(inner, { keys: [k2] })).load(id))?.toJSON()).toEqual({ a: 2, b: { deep: true }, c: 'three' });
  });

  it('a re-encryption loses to a write made meanwhile (per-field order is kept)', async () => {
    const old = encryptedStore(inner, { keys: [k1] });
    const { id } = await saved(old, { a: 'original' });
    const rotated = encryptedStore(inner, { keys: [k2, k1] });
    const reader = managerOver(rotated);
    const stale = await reader.load(id);
    const writer = managerOver(old);
    const other = await writer.load(id);
    other?.set('a', 'newer');
    await writer.save(other!);
    stale?.set('b', 'unrelated');
    await reader.save(stale!);
    expect((await reader.load(id))?.toJSON()).toEqual({ a: 'newer', b: 'unrelated' });
  });

  it('reencryptAll() walks the store and leaves no value under the old key; the old key can then go', async () => {
    const old = encryptedStore(inner, { keys: [k1] });
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push((await saved(old, { i, text: `value-${i}` })).id);
    const rotated = encryptedStore(inner, { keys: [k2, k1] });
    const progress = await reencryptAll(rotated, { batch: 7 });
    expect(progress, 'a second, clean walk proves it').toEqual({ scanned: 50, rewritten: 25, fields: 100, passes: 2, clean: true });
    expect(await reencryptAll(rotated, { batch: 7 })).toEqual({ scanned: 25, rewritten: 0, fields: 0, passes: 1, clean: true });
    const onlyNew = managerOver(encryptedStore(inner, { keys: [k2] }));
    for (const [i, id] of ids.entries()) expect((await onlyNew.load(id))?.get('text')).toBe(`value-${i}`);
  });

  it('reencryptAll() walks again while an instance still on the old key keeps writing, and says when it never got clean', async () => {
    const old = encryptedStore(inner, { keys: [k1] });
    for (let i = 0; i < 10; i++) await saved(old, { i });
    // An instance not yet restarted with the new key writes one session as each walk begins.
    let stragglers = 0;
    const walked = new Proxy(inner, {
      get(target, name, receiver) {
        if (name !== 'scan') {
          const value: unknown = Reflect.get(target, name, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        }
        return async (cursor: string | null, limit: number) => {
          if (cursor === null && stragglers > 0) {
            stragglers--;
            await saved(old, { late: true });
          }
          return target.scan!(cursor, limit);
        };
      },
    });
    const rotated = encryptedStore(walked, { keys: [k2, k1] });
    stragglers = 2;
    expect(await reencryptAll(rotated, { batch: 4 })).toEqual({ scanned: 11 + 12 + 12, rewritten: 12, fields: 36, passes: 3, clean: true });
    stragglers = 3;
    expect(await reencryptAll(rotated, { batch: 4 })).toMatchObject({ rewritten: 3, passes: 3, clean: false });
  });

  it('reencryptAll() over SQLite too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'elastic-session-reencrypt-'));
    try {
      const path = join(dir, 's.db');
      const first = encryptedStore(sqliteStore({ path }), { keys: [k1] });
      const { id } = await saved(first, { secret: 'x' });
      await first.close();
      const rotated = encryptedStore(sqliteStore({ path }), { keys: [k2, k1] });
      expect((await reencryptAll(rotated)).fields, "one data field and the two reserved fields").toBe(3);
      await rotated.close();
      const onlyNew = encryptedStore(sqliteStore({ path }), { keys: [k2] });
      expect((await managerOver(onlyNew).load(id))?.get('secret')).toBe('x');
      await onlyNew.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('deleted fields stay deleted and are never encrypted', async () => {
    const store = encryptedStore(inner, { keys: [k1] });
    const manager = managerOver(store);
    const session = manager.create({ data: { a: 1, b: 2 } });
    await manager.save(session);
    session.delete('a');
    await manager.save(session);
    expect((await inner.load(storeKeyOf(session.id)))?.fields.a?.value).toBeNull();
    expect((await manager.load(session.id))?.toJSON()).toEqual({ b: 2 });
  });
});

describe('encryption keys', () => {
  const key = () => randomBytes(32).toString('base64url');

  it('parses kid:KEY, newest first', () => {
    const a = key();
    const parsed = parseEncryptionKeys([`new:${a}`, `old:${key()}`], 'keys', true);
    expect(parsed.map((k) => k.kid)).toEqual(['new', 'old']);
    expect(parsed[0]?.key.toString('base64url')).toBe(a);
  });

  it.each([
    [[], /at least one/],
    [['no-colon'], /kid:KEY/],
    [[`k:${randomBytes(31).toString('base64url')}`], /exactly 32 bytes/],
    [[`k:${randomBytes(33).toString('base64url')}`], /exactly 32 bytes/],
    [[`k:${randomBytes(32).toString('base64')}+/`], /exactly 32 bytes/],
    [[`bad.kid:${randomBytes(32).toString('base64url')}`], /key ID/],
    [[`:${randomBytes(32).toString('base64url')}`], /key ID/],
  ])('refuses %j, naming the option and never the key', (specs, message) => {
    expect(() => parseEncryptionKeys(specs as string[], '--encryption-key', false)).toThrow(message);
    try {
      parseEncryptionKeys(specs as string[], '--encryption-key', false);
    } catch (error) {
      expect(String((error as Error).message)).toContain('--encryption-key');
      for (const spec of specs as string[]) {
        const secretPart = spec.split(':')[1];
        if (secretPart && secretPart.length > 8) expect((error as Error).message).not.toContain(secretPart);
      }
    }
  });

  it('refuses a key ID listed twice', () => {
    expect(() => parseEncryptionKeys([`a:${key()}`, `a:${key()}`], 'keys', false)).toThrow(/listed twice/);
  });

  it('in production mode refuses example keys, all-zero keys and low-entropy keys; outside it accepts them', () => {
    const weak = [...EXAMPLE_ENCRYPTION_KEYS, Buffer.alloc(32, 7).toString('base64url'), Buffer.from('abababababababababababababababab').toString('base64url')];
    for (const value of weak) {
      expect(() => parseEncryptionKeys([`k:${value}`], 'keys', true)).toThrow(/refused in production/);
      expect(parseEncryptionKeys([`k:${value}`], 'keys', false)).toHaveLength(1);
    }
    expect(() => encryptedStore(memoryStore(), { keys: [`k:${EXAMPLE_ENCRYPTION_KEYS[0]}`], production: true })).toThrow(/production/);
  });

  it('every documented example key is refused in production', async () => {
    const { readFile } = await import('node:fs/promises');
    const docs = await readFile(new URL('../docs/security.md', import.meta.url), 'utf8');
    const documented = [...docs.matchAll(/[A-Za-z0-9_-]{1,32}:([A-Za-z0-9_-]{43})\b/g)].map((m) => m[1] as string);
    expect(documented.length).toBeGreaterThan(0);
    for (const value of documented) expect(() => parseEncryptionKeys([`k:${value}`], 'keys', true), value).toThrow(/production/);
  });
});

/** The optional scan() of the store contract, for every store here that implements it. */
describe('scan() (optional store capability)', () => {
  const stores: [string, () => Promise<{ store: SessionStore; cleanup: () => Promise<void> }>][] = [
    ['memory', async () => ({ store: memoryStore(), cleanup: async () => {} })],
    ['sqlite', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'elastic-session-scan-'));
      return { store: sqliteStore({ path: join(dir, 's.db') }), cleanup: () => rm(dir, { recursive: true, force: true }) };
    }],
    ['encrypted(memory)', async () => ({ store: encryptedStore(memoryStore(), { keys: [generateEncryptionKey('s')] }), cleanup: async () => {} })],
  ];
  for (const [name, open] of stores) {
    it(`${name}: visits every live record exactly once in key order, page by page, and skips destroyed ones`, async () => {
      const { store, cleanup } = await open();
      try {
        const now = Date.now();
        const record = storedRecord({}, { idleTimeout: 60_000, absoluteExpiresAt: now + 60_000 }, now);
        const keys = Array.from({ length: 23 }, () => randomBytes(32).toString('base64url'));
        for (const key of keys) await store.create(key, record);
        await store.destroy(keys[0] as string, 1000);
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page: { keys: string[]; cursor: string | null } = await (store.scan as NonNullable<SessionStore['scan']>).call(store, cursor, 5);
          expect(page.keys.length).toBeLessThanOrEqual(5);
          seen.push(...page.keys);
          cursor = page.cursor;
          pages++;
        } while (cursor !== null && pages < 100);
        expect(seen).toEqual(keys.slice(1).sort());
      } finally {
        await store.close();
        await cleanup();
      }
    });
  }
});
