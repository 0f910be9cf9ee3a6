import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { published } from './helpers/channels.js';
import { formatStamp } from '../src/core/hlc.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { StoredSession } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import type { SqliteStore, SqliteStoreOptions } from '../src/stores/sqlite.js';
import { SQLITE_SCHEMA_VERSION, sqliteStore } from '../src/stores/sqlite.js';
import { runStoreConformance } from '../src/testing/index.js';
import { applyFromThreads } from './helpers/sqlite-workers.js';

const HOUR = 3_600_000;

const tempDir = () => mkdtemp(join(tmpdir(), 'elastic-session-sqlite-'));

/** Runs `fn` on a raw connection of its own, as another process or an operator would. */
function raw<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path, { timeout: 5000 });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

runStoreConformance(
  { describe, it, beforeEach, afterEach },
  {
    name: 'sqlite',
    fakeClock: true,
    setup: async ({ clock }) => {
      const dir = await tempDir();
      const path = join(dir, 'sessions.db');
      return {
        store: sqliteStore({ path, clock }),
        connect: async () => sqliteStore({ path, clock }),
        corrupt: async (key) => {
          raw(path, (db) => db.prepare("UPDATE elastic_sessions SET version = 'not a number' WHERE key = ?").run(key));
        },
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
);

describe('sqlite store', () => {
  let dir: string;
  let path: string;
  let now: number;
  const clock = () => now;
  const opened: SqliteStore[] = [];
  const open = (options: Partial<SqliteStoreOptions> = {}) => {
    const store = sqliteStore(options.database ? { clock, ...options } : { path, clock, ...options });
    opened.push(store);
    return store;
  };
  const key = () => randomBytes(32).toString('base64url');
  const stamp = (offset = 0) => formatStamp(now + offset, 0, randomBytes(4).toString('hex'));
  const record = (fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession => {
    const stored: StoredSession['fields'] = {};
    for (const [name, value] of Object.entries(fields)) stored[name] = { value: JSON.stringify(value), stamp: stamp() };
    return { createdAt: now, lastSeenAt: now, idleTimeout: HOUR, absoluteExpiresAt: now + 24 * HOUR, userId: null, version: 1, fields: stored, ...meta };
  };
  const count = (table: 'elastic_sessions' | 'elastic_session_fields', where = '1', ...params: unknown[]) =>
    raw(path, (db) => db.prepare(`SELECT count(*) FROM ${table} WHERE ${where}`).pluck().get(...params));

  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir, 'sessions.db');
    now = Date.UTC(2030, 0, 1);
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('opens its file in WAL mode, creating missing parent folders', async () => {
    path = join(dir, 'nested', 'deeper', 'sessions.db');
    const store = open();
    await store.create(key(), record({ a: 1 }));
    expect(raw(path, (db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
  });

  it('records its schema version and refuses a file with a newer one (ESESS_CONFIG)', async () => {
    await open().close();
    expect(raw(path, (db) => db.prepare('SELECT version FROM elastic_session_schema').pluck().get())).toBe(SQLITE_SCHEMA_VERSION);
    raw(path, (db) => db.prepare('UPDATE elastic_session_schema SET version = ?').run(SQLITE_SCHEMA_VERSION + 1));
    expect(() => open()).toThrow(expect.objectContaining({ code: 'ESESS_CONFIG', context: expect.objectContaining({ schemaVersion: SQLITE_SCHEMA_VERSION + 1 }) }));
  });

  it("leaves an application database's user_version and tables alone", async () => {
    const database = new Database(path);
    database.exec('PRAGMA user_version = 7; CREATE TABLE sessions (id INTEGER PRIMARY KEY)');
    const store = open({ database });
    const k = key();
    await store.create(k, record({ a: 1 }));
    expect(await store.load(k)).not.toBeNull();
    expect(database.pragma('user_version', { simple: true })).toBe(7);
    expect(database.prepare('SELECT count(*) FROM sessions').pluck().get()).toBe(0);
    database.close();
  });

  it('keeps sessions across close and reopen', async () => {
    const k = key();
    const first = open();
    await first.create(k, record({ cart: ['a', 'b'] }, { userId: 'alice' }));
    await first.apply(k, { fields: { seen: { value: 'true', stamp: stamp(1) } } });
    await first.close();
    const loaded = await open().load(k);
    expect(loaded).toMatchObject({ userId: 'alice', version: 2 });
    expect(loaded?.fields.cart?.value).toBe('["a","b"]');
    expect(loaded?.fields.seen?.value).toBe('true');
  });

  it('refuses a file that is not a SQLite database with a typed error', async () => {
    await writeFile(path, 'this is a text file, not a database\n'.repeat(200));
    expect(() => open()).toThrow(expect.objectContaining({ name: 'SessionError', code: 'ESESS_CONFIG', context: expect.objectContaining({ option: 'path' }) }));
  });

  it('returns fields in a null-prototype object, so field names cannot reach Object.prototype', async () => {
    const store = open();
    const k = key();
    const fields = Object.create(null) as StoredSession['fields'];
    fields['__proto__'] = { value: '{"polluted":true}', stamp: stamp() };
    await store.create(k, record({}, { fields }));
    const loaded = await store.load(k);
    expect(Object.getPrototypeOf(loaded?.fields)).toBeNull();
    expect(Object.keys(loaded?.fields ?? {})).toEqual(['__proto__']);
  });

  describe('corrupt rows', () => {
    const corruptions: [string, string][] = [
      ['a numeric column holds text', "UPDATE elastic_sessions SET last_seen_at = 'yesterday' WHERE key = ?"],
      ['the version is not an integer', 'UPDATE elastic_sessions SET version = 1.5 WHERE key = ?'],
      ['the principal is a blob', "UPDATE elastic_sessions SET user_id = x'00ff' WHERE key = ?"],
      ['a field stamp is a blob', "UPDATE elastic_session_fields SET stamp = x'00' WHERE key = ?"],
      ['a field value is a blob', "UPDATE elastic_session_fields SET value = x'00' WHERE key = ?"],
    ];

    it.each(corruptions)('load() is null and counted, and apply() is gone, when %s', async (_, sql) => {
      const store = open();
      const k = key();
      await store.create(k, record({ a: 1 }));
      raw(path, (db) => db.prepare(sql).run(k));
      const corrupt = await published(CHANNELS.corrupt, async () => expect(await store.load(k)).toBeNull());
      expect(corrupt).toEqual([{ store: 'sqlite' }]);
      if (sql.includes('elastic_sessions SET')) expect(await store.apply(k, { fields: { b: { value: '2', stamp: stamp(1) } } })).toEqual({ status: 'gone' });
    });
  });

  it('apply() keeps all of 50 deltas of distinct fields sent at once from 5 threads, each on its own connection', async () => {
    const store = open();
    const k = key();
    await store.create(k, record({ base: true }));
    const threads = Array.from({ length: 5 }, (_, t) => Array.from({ length: 10 }, (_, i) => ({ name: `t${t}f${i}`, stamp: stamp(1) })));
    const statuses = await applyFromThreads({ dir, path, key: k, threads });
    expect(statuses).toEqual(Array.from({ length: 50 }, () => 'ok'));
    const loaded = await store.load(k);
    for (const field of threads.flat()) expect(loaded?.fields[field.name]?.value, field.name).toBe(JSON.stringify(field.name));
    expect(loaded?.fields.base?.value).toBe('true');
    expect(loaded?.version).toBe(51);
  });

  it('sweep() removes expired rows and dead tombstones in batches, with their fields, and keeps live ones', async () => {
    const store = open();
    const expired = Array.from({ length: 5 }, () => key());
    for (const k of expired) await store.create(k, record({ a: 1, b: 2 }, { idleTimeout: 60_000 }));
    const deadTombstone = key();
    await store.create(deadTombstone, record({ a: 1 }, { absoluteExpiresAt: now + 60_000 }));
    await store.destroy(deadTombstone, 0);
    const liveTombstone = key();
    await store.create(liveTombstone, record({ a: 1 }));
    await store.destroy(liveTombstone, TOMBSTONE_GRACE_MS);
    const live = [key(), key(), key()];
    for (const k of live) await store.create(k, record({ a: 1 }));
    now += 120_000;
    for (const k of live) await store.apply(k, { fields: {}, lastSeenAt: now });

    expect(await store.sweep(4)).toBe(4);
    expect(await store.sweep(4)).toBe(2);
    expect(await store.sweep(4)).toBe(0);
    expect(count('elastic_sessions')).toBe(live.length + 1);
    expect(count('elastic_session_fields')).toBe(live.length);
    for (const k of live) expect(await store.load(k)).not.toBeNull();
    expect(await store.create(liveTombstone, record({}))).toBe(false);
    await expect(store.sweep(-1)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('destroy() wins over deltas from another connection, and leaves no field rows', async () => {
    const first = open();
    const second = open();
    const k = key();
    const session = record({ a: 1 }, { userId: 'alice' });
    await first.create(k, session);
    expect(await second.load(k)).not.toBeNull();
    expect(await first.destroy(k, TOMBSTONE_GRACE_MS)).toBe(true);
    expect(await second.apply(k, { fields: { a: { value: '2', stamp: stamp(1000) } }, lastSeenAt: now })).toEqual({ status: 'gone' });
    expect(await second.create(k, record({ a: 3 }))).toBe(false);
    expect(await second.load(k)).toBeNull();
    expect(await second.listByUser('alice')).toEqual([]);
    expect(count('elastic_session_fields', 'key = ?', k)).toBe(0);
    expect(raw(path, (db) => db.prepare('SELECT tombstone_until FROM elastic_sessions WHERE key = ?').pluck().get(k))).toBe(session.absoluteExpiresAt + TOMBSTONE_GRACE_MS);
  });

  it('create() takes over the key of a dead record: an expired session or a tombstone past its time', async () => {
    const store = open();
    const expired = key();
    const destroyed = key();
    await store.create(expired, record({ old: 1 }, { idleTimeout: 60_000 }));
    await store.create(destroyed, record({ old: 1 }, { absoluteExpiresAt: now + 60_000 }));
    await store.destroy(destroyed, 0);
    now += 60_000;
    for (const k of [expired, destroyed]) {
      expect(await store.create(k, record({ new: 1 }))).toBe(true);
      expect(Object.keys((await store.load(k))?.fields ?? {})).toEqual(['new']);
    }
  });

  it('reports a SQLite failure at runtime as ESESS_STORE_UNAVAILABLE (write lock held past the busy timeout)', async () => {
    await open().close();
    const database = new Database(path, { timeout: 0 });
    const store = open({ database });
    const k = key();
    await store.create(k, record({ a: 1 }));
    const blocker = new Database(path);
    blocker.exec('BEGIN IMMEDIATE');
    try {
      const error: unknown = await store.apply(k, { fields: {}, lastSeenAt: now }).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'sqlite', operation: 'apply', sqliteCode: 'SQLITE_BUSY' } });
      expect(await store.load(k), 'WAL readers are not blocked by a writer').not.toBeNull();
    } finally {
      blocker.exec('ROLLBACK');
      blocker.close();
      database.close();
    }
  });

  it('close() is idempotent, refuses later calls with ESESS_STORE_CLOSED, and leaves an application-owned database open', async () => {
    const database = new Database(path);
    const store = open({ database, synchronous: 'normal' });
    expect(database.pragma('synchronous', { simple: true })).toBe(1);
    await store.close();
    await store.close();
    expect(database.open).toBe(true);
    for (const call of [store.load(key()), store.apply(key(), { fields: {} }), store.destroy(key(), 0), store.listByUser('u'), store.destroyByUser('u', 0), store.sweep(1)]) {
      await expect(call).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    }
    database.close();
  });

  it('validates its options and names the one at fault (ESESS_CONFIG)', () => {
    const closed = new Database(':memory:');
    closed.close();
    const cases: [SqliteStoreOptions, string][] = [
      [{}, 'path'],
      [{ path, database: new Database(':memory:') }, 'database'],
      [{ path: '' }, 'path'],
      [{ database: closed }, 'database'],
      [{ path, synchronous: 'off' as 'full' }, 'synchronous'],
    ];
    for (const [options, option] of cases) {
      expect(() => sqliteStore(options), option).toThrow(expect.objectContaining({ code: 'ESESS_CONFIG', context: { option } }));
    }
  });
});
