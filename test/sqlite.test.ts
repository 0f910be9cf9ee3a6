import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { published } from './helpers/channels.js';
import { run } from '../src/cli/run.js';
import type { CliIO } from '../src/cli/run.js';
import { covers, mergeRecords, revokedTombstone, watermarkAt } from '../src/core/record.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { LiveState, StoredSession, TombstoneState } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import type { SqliteStore, SqliteStoreOptions } from '../src/stores/sqlite.js';
import { SQLITE_SCHEMA_VERSION, sqliteStore } from '../src/stores/sqlite.js';
import { fieldValue, runStoreConformance, stampAt, storedRecord, storeKey as key } from '../src/testing/index.js';
import { applyFromThreads, runFromThreads } from './helpers/sqlite-workers.js';
import type { ThreadOp } from './helpers/sqlite-workers.js';

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
  { describe, it, skip: it.skip, beforeEach, afterEach },
  {
    name: 'sqlite',
    fakeClock: true,
    capabilities: { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
    multiClient: true,
    corrupts: true,
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
  const stamp = (offset = 0) => stampAt(now + offset);
  const record = (fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession => storedRecord(fields, meta, now);
  const live = (r: StoredSession): LiveState => ({ kind: 'live', record: r });
  const count = (table: 'elastic_sessions' | 'elastic_session_fields' | 'elastic_session_watermarks', where = '1', ...params: unknown[]) =>
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

  describe('the stamped principal, tombstones and watermarks', () => {
    it('apply() moves the principal only with a strictly newer userStamp, and the user index with it', async () => {
      const store = open();
      const k = key();
      const created = record({}, { userId: 'alice' });
      await store.create(k, created);
      expect(await store.apply(k, { fields: {}, userId: 'bob', userStamp: created.userStamp })).toEqual({ status: 'ok', version: 2 });
      expect(await store.apply(k, { fields: {}, userId: 'bob', userStamp: stamp(-1) })).toEqual({ status: 'ok', version: 3 });
      expect(await store.load(k)).toMatchObject({ userId: 'alice', userStamp: created.userStamp });
      const later = stamp(1);
      await store.apply(k, { fields: {}, userId: 'bob', userStamp: later });
      expect(await store.load(k)).toMatchObject({ userId: 'bob', userStamp: later, version: 4 });
      expect(await store.listByUser('alice')).toEqual([]);
      expect((await store.listByUser('bob')).map((summary) => summary.key)).toEqual([k]);
      await store.apply(k, { fields: {}, userId: null, userStamp: stamp(2) });
      expect(await store.listByUser('bob')).toEqual([]);
      await expect(store.apply(k, { fields: {}, userId: 'carol' })).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    });

    it('destroy() keeps its stamp and the exact guard on the tombstone; readState() shows it until the guard passes', async () => {
      const store = open();
      const k = key();
      const r = record({ a: 1 });
      await store.create(k, r);
      const at = stamp(1);
      expect(await store.destroy(k, 1_000, at)).toBe(true);
      expect(await store.readState(k)).toEqual({ kind: 'tombstone', stamp: at, until: r.absoluteExpiresAt + 1_000 });
      expect(count('elastic_session_fields', 'key = ?', k)).toBe(0);
      now = r.absoluteExpiresAt + 1_000;
      expect(await store.readState(k)).toBeNull();
      await expect(store.destroy(key(), -1)).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
      await expect(store.destroy(key(), 0, 'yesterday')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    });

    it('mergeState() starts a created record at version 1, raises it by one per change, and writes the merged fields, ties by value', async () => {
      const store = open();
      const k = key();
      const foreign = record({ a: 1, b: 2 }, { userId: 'alice', version: 7 });
      expect(await store.mergeState(k, live(foreign))).toEqual({ state: 'live', changed: true });
      expect((await store.load(k))?.version).toBe(1);
      expect(await store.mergeState(k, live(foreign))).toEqual({ state: 'live', changed: false });
      expect((await store.load(k))?.version).toBe(1);
      const tie = foreign.fields.b?.stamp ?? '';
      const next = { ...foreign, version: 99, fields: { a: { value: '5', stamp: stamp(5) }, b: { value: '3', stamp: tie }, c: { value: null, stamp: stamp(5) } } };
      expect(await store.mergeState(k, live(next))).toEqual({ state: 'live', changed: true });
      const merged = await store.readState(k);
      expect(merged).toEqual({ kind: 'live', record: { ...foreign, version: 2, fields: { a: next.fields.a, b: { value: '3', stamp: tie }, c: next.fields.c } } });
      expect(count('elastic_session_fields', 'key = ?', k)).toBe(3);
    });

    it('mergeState() of a tombstone onto a free key holds it against create() and live states, until sweep() removes it after its guard', async () => {
      const store = open();
      const k = key();
      const tombstone: TombstoneState = { kind: 'tombstone', stamp: stamp(), until: now + 48 * HOUR };
      expect(await store.mergeState(k, tombstone)).toEqual({ state: 'tombstone', changed: true });
      expect(await store.readState(k)).toEqual(tombstone);
      expect(await store.create(k, record())).toBe(false);
      expect(await store.mergeState(k, live(record({ a: 1 }, { userStamp: stamp(1_000) })))).toEqual({ state: 'tombstone', changed: false });
      const later: TombstoneState = { kind: 'tombstone', stamp: stamp(1), until: now + 72 * HOUR };
      expect(await store.mergeState(k, later)).toEqual({ state: 'tombstone', changed: true });
      expect(await store.readState(k)).toEqual(later);
      now += 72 * HOUR;
      expect(await store.readState(k)).toBeNull();
      expect(await store.sweep(10)).toBe(1);
      expect(count('elastic_sessions')).toBe(0);
    });

    it('mergeState() of a tombstone onto a live record stores the merged tombstone in its row and drops the field rows', async () => {
      const store = open();
      const k = key();
      const r = record({ a: 1, b: 2 }, { userId: 'alice' });
      await store.create(k, r);
      const tombstone: TombstoneState = { kind: 'tombstone', stamp: stamp(1), until: now + 60_000 };
      expect(await store.mergeState(k, tombstone)).toEqual({ state: 'tombstone', changed: true });
      expect(await store.readState(k)).toEqual(mergeRecords(live(r), tombstone));
      expect(count('elastic_session_fields', 'key = ?', k)).toBe(0);
      expect(await store.listByUser('alice')).toEqual([]);
    });

    it('mergeState() of a record that has already expired leaves a free key free and writes no row', async () => {
      const store = open();
      const k = key();
      const expired = record({ a: 1 }, { createdAt: now - 2 * HOUR, lastSeenAt: now - 2 * HOUR });
      expect(await store.mergeState(k, live(expired))).toEqual({ state: 'absent', changed: false });
      expect(count('elastic_sessions', 'key = ?', k)).toBe(0);
    });

    it('mergeWatermark() keeps the highest watermark until watermarkAt().until and tombstones only the sessions it covers (userStamp <= stamp)', async () => {
      const store = open();
      const at = stamp();
      const bound = (offset: number, userId = 'alice') => record({ a: 1 }, { userId, createdAt: now + offset, lastSeenAt: now + offset, userStamp: offset === 0 ? at : stamp(offset) });
      const sessions = { before: bound(-10), equal: bound(0), after: bound(10), other: bound(-10, 'bob') };
      const names = ['before', 'equal', 'after', 'other'] as const;
      const keys = { before: key(), equal: key(), after: key(), other: key() };
      for (const name of names) await store.create(keys[name], sessions[name]);
      const covered = names.filter((name) => sessions[name].userId === 'alice' && covers(watermarkAt(at), sessions[name]));
      expect(covered, 'the core decides; the sessions bound at and before the watermark are covered').toEqual(['before', 'equal']);
      expect(await store.mergeWatermark('alice', at)).toBe(2);
      expect(await store.readWatermark('alice')).toEqual(watermarkAt(at));
      for (const name of covered) expect(await store.readState(keys[name])).toEqual(revokedTombstone(sessions[name]));
      expect(count('elastic_session_fields', 'key = ?', keys.before)).toBe(0);
      expect(await store.load(keys.after)).not.toBeNull();
      expect(await store.load(keys.other)).not.toBeNull();
      expect(await store.mergeWatermark('alice', stamp(-100))).toBe(0);
      expect(await store.readWatermark('alice')).toEqual(watermarkAt(at));
      expect(await store.readWatermark('bob')).toBeNull();
      await expect(store.mergeWatermark('alice', '')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    });

    it('sweep() removes dead watermarks too, counted within its limit', async () => {
      const store = open();
      await store.mergeWatermark('alice', stamp());
      await store.mergeWatermark('bob', stamp(1));
      const k = key();
      await store.create(k, record({ a: 1 }));
      now = watermarkAt(stamp(1)).until;
      expect(await store.readWatermark('alice')).toBeNull();
      expect(count('elastic_session_watermarks')).toBe(2);
      expect(await store.sweep(2)).toBe(2);
      expect(await store.sweep(2)).toBe(1);
      expect(await store.sweep(2)).toBe(0);
      expect(count('elastic_session_watermarks')).toBe(0);
      expect(count('elastic_sessions')).toBe(0);
    });

    it('a revoke from one thread and merges of the user\'s sessions from three others leave none alive, whatever the order', async () => {
      const store = open();
      const at = stamp();
      const keys = Array.from({ length: 30 }, () => key());
      const session = record({ a: 1 }, { userId: 'alice', userStamp: stamp(-1) });
      const merges = keys.map((k): ThreadOp => ({ op: 'mergeState', key: k, state: live(session) }));
      const threads: ThreadOp[][] = [merges.slice(0, 10), [{ op: 'mergeWatermark', userId: 'alice', stamp: at }], merges.slice(10, 20), merges.slice(20)];
      const [first = [], [killed] = [], ...rest] = await runFromThreads({ dir, path, threads });
      const outcomes = [...first, ...rest.flat()] as { state: string }[];
      expect(outcomes.filter((outcome) => outcome.state === 'live').length, 'every merge that came first was killed by the watermark').toBe(killed);
      for (const k of keys) expect(await store.readState(k)).toEqual(revokedTombstone(session));
    });

    it('mergeState() from 5 threads, each on its own connection, loses no field and raises the version once per change', async () => {
      const store = open();
      const k = key();
      const base = record({ base: true });
      await store.create(k, base);
      const names = Array.from({ length: 5 }, (_, t) => Array.from({ length: 8 }, (_, i) => `t${t}m${i}`));
      const threads = names.map((list) => list.map((name): ThreadOp => ({ op: 'mergeState', key: k, state: live({ ...base, fields: { [name]: { value: JSON.stringify(name), stamp: stamp(1) } } }) })));
      const results = await runFromThreads({ dir, path, threads });
      expect(results.flat()).toEqual(Array.from({ length: 40 }, () => ({ state: 'live', changed: true })));
      const loaded = await store.load(k);
      for (const name of names.flat()) expect(fieldValue(loaded, name), name).toBe(name);
      expect(fieldValue(loaded, 'base')).toBe(true);
      expect(loaded?.version).toBe(41);
    });
  });

  describe('records written by schema version 1 (the previous release)', () => {
    /** Schema version 1 and its rows exactly as the previous release wrote them (its migration and statements, copied). */
    const V1_SCHEMA = `CREATE TABLE elastic_sessions (
       key TEXT PRIMARY KEY,
       created_at INTEGER NOT NULL,
       last_seen_at INTEGER NOT NULL,
       idle_timeout INTEGER NOT NULL,
       absolute_expires_at INTEGER NOT NULL,
       expires_at INTEGER NOT NULL,
       user_id TEXT,
       version INTEGER NOT NULL,
       tombstone_until INTEGER
     ) WITHOUT ROWID;
     CREATE TABLE elastic_session_fields (
       key TEXT NOT NULL,
       name TEXT NOT NULL,
       value TEXT,
       stamp TEXT NOT NULL,
       PRIMARY KEY (key, name)
     ) WITHOUT ROWID;
     CREATE INDEX elastic_sessions_dead_at ON elastic_sessions (coalesce(tombstone_until, expires_at));
     CREATE INDEX elastic_sessions_user ON elastic_sessions (user_id) WHERE user_id IS NOT NULL;`;
    type V1Session = Omit<StoredSession, 'userStamp'>;
    const v1 = (fields: Record<string, unknown>, meta: Partial<StoredSession> = {}): V1Session => {
      const { userStamp: _, ...session } = record(fields, meta);
      return session;
    };
    const writeV1 = (sessions: Record<string, V1Session>, destroyed: string[] = []) =>
      raw(path, (db) => {
        db.pragma('journal_mode = WAL');
        db.transaction(() => {
          db.exec('CREATE TABLE IF NOT EXISTS elastic_session_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)');
          db.exec(V1_SCHEMA);
          db.prepare('INSERT INTO elastic_session_schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version').run(1);
          for (const [k, session] of Object.entries(sessions)) {
            const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version } = session;
            db.prepare(
              `INSERT INTO elastic_sessions (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
            ).run(k, createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, Math.min(lastSeenAt + idleTimeout, absoluteExpiresAt), userId ?? null, version);
            for (const [name, field] of Object.entries(session.fields)) {
              db.prepare(
                `INSERT INTO elastic_session_fields (key, name, value, stamp) VALUES (?, ?, ?, ?)
                 ON CONFLICT (key, name) DO UPDATE SET value = excluded.value, stamp = excluded.stamp
                 WHERE excluded.stamp > elastic_session_fields.stamp`,
              ).run(k, name, field.value, field.stamp);
            }
          }
          for (const k of destroyed) {
            db.prepare('UPDATE elastic_sessions SET tombstone_until = absolute_expires_at + ?, user_id = NULL WHERE key = ? AND tombstone_until IS NULL AND expires_at > ?').run(TOMBSTONE_GRACE_MS, k, now);
            db.prepare('DELETE FROM elastic_session_fields WHERE key = ?').run(k);
          }
        })();
      });
    const schemaVersion = () => raw(path, (db) => db.prepare('SELECT version FROM elastic_session_schema').pluck().get());

    it('opening migrates them: they load with the empty userStamp, apply, read and merge by the new rules', async () => {
      const keys = { alice: key(), plain: key(), destroyed: key(), expired: key(), dave: key() };
      const sessions = {
        alice: v1({ a: 1, b: 2 }, { userId: 'alice', version: 3 }),
        plain: v1({ a: 1 }),
        destroyed: v1({ a: 1 }, { userId: 'alice' }),
        expired: v1({ a: 1 }, { idleTimeout: 60_000 }),
        dave: v1({ a: 1 }, { userId: 'dave' }),
      };
      writeV1({ [keys.alice]: sessions.alice, [keys.plain]: sessions.plain, [keys.destroyed]: sessions.destroyed, [keys.expired]: sessions.expired, [keys.dave]: sessions.dave }, [keys.destroyed]);
      now += 60_000;
      const store = open();
      expect(schemaVersion()).toBe(SQLITE_SCHEMA_VERSION);

      expect(await store.load(keys.alice)).toEqual({ ...sessions.alice, userStamp: '' });
      expect(await store.readState(keys.alice)).toEqual({ kind: 'live', record: { ...sessions.alice, userStamp: '' } });
      expect(await store.readState(keys.destroyed)).toEqual({ kind: 'tombstone', stamp: '', until: sessions.destroyed.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
      expect(await store.readState(keys.expired)).toBeNull();
      expect((await store.listByUser('alice')).map((summary) => summary.key)).toEqual([keys.alice]);

      const bound = stamp(1);
      expect(await store.apply(keys.alice, { fields: { a: { value: '10', stamp: stamp(1) } }, userId: 'bob', userStamp: bound })).toEqual({ status: 'ok', version: 4 });
      expect(await store.load(keys.alice)).toMatchObject({ userId: 'bob', userStamp: bound, version: 4 });
      expect(fieldValue(await store.load(keys.alice), 'a')).toBe(10);
      expect(fieldValue(await store.load(keys.alice), 'b')).toBe(2);

      const foreign = { ...sessions.plain, fields: record({ c: 3 }).fields, userId: 'carol', userStamp: stamp(1), lastSeenAt: now };
      expect(await store.mergeState(keys.plain, live(foreign))).toEqual({ state: 'live', changed: true });
      const merged = await store.load(keys.plain);
      expect(merged).toMatchObject({ userId: 'carol', userStamp: foreign.userStamp, lastSeenAt: now, version: 2 });
      expect(fieldValue(merged, 'a')).toBe(1);
      expect(fieldValue(merged, 'c')).toBe(3);

      const revived = record({ a: 2 }, { userStamp: stamp(1), absoluteExpiresAt: sessions.destroyed.absoluteExpiresAt });
      expect(await store.mergeState(keys.destroyed, live(revived))).toEqual({ state: 'tombstone', changed: false });
      expect(await store.create(keys.destroyed, record())).toBe(false);
      expect(await store.mergeWatermark('dave', stamp())).toBe(1);
      expect(await store.readState(keys.dave)).toEqual(revokedTombstone({ ...sessions.dave, userStamp: '' }));
      expect(await store.create(keys.expired, record({ fresh: true }))).toBe(true);
    });

    it('five threads opening such a file at once migrate it once, and all of their deltas apply', async () => {
      const k = key();
      writeV1({ [k]: v1({ base: true }, { userId: 'alice' }) });
      const threads = Array.from({ length: 5 }, (_, t) => Array.from({ length: 4 }, (_, i) => ({ name: `t${t}f${i}`, stamp: stamp(1) })));
      expect(await applyFromThreads({ dir, path, key: k, threads })).toEqual(Array.from({ length: 20 }, () => 'ok'));
      expect(schemaVersion()).toBe(SQLITE_SCHEMA_VERSION);
      const loaded = await open().load(k);
      expect(loaded).toMatchObject({ userId: 'alice', userStamp: '', version: 21 });
      for (const field of threads.flat()) expect(fieldValue(loaded, field.name)).toBe(field.name);
    });

    it('"elastic-session migrate" opens the file, which migrates it, and says so', async () => {
      writeV1({ [key()]: v1({ a: 1 }) });
      const out: string[] = [];
      const io: CliIO = { stdout: (text) => out.push(text), stderr: (text) => out.push(text), env: {}, cwd: dir, readStdin: async () => '', waitForStop: () => new Promise(() => undefined) };
      expect(await run(['migrate', '--store', `sqlite:${path}`], io)).toBe(0);
      expect(out.join('')).toContain('SQLite migrates when it opens');
      expect(schemaVersion()).toBe(SQLITE_SCHEMA_VERSION);
      expect(raw(path, (db) => db.prepare('SELECT user_stamp FROM elastic_sessions').pluck().all())).toEqual(['']);
    });
  });
});
