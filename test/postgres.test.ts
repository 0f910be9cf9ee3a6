import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { published } from './helpers/channels.js';
import type { CliIO } from '../src/cli/run.js';
import { formatStamp } from '../src/core/hlc.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { StoredField, StoredSession } from '../src/core/types.js';
import { generateEncryptionKey } from '../src/stores/encrypted.js';
import { expectAllUnderNewKey, sessionsUnderOldKey } from './helpers/reencrypt.js';
import { migratePostgres, openPostgresStore, POSTGRES_SCHEMA_VERSION, postgresStore } from '../src/stores/postgres.js';
import { runStoreConformance } from '../src/testing/index.js';
import { createTestSchema } from './helpers/postgres.js';
import type { TestSchema } from './helpers/postgres.js';

let db: TestSchema;

beforeAll(async () => {
  db = await createTestSchema();
});

afterAll(async () => {
  await db?.drop();
});

runStoreConformance({ describe, it, beforeEach, afterEach }, {
  name: 'postgres',
  fakeClock: true,
  setup: async ({ clock }) => ({
    store: postgresStore({ pool: db.pool, schema: db.schema, clock }),
    connect: () => openPostgresStore(db.url, { clock, pool: { max: 2 } }),
    corrupt: async (key) => {
      await db.pool.query(`UPDATE ${db.schema}.elastic_sessions SET fields = '{"a": 42}' WHERE key = $1`, [key]);
    },
  }),
});

const HOUR = 3_600_000;
const record = (now: number, fields: Record<string, unknown> = {}, meta: Partial<StoredSession> = {}): StoredSession => {
  const stored = Object.create(null) as Record<string, StoredField>;
  for (const [name, value] of Object.entries(fields)) stored[name] = { value: JSON.stringify(value), stamp: formatStamp(now, 0, '00000000') };
  return { createdAt: now, lastSeenAt: now, idleTimeout: HOUR, absoluteExpiresAt: now + 24 * HOUR, userId: null, version: 1, fields: stored, ...meta };
};
const key = () => randomBytes(32).toString('base64url');

describe('postgres store', () => {
  let now: number;
  const clock = () => now;
  beforeEach(() => {
    now = Date.now();
  });

  it('apply() merges a delta in one statement: one query per call', async () => {
    let queries = 0;
    const counted = new Proxy(db.pool, {
      get(target, property, receiver) {
        if (property === 'query') return (...args: Parameters<pg.Pool['query']>) => (queries++, target.query(...args));
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    const store = postgresStore({ pool: counted, schema: db.schema, clock });
    const k = key();
    await store.create(k, record(now, { a: 1 }));
    queries = 0;
    const result = await store.apply(k, { fields: { b: { value: '2', stamp: formatStamp(now + 1, 0, '00000000') } }, lastSeenAt: now + 1, userId: 'u1' });
    expect(result.status).toBe('ok');
    expect(queries).toBe(1);
    queries = 0;
    expect(await store.apply(k, { fields: {}, expectVersion: 99 })).toMatchObject({ status: 'conflict' });
    expect(await store.apply(key(), { fields: {} })).toEqual({ status: 'gone' });
    expect(queries).toBe(2);
  });

  it('reads never return an expired session, even while its row is not yet swept', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const k = key();
    await store.create(k, record(now, { a: 1 }, { idleTimeout: 1000 }));
    now += 1000;
    expect(await store.load(k)).toBeNull();
    expect(await store.apply(k, { fields: {}, lastSeenAt: now })).toEqual({ status: 'gone' });
    const { rowCount } = await db.pool.query(`SELECT 1 FROM ${db.schema}.elastic_sessions WHERE key = $1`, [k]);
    expect(rowCount).toBe(1);
  });

  it('create() takes over the row of an expired session and of a tombstone past its time', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const expired = key();
    await store.create(expired, record(now, { a: 1 }, { idleTimeout: 1000 }));
    const destroyed = key();
    await store.create(destroyed, record(now, {}, { absoluteExpiresAt: now + 2000 }));
    await store.destroy(destroyed, 1000);
    now += 2500;
    expect(await store.create(destroyed, record(now, { b: 1 }))).toBe(false);
    now += 1000;
    expect(await store.create(expired, record(now, { b: 2 }))).toBe(true);
    expect(await store.create(destroyed, record(now, { b: 3 }))).toBe(true);
    expect((await store.load(expired))?.fields.a).toBeUndefined();
    expect((await store.load(destroyed))?.fields.b?.value).toBe('3');
  });

  it('a row whose fields have the wrong shape loads as null and is counted', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const corrupt = await published(CHANNELS.corrupt, async () => {
      for (const fields of ['[]', '"text"', '{"a": {"v": 1, "s": "x"}}', '{"a": {"v": "1"}}', '{"a": null}']) {
        const k = key();
        await store.create(k, record(now, { a: 1 }));
        await db.pool.query(`UPDATE ${db.schema}.elastic_sessions SET fields = $2::jsonb WHERE key = $1`, [k, fields]);
        expect(await store.load(k)).toBeNull();
      }
    });
    expect(corrupt).toHaveLength(5);
  });

  it('returns field maps without a prototype', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const k = key();
    await store.create(k, record(now, JSON.parse('{"__proto__": 1, "constructor": 2}') as Record<string, unknown>));
    const loaded = await store.load(k);
    expect(Object.getPrototypeOf(loaded?.fields)).toBeNull();
    expect(Object.keys(loaded?.fields ?? {}).sort()).toEqual(['__proto__', 'constructor']);
  });

  it('migrates a new schema on first use, and migrating again changes nothing', async () => {
    const schema = `${db.schema}_m`;
    try {
      const store = postgresStore({ pool: db.pool, schema, clock });
      expect(await store.load(key())).toBeNull();
      expect(await migratePostgres(db.pool, { schema })).toEqual({ from: POSTGRES_SCHEMA_VERSION, to: POSTGRES_SCHEMA_VERSION });
      const indexes = await db.pool.query('SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname', [schema]);
      expect(indexes.rows.map((row: { indexname: string }) => row.indexname)).toEqual(['elastic_sessions_expires_at', 'elastic_sessions_pkey', 'elastic_sessions_schema_pkey', 'elastic_sessions_user_id']);
    } finally {
      await db.pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  });

  it('with migrate: false, unmigrated tables are a configuration error that names the migrate command', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, table: 'never_migrated', migrate: false, clock });
    await expect(store.load(key())).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/elastic-session migrate/) as unknown });
  });

  it('refuses tables of a newer schema version than it understands', async () => {
    const table = 'from_the_future';
    await migratePostgres(db.pool, { schema: db.schema, table });
    await db.pool.query(`UPDATE ${db.schema}.${table}_schema SET version = 99`);
    const store = postgresStore({ pool: db.pool, schema: db.schema, table, clock });
    await expect(store.load(key())).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { schemaVersion: 99 } });
  });

  it('migrations from many instances at once run once', async () => {
    const table = 'raced';
    const results = await Promise.all(Array.from({ length: 4 }, () => migratePostgres(db.pool, { schema: db.schema, table })));
    expect(results.filter((result) => result.from === 0)).toHaveLength(1);
  });

  it('an unreachable server is ESESS_STORE_UNAVAILABLE with the driver error as cause', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: 1, user: 'postgres', database: 'test', connectionTimeoutMillis: 1000 });
    try {
      const store = postgresStore({ pool, schema: db.schema, clock });
      const error: unknown = await store.load(key()).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'ESESS_STORE_UNAVAILABLE', retriable: true, context: { store: 'postgres' } });
      expect((error as Error).cause).toBeInstanceOf(Error);
    } finally {
      await pool.end();
    }
  });

  it('refuses invalid options, naming the option', () => {
    expect(() => postgresStore({ pool: db.pool, schema: 'bad-name' })).toThrow(/"schema"/);
    expect(() => postgresStore({ pool: db.pool, table: 'x; DROP TABLE y' })).toThrow(/"table"/);
    expect(() => postgresStore({ pool: undefined as unknown as pg.Pool })).toThrow(/"pool"/);
  });

  it('a NUL character in a field name is invalid input, not an outage', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const k = key();
    await expect(store.create(k, record(now, { 'a\u0000b': 1 }))).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('openPostgresStore() owns its pool: close() ends it', async () => {
    const store = await openPostgresStore(db.url, { clock });
    const k = key();
    expect(await store.create(k, record(now, { a: 1 }))).toBe(true);
    await store.close();
    await expect(store.load(k)).rejects.toMatchObject({ code: 'ESESS_STORE_CLOSED' });
    expect(await postgresStore({ pool: db.pool, schema: db.schema, clock }).load(k)).not.toBeNull();
  });

  it('openPostgresStore() refuses URLs of other schemes, naming the option', async () => {
    await expect(openPostgresStore('mysql://localhost/test')).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { option: 'store' } });
  });
});

describe('elastic-session reencrypt over PostgreSQL', () => {
  it('re-encrypts every live session under the new key, walking the table with scan(); the old key can then go', async () => {
    const table = `reencrypt_${randomBytes(4).toString('hex')}`;
    const url = new URL(db.url);
    url.searchParams.set('table', table);
    const oldKey = generateEncryptionKey('old');
    const newKey = generateEncryptionKey('new');
    const secrets = ['postgres-reencrypt-secret-0123456789abcdef'];
    const inner = postgresStore({ pool: db.pool, schema: db.schema, table });
    const ids = await sessionsUnderOldKey(inner, oldKey, secrets);

    const { run } = await import('../src/cli/run.js');
    let stdout = '';
    let stderr = '';
    const io: CliIO = {
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      env: { ELASTIC_SESSION_ENCRYPTION_KEYS: `${newKey},${oldKey}` },
      cwd: process.cwd(),
      readStdin: async () => '',
      waitForStop: () => new Promise<string>(() => undefined),
    };
    expect(await run(['reencrypt', '--store', url.toString()], io), stderr).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ scanned: 60, rewritten: 30, fields: 60, passes: 2, clean: true, keyId: 'new' });
    await expectAllUnderNewKey(inner, ids, { newKey, oldKey }, secrets);
  });
});
