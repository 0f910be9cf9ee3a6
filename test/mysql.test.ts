import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { published } from './helpers/channels.js';
import { formatStamp } from '../src/core/hlc.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { StoredField, StoredSession } from '../src/core/types.js';
import { migrateMysql, MYSQL_SCHEMA_VERSION, mysqlStore, mysqlSweepLockName, openMysqlStore } from '../src/stores/mysql.js';
import type { MysqlStore } from '../src/stores/mysql.js';
import { runStoreConformance } from '../src/testing/index.js';
import { freePort } from './helpers/postgres-cluster.js';
import { createTestTables, MYSQL_URL } from './helpers/mysql.js';
import type { TestTables } from './helpers/mysql.js';

let db: TestTables;

beforeAll(async () => {
  db = await createTestTables();
});

afterAll(async () => {
  await db?.drop();
});

runStoreConformance({ describe, it, beforeEach, afterEach }, {
  name: 'mysql',
  fakeClock: true,
  setup: async ({ clock }) => ({
    store: mysqlStore({ pool: db.pool, table: db.table, clock }),
    connect: () => openMysqlStore(db.url, { clock, pool: { connectionLimit: 2 } }),
    corrupt: async (key) => {
      await db.pool.query(`UPDATE \`${db.table}\` SET fields = '{"a": 42}' WHERE \`key\` = ?`, [key]);
    },
  }),
});

const HOUR = 3_600_000;
const key = () => randomBytes(32).toString('base64url');

describe('mysql store', () => {
  let now: number;
  const clock = () => now;
  const record = (fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession => {
    const stored = Object.create(null) as Record<string, StoredField>;
    for (const [name, value] of Object.entries(fields)) stored[name] = { value: JSON.stringify(value), stamp: formatStamp(now, 0, '00000000') };
    return { createdAt: now, lastSeenAt: now, idleTimeout: HOUR, absoluteExpiresAt: now + 24 * HOUR, userId: null, version: 1, fields: stored, ...meta };
  };
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
    const k = key();
    await s.create(k, record({ a: 1 }));
    queries = 0;
    expect(await s.apply(k, { fields: {}, lastSeenAt: now + 10, userId: 'carol' })).toEqual({ status: 'ok', version: 2 });
    expect(await s.apply(k, { fields: {}, lastSeenAt: now + 5, expectVersion: 2 })).toEqual({ status: 'ok', version: 3 });
    expect(queries).toBe(2);
    const loaded = await s.load(k);
    expect(loaded).toMatchObject({ lastSeenAt: now + 10, userId: 'carol', version: 3 });
    expect(await s.apply(k, { fields: {}, expectVersion: 2 })).toEqual({ status: 'conflict', version: 3 });
  });

  it('reads never return an expired session, even while its row is not yet swept', async () => {
    const s = store();
    const k = key();
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
    const expired = key();
    await s.create(expired, record({ a: 1 }, { idleTimeout: 1000 }));
    const destroyed = key();
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
        const k = key();
        await s.create(k, record({ a: 1 }));
        await db.pool.query(`UPDATE \`${db.table}\` SET fields = ? WHERE \`key\` = ?`, [fields, k]);
        expect(await s.load(k)).toBeNull();
      }
    });
    expect(corrupt).toHaveLength(4);
  });

  it('returns field maps without a prototype and keeps "__proto__" as a plain field', async () => {
    const s = store();
    const k = key();
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
    await expect(s.load(key())).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/elastic-session migrate/) as unknown });
  });

  it('refuses tables of a newer schema version than it understands', async () => {
    const table = db.another();
    await migrateMysql(db.pool, { table });
    await db.pool.query(`UPDATE \`${table}_schema\` SET version = 99`);
    await expect(store(table).load(key())).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { schemaVersion: 99 } });
  });

  it('an unreachable server is ESESS_STORE_UNAVAILABLE with the driver error as cause', async () => {
    const pool = mysql.createPool({ host: '127.0.0.1', port: await freePort(), user: 'root', database: 'test', connectTimeout: 1000 });
    try {
      const error: unknown = await mysqlStore({ pool, clock }).load(key()).catch((caught: unknown) => caught);
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
    const k = key();
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
