import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { published } from './helpers/channels.js';
import { formatStamp } from '../src/core/hlc.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { CliIO } from '../src/cli/run.js';
import { mergeRecords, revokedTombstone, sameState, settle, watermarkAt } from '../src/core/record.js';
import type { KeyState, LiveState, StoredSession, TombstoneState } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { migrateMysql, MYSQL_SCHEMA_VERSION, mysqlStore, mysqlSweepLockName, openMysqlStore } from '../src/stores/mysql.js';
import type { MysqlStore } from '../src/stores/mysql.js';
import { runStoreConformance } from '../src/testing/index.js';
import { stampAt, storedFields, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { freePort } from './helpers/postgres-cluster.js';
import { createTestTables, MYSQL_URL, mysqlV1 } from './helpers/mysql.js';
import type { TestTables } from './helpers/mysql.js';

let db: TestTables;

beforeAll(async () => {
  db = await createTestTables();
});

afterAll(async () => {
  await db?.drop();
});

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'mysql',
  fakeClock: true,
  capabilities: { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async ({ clock }) => ({
    store: mysqlStore({ pool: db.pool, table: db.table, clock }),
    connect: () => openMysqlStore(db.url, { clock, pool: { connectionLimit: 2 } }),
    corrupt: async (key) => {
      await db.pool.query(`UPDATE \`${db.table}\` SET fields = '{"a": 42}' WHERE \`key\` = ?`, [key]);
    },
  }),
});


describe('mysql store', () => {
  let now: number;
  const clock = () => now;
  const record = (fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession => storedRecord(fields, meta, now);
  const store = (table = db.table): MysqlStore => mysqlStore({ pool: db.pool, table, clock });

  beforeEach(() => {
    now = Date.now();
  });

  it('a delta that only moves lastSeenAt or the principal is one statement', async () => {
    let queries = 0;
    const counted = new Proxy(db.pool, {
      get(target, property, receiver) {
        if (property === 'query') return (...args: Parameters<mysql.Pool['query']>) => (queries++, target.query(...args));
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const s = mysqlStore({ pool: counted, table: db.table, clock });
    const k = storeKey();
    await s.create(k, record({ a: 1 }));
    queries = 0;
    expect(await s.apply(k, { fields: {}, lastSeenAt: now + 10, userId: 'carol', userStamp: stampAt(now + 10) })).toEqual({ status: 'ok', version: 2 });
    expect(await s.apply(k, { fields: {}, lastSeenAt: now + 5, expectVersion: 2 })).toEqual({ status: 'ok', version: 3 });
    expect(queries).toBe(2);
    const loaded = await s.load(k);
    expect(loaded).toMatchObject({ lastSeenAt: now + 10, userId: 'carol', version: 3 });
    expect(await s.apply(k, { fields: {}, expectVersion: 2 })).toEqual({ status: 'conflict', version: 3 });
  });

  it('reads never return an expired session, even while its row is not yet swept', async () => {
    const s = store();
    const k = storeKey();
    await s.create(k, record({ a: 1 }, { idleTimeout: 1000 }));
    now += 1000;
    expect(await s.load(k)).toBeNull();
    expect(await s.apply(k, { fields: { a: { value: '2', stamp: formatStamp(now, 0, '00000000') } } })).toEqual({ status: 'gone' });
    expect(await s.apply(k, { fields: {}, lastSeenAt: now })).toEqual({ status: 'gone' });
    const [rows] = await db.pool.query<mysql.RowDataPacket[]>(`SELECT 1 FROM \`${db.table}\` WHERE \`key\` = ?`, [k]);
    expect(rows).toHaveLength(1);
  });

  it('create() takes over the row of an expired session and of a tombstone past its time', async () => {
    const s = store();
    const expired = storeKey();
    await s.create(expired, record({ a: 1 }, { idleTimeout: 1000 }));
    const destroyed = storeKey();
    await s.create(destroyed, record({}, { absoluteExpiresAt: now + 2000 }));
    await s.destroy(destroyed, 1000);
    now += 2500;
    expect(await s.create(destroyed, record({ b: 1 }))).toBe(false);
    now += 1000;
    expect(await s.create(expired, record({ b: 2 }))).toBe(true);
    expect(await s.create(destroyed, record({ b: 3 }))).toBe(true);
    expect((await s.load(expired))?.fields.a).toBeUndefined();
    expect((await s.load(destroyed))?.fields.b?.value).toBe('3');
  });

  it('a row whose fields have the wrong shape loads as null and is counted', async () => {
    const s = store();
    const corrupt = await published(CHANNELS.corrupt, async () => {
      for (const fields of ['[]', '"text"', '{"a": {"v": 1, "s": "x"}}', '{"a": null}']) {
        const k = storeKey();
        await s.create(k, record({ a: 1 }));
        await db.pool.query(`UPDATE \`${db.table}\` SET fields = ? WHERE \`key\` = ?`, [fields, k]);
        expect(await s.load(k)).toBeNull();
      }
    });
    expect(corrupt).toHaveLength(4);
  });

  it('returns field maps without a prototype and keeps "__proto__" as a plain field', async () => {
    const s = store();
    const k = storeKey();
    await s.create(k, record(JSON.parse('{"__proto__": 1, "constructor": 2}') as Record<string, unknown>));
    const loaded = await s.load(k);
    expect(Object.getPrototypeOf(loaded?.fields)).toBeNull();
    expect(Object.keys(loaded?.fields ?? {}).sort()).toEqual(['__proto__', 'constructor']);
  });

  it('migrates on first use, and migrating again (from many instances at once) changes nothing', async () => {
    const table = db.another();
    const results = await Promise.all(Array.from({ length: 3 }, () => migrateMysql(db.pool, { table })));
    expect(results.filter((result) => result.from === 0)).toHaveLength(1);
    expect(await migrateMysql(db.pool, { table })).toEqual({ from: MYSQL_SCHEMA_VERSION, to: MYSQL_SCHEMA_VERSION });
    const [indexes] = await db.pool.query<mysql.RowDataPacket[]>(`SHOW INDEX FROM \`${table}\``);
    expect(new Set(indexes.map((row) => row.Key_name as string))).toEqual(new Set(['PRIMARY', `${table}_expires_at`, `${table}_user_id`]));
  });

  it('with migrate: false, unmigrated tables are a configuration error that names the migrate command', async () => {
    const s = mysqlStore({ pool: db.pool, table: db.another(), migrate: false, clock });
    await expect(s.load(storeKey())).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/elastic-session migrate/) as unknown });
  });

  it('refuses tables of a newer schema version than it understands', async () => {
    const table = db.another();
    await migrateMysql(db.pool, { table });
    await db.pool.query(`UPDATE \`${table}_schema\` SET version = 99`);
    await expect(store(table).load(storeKey())).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { schemaVersion: 99 } });
  });

  it('an unreachable server is ESESS_STORE_UNAVAILABLE with the driver error as cause', async () => {
    const pool = mysql.createPool({ host: '127.0.0.1', port: await freePort(), user: 'root', database: 'test', connectTimeout: 1000 });
    try {
      const error: unknown = await mysqlStore({ pool, clock }).load(storeKey()).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'mysql' } });
      expect((error as Error).cause).toBeInstanceOf(Error);
    } finally {
      await pool.end();
    }
  });

  it('a store key longer than the table allows is invalid input, not an outage', async () => {
    await expect(store().create('k'.repeat(300), record())).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('refuses invalid options, naming the option', () => {
    expect(() => mysqlStore({ pool: db.pool, table: 'x; DROP TABLE y' })).toThrow(/"table"/);
    expect(() => mysqlStore({ pool: undefined as unknown as mysql.Pool })).toThrow(/"pool"/);
  });

  it('openMysqlStore() owns its pool (close() ends it) and refuses URLs of other schemes', async () => {
    const s = await openMysqlStore(db.url, { clock });
    const k = storeKey();
    expect(await s.create(k, record({ a: 1 }))).toBe(true);
    await s.close();
    await expect(s.load(k)).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    expect(await store().load(k)).not.toBeNull();
    await expect(openMysqlStore('postgres://localhost/test')).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
    await expect(openMysqlStore('mysql://localhost:3306')).rejects.toMatchObject({ code: 'ESESS_CONFIG' });
  });

  describe('sweeping', () => {
    let table: string;
    beforeEach(async () => {
      table = db.another();
      await store(table).load('warm-up: migrate');
    });

    const expiredRows = async (count: number) => {
      const values = Array.from({ length: count }, (_, i) => [`expired-${i}`, now, now, 1000, now + 1000, now + 1000, 1, '{}']);
      await db.pool.query(`INSERT INTO \`${table}\` (\`key\`, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, version, fields) VALUES ?`, [values]);
    };
    const rowCount = async () => {
      const [rows] = await db.pool.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${table}\``);
      return Number(rows[0]?.n);
    };
    /** Every deleted row costs ~5 ms, so a batch is slow enough to overlap with others. */
    const slowDeletes = async () => {
      await db.pool.query(`CREATE TRIGGER \`${table}_slow\` BEFORE DELETE ON \`${table}\` FOR EACH ROW SET @slept = SLEEP(0.005)`);
    };
    const lockName = async () => mysqlSweepLockName('test', table);

    it('sweep() deletes in batches of at most `limit` and keeps live sessions', async () => {
      await expiredRows(250);
      const s = store(table);
      await s.create('live', record());
      now += 1000;
      const batches: number[] = [];
      for (let n = await s.sweep(100); n > 0; n = await s.sweep(100)) batches.push(n);
      expect(batches).toEqual([100, 100, 50]);
      expect(await rowCount()).toBe(1);
      expect(await s.load('live')).not.toBeNull();
    });

    it('sweep() returns 0 at once while another connection holds the sweep lock, and sweeps once it is released', async () => {
      await expiredRows(50);
      now += 1000;
      const holder = await mysql.createConnection(MYSQL_URL);
      try {
        const [held] = await holder.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS held', [await lockName()]);
        expect(held[0]?.held).toBe(1);
        const started = performance.now();
        expect(await store(table).sweep(1000)).toBe(0);
        expect(performance.now() - started).toBeLessThan(500);
        expect(await rowCount()).toBe(50);
        await holder.query('DO RELEASE_LOCK(?)', [await lockName()]);
        expect(await store(table).sweep(1000)).toBe(50);
      } finally {
        await holder.end();
      }
    });

    it('a second instance never sweeps while the first one is in a batch, and live sessions stay writable', async () => {
      await expiredRows(150);
      await slowDeletes();
      const first = store(table);
      await first.create('live', record());
      now += 1000;
      const other = await openMysqlStore(MYSQL_URL, { table, clock, pool: { connectionLimit: 1 } });
      try {
        await other.load('warm-up');
        let firstDone = false;
        const firstBatch = first.sweep(100).finally(() => (firstDone = true));
        const holder = await mysql.createConnection(MYSQL_URL);
        try {
          for (let i = 0; i < 400; i++) {
            const [used] = await holder.query<mysql.RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS id', [await lockName()]);
            if (used[0]?.id !== null) break;
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        } finally {
          await holder.end();
        }
        const started = performance.now();
        expect(await other.sweep(100)).toBe(0);
        expect(await other.apply('live', { fields: { b: { value: '2', stamp: formatStamp(now, 1, '00000000') } }, lastSeenAt: now })).toMatchObject({ status: 'ok' });
        expect(await other.load('live')).not.toBeNull();
        expect(performance.now() - started).toBeLessThan(300);
        expect(firstDone, 'the first batch was still running').toBe(false);
        expect(await firstBatch).toBe(100);
        expect(await other.sweep(100)).toBe(50);
      } finally {
        await other.close();
      }
    });
  });
});

const HOUR = 3_600_000;

describe('mysql replica powers', () => {
  let now: number;
  const clock = () => now;
  const store = (table = db.table): MysqlStore => mysqlStore({ pool: db.pool, table, clock });
  /** What the core's model says mergeState leaves, to compare the store with. */
  const modelMerge = async (s: MysqlStore, key: string, foreign: LiveState | TombstoneState): Promise<KeyState> => {
    const merged = mergeRecords(await s.readState(key), foreign);
    const user = merged?.kind === 'live' ? merged.record.userId : null;
    return settle(merged, user === null ? null : await s.readWatermark(user), now);
  };
  beforeEach(() => {
    now = Date.now();
  });

  it('apply() changes the principal only with a strictly newer userStamp, with fields or without', async () => {
    const s = store();
    for (const fields of [{}, storedFields({ a: 1 }, now)]) {
      const k = storeKey();
      const created = stampAt(now, 0, 'aaaaaaaa');
      await s.create(k, storedRecord({}, { userStamp: created }, now));
      await s.apply(k, { fields, userId: 'alice', userStamp: stampAt(now - 1) });
      await s.apply(k, { fields, userId: 'alice', userStamp: created });
      expect(await s.load(k)).toMatchObject({ userId: null, userStamp: created });
      const later = stampAt(now, 0, 'bbbbbbbb');
      await s.apply(k, { fields, userId: 'alice', userStamp: later });
      expect(await s.load(k)).toMatchObject({ userId: 'alice', userStamp: later });
      expect((await s.listByUser('alice')).map((summary) => summary.key)).toContain(k);
      await s.apply(k, { fields, userId: null, userStamp: stampAt(now, 0, 'aaaaaaab') });
      expect((await s.load(k))?.userId).toBe('alice');
      await expect(s.apply(k, { fields, userId: 'bob' })).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    }
  });

  it('destroy() keeps its stamp on the tombstone, and readState() returns that stamp and until exactly', async () => {
    const s = store();
    const k = storeKey();
    const session = storedRecord({ a: 1 }, {}, now);
    await s.create(k, session);
    expect(await s.readState(k)).toEqual({ kind: 'live', record: session });
    const stamp = stampAt(now + 1);
    expect(await s.destroy(k, 1234, stamp)).toBe(true);
    expect(await s.readState(k)).toEqual({ kind: 'tombstone', stamp, until: session.absoluteExpiresAt + 1234 });
    now = session.absoluteExpiresAt + 1234;
    expect(await s.readState(k)).toBeNull();
  });

  it('mergeState() creates a free key at version 1, merges by the record rules, and never revives past a tombstone', async () => {
    const s = store();
    const k = storeKey();
    const carol = `carol-${storeKey()}`;
    const first = storedRecord({ a: 1, b: 1 }, { version: 7 }, now);
    expect(await s.mergeState(k, { kind: 'live', record: first })).toEqual({ state: 'live', changed: true });
    expect(await s.readState(k)).toEqual({ kind: 'live', record: { ...first, version: 1 } });
    expect(await s.mergeState(k, { kind: 'live', record: first })).toEqual({ state: 'live', changed: false });
    const second = storedRecord({ b: 2, c: 2 }, { userId: carol, userStamp: stampAt(now + 5) }, now + 5);
    const expected = await modelMerge(s, k, { kind: 'live', record: second });
    expect(await s.mergeState(k, { kind: 'live', record: second })).toEqual({ state: 'live', changed: true });
    const merged = await s.readState(k);
    expect(sameState(merged, expected)).toBe(true);
    expect(merged).toMatchObject({ record: { version: 2, userId: carol } });
    const tombstone: TombstoneState = { kind: 'tombstone', stamp: stampAt(now + 6), until: now + 48 * HOUR };
    expect(await s.mergeState(k, tombstone)).toEqual({ state: 'tombstone', changed: true });
    expect(await s.listByUser(carol)).toEqual([]);
    expect(await s.mergeState(k, { kind: 'live', record: storedRecord({ d: 4 }, {}, now + 7) })).toEqual({ state: 'tombstone', changed: false });
    expect(await s.readState(k)).toEqual(tombstone);
    expect(await s.create(k, storedRecord({}, {}, now))).toBe(false);
    const early = stampAt(now);
    expect(await s.mergeState(k, { kind: 'tombstone', stamp: early, until: now + 72 * HOUR })).toEqual({ state: 'tombstone', changed: true });
    expect(await s.readState(k)).toEqual({ kind: 'tombstone', stamp: tombstone.stamp, until: now + 72 * HOUR });
  });

  it('mergeState() of a state that is already dead leaves the key free; a key too long is invalid input', async () => {
    const s = store();
    const k = storeKey();
    expect(await s.mergeState(k, { kind: 'tombstone', stamp: stampAt(now), until: now })).toEqual({ state: 'absent', changed: false });
    const [rows] = await db.pool.query<mysql.RowDataPacket[]>(`SELECT 1 FROM \`${db.table}\` WHERE \`key\` = ?`, [k]);
    expect(rows).toHaveLength(0);
    await expect(s.mergeState('k'.repeat(300), { kind: 'live', record: storedRecord({}, {}, now) })).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('mergeWatermark() raises the watermark (never lowers it) and revokes the sessions it covers; mergeState() then revokes arrivals', async () => {
    const s = store();
    const user = `user-${storeKey()}`;
    const [before, after] = [storeKey(), storeKey()];
    const old = storedRecord({}, { userId: user }, now - 10);
    const young = storedRecord({}, { userId: user }, now + 10);
    await s.create(before, old);
    await s.create(after, young);
    const stamp = stampAt(now);
    expect(await s.mergeWatermark(user, stamp)).toBe(1);
    expect(await s.readWatermark(user)).toEqual(watermarkAt(stamp));
    expect(await s.readState(before)).toEqual(revokedTombstone(old));
    expect(await s.readState(after)).toEqual({ kind: 'live', record: young });
    expect(await s.mergeWatermark(user, stampAt(now - 100))).toBe(0);
    expect(await s.readWatermark(user)).toEqual(watermarkAt(stamp));
    const raised = stampAt(now, 1);
    expect(await s.mergeWatermark(user, raised)).toBe(0);
    expect(await s.readWatermark(user)).toEqual(watermarkAt(raised));
    const arriving = storedRecord({ a: 1 }, { userId: user }, now - 1);
    const k = storeKey();
    expect(await s.mergeState(k, { kind: 'live', record: arriving })).toEqual({ state: 'tombstone', changed: true });
    expect(await s.readState(k)).toEqual(revokedTombstone(arriving));
    await expect(s.mergeWatermark(user, '')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('destroyByUser() with a stamp raises the watermark first and stamps the tombstones', async () => {
    const s = store();
    const user = `user-${storeKey()}`;
    const k = storeKey();
    const session = storedRecord({}, { userId: user }, now + 50);
    await s.create(k, session);
    const stamp = stampAt(now);
    expect(await s.destroyByUser(user, 1000, stamp)).toBe(1);
    expect(await s.readWatermark(user)).toEqual(watermarkAt(stamp));
    expect(await s.readState(k)).toEqual({ kind: 'tombstone', stamp, until: session.absoluteExpiresAt + 1000 });
  });

  it('a watermark past its time reads as null, and the last batch of a sweep removes it without counting it', async () => {
    const table = db.another();
    const s = store(table);
    const stamp = stampAt(now);
    await s.mergeWatermark('expiring', stamp);
    now = watermarkAt(stamp).until;
    expect(await s.readWatermark('expiring')).toBeNull();
    expect(await s.sweep(100)).toBe(0);
    const [rows] = await db.pool.query<mysql.RowDataPacket[]>(`SELECT 1 FROM \`${table}_watermarks\``);
    expect(rows).toHaveLength(0);
  });

  it('mergeState() from many clients at once on one key loses no field, whether the key existed or not', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => openMysqlStore(db.url, { clock, pool: { connectionLimit: 3 } })));
    try {
      for (const existed of [false, true]) {
        const k = storeKey();
        if (existed) await store().create(k, storedRecord({ seed: 0 }, {}, now));
        await Promise.all(
          clients.flatMap((client, c) =>
            Array.from({ length: 5 }, (_, i) => client.mergeState(k, { kind: 'live', record: storedRecord({ [`f${c}-${i}`]: i }, { lastSeenAt: now + i }, now) })),
          ),
        );
        const state = await store().readState(k);
        expect(Object.keys((state as LiveState).record.fields)).toHaveLength(20 + (existed ? 1 : 0));
        expect((state as LiveState).record.lastSeenAt).toBe(now + 4);
      }
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });

  it('mergeState() and mergeWatermark() racing from two clients: a record the watermark covers never survives it', async () => {
    const [a, b] = await Promise.all([openMysqlStore(db.url, { clock, pool: { connectionLimit: 2 } }), openMysqlStore(db.url, { clock, pool: { connectionLimit: 2 } })]);
    try {
      for (let round = 0; round < 40; round++) {
        const user = `racer-${storeKey()}`;
        const k = storeKey();
        if (round % 2 === 1) await a.mergeWatermark(user, stampAt(now - 1000));
        const record = storedRecord({ a: round }, { userId: user }, now - 1);
        await Promise.all([a.mergeState(k, { kind: 'live', record }), b.mergeWatermark(user, stampAt(now))]);
        expect((await a.readState(k))?.kind, `round ${round}`).toBe('tombstone');
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('mysql tables of the previous release (schema version 1)', () => {
  let now: number;
  const clock = () => now;
  beforeEach(() => {
    now = Date.now();
  });

  const oldTables = async (table: string) => {
    await mysqlV1.createTables(db.pool, table);
    const keys = { bound: storeKey(), anonymous: storeKey(), destroyed: storeKey() };
    const { userStamp: _b, ...bound } = storedRecord({ cart: ['a'] }, { userId: 'old-user' }, now);
    const { userStamp: _a, ...anonymous } = storedRecord({ theme: 'dark' }, {}, now);
    const { userStamp: _d, ...destroyed } = storedRecord({ x: 1 }, { userId: 'old-user' }, now);
    await mysqlV1.create(db.pool, table, keys.bound, bound);
    await mysqlV1.create(db.pool, table, keys.anonymous, anonymous);
    await mysqlV1.create(db.pool, table, keys.destroyed, destroyed);
    expect(await mysqlV1.destroy(db.pool, table, keys.destroyed, TOMBSTONE_GRACE_MS, now)).toBe(true);
    return { keys, bound, anonymous, destroyed };
  };

  it('with migrate: false, version-1 tables are a configuration error that names the migrate command', async () => {
    const table = db.another();
    await oldTables(table);
    await expect(mysqlStore({ pool: db.pool, table, migrate: false, clock }).load(storeKey())).rejects.toMatchObject({
      code: 'ESESS_CONFIG',
      message: expect.stringMatching(/schema version 1, this elastic-session needs 2: run "elastic-session migrate"/) as unknown,
      context: { schemaVersion: 1, supportedVersion: MYSQL_SCHEMA_VERSION },
    });
  });

  it('elastic-session migrate upgrades them (1 -> 2); what version 1 wrote then loads, applies, reads and merges', async () => {
    const table = db.another();
    const { keys, bound, anonymous, destroyed } = await oldTables(table);
    const url = new URL(MYSQL_URL);
    url.searchParams.set('table', table);
    const { run } = await import('../src/cli/run.js');
    let stdout = '';
    let stderr = '';
    const io: CliIO = {
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      env: {},
      cwd: process.cwd(),
      readStdin: async () => '',
      waitForStop: () => new Promise<string>(() => undefined),
    };
    expect(await run(['migrate', '--store', url.toString()], io), stderr).toBe(0);
    expect(stdout).toBe(`schema version 1 -> ${MYSQL_SCHEMA_VERSION}\n`);
    expect(await migrateMysql(db.pool, { table })).toEqual({ from: MYSQL_SCHEMA_VERSION, to: MYSQL_SCHEMA_VERSION });

    const s = mysqlStore({ pool: db.pool, table, migrate: false, clock });
    expect(await s.load(keys.bound)).toEqual({ ...bound, userStamp: '' });
    expect(await s.readState(keys.anonymous)).toEqual({ kind: 'live', record: { ...anonymous, userStamp: '' } });
    expect(await s.readState(keys.destroyed)).toEqual({ kind: 'tombstone', stamp: '', until: destroyed.absoluteExpiresAt + TOMBSTONE_GRACE_MS });

    const stamp = stampAt(now + 1);
    expect(await s.apply(keys.anonymous, { fields: {}, userId: 'new-user', userStamp: stamp, lastSeenAt: now + 1 })).toEqual({ status: 'ok', version: 2 });
    expect(await s.load(keys.anonymous)).toMatchObject({ userId: 'new-user', userStamp: stamp, lastSeenAt: now + 1 });

    expect(await s.mergeState(keys.destroyed, { kind: 'live', record: storedRecord({ y: 1 }, {}, now) })).toEqual({ state: 'tombstone', changed: false });
    expect(await s.mergeState(keys.destroyed, { kind: 'tombstone', stamp: stampAt(now), until: now + 2 * 24 * HOUR })).toEqual({ state: 'tombstone', changed: true });
    expect(await s.readState(keys.destroyed)).toMatchObject({ kind: 'tombstone', until: now + 2 * 24 * HOUR });

    const foreign = storedRecord({ cart: ['a', 'b'] }, { userId: 'other-user', userStamp: stampAt(now + 2) }, now + 2);
    expect(await s.mergeState(keys.bound, { kind: 'live', record: foreign })).toEqual({ state: 'live', changed: true });
    expect(await s.load(keys.bound)).toMatchObject({ userId: 'other-user', userStamp: foreign.userStamp, lastSeenAt: now + 2, version: 2, fields: { cart: foreign.fields.cart } });
    expect(await s.listByUser('old-user')).toEqual([]);

    const again = storeKey();
    const { userStamp: _u, ...old } = storedRecord({}, { userId: 'old-user' }, now);
    await mysqlV1.create(db.pool, table, again, old);
    expect(await s.mergeWatermark('old-user', stampAt(now))).toBe(1);
    expect(await s.readState(again)).toMatchObject({ kind: 'tombstone' });
  });
});
