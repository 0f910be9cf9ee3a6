import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { published } from './helpers/channels.js';
import type { CliIO } from '../src/cli/run.js';
import { formatStamp } from '../src/core/hlc.js';
import { CHANNELS } from '../src/core/telemetry.js';
import { covers, mergeRecords, revokedTombstone, sameState, settle, watermarkAt } from '../src/core/record.js';
import type { KeyState, LiveState, TombstoneState } from '../src/core/types.js';
import { TOMBSTONE_GRACE_MS } from '../src/core/types.js';
import { generateEncryptionKey } from '../src/stores/encrypted.js';
import { expectAllUnderNewKey, sessionsUnderOldKey } from './helpers/reencrypt.js';
import { migratePostgres, openPostgresStore, POSTGRES_SCHEMA_VERSION, postgresStore } from '../src/stores/postgres.js';
import type { PostgresStore } from '../src/stores/postgres.js';
import { runStoreConformance } from '../src/testing/index.js';
import { stampAt, storedRecord, storeKey } from '../src/testing/fixtures.js';
import { createTestSchema, postgresV1 } from './helpers/postgres.js';
import type { TestSchema } from './helpers/postgres.js';

let db: TestSchema;

beforeAll(async () => {
  db = await createTestSchema();
});

afterAll(async () => {
  await db?.drop();
});

runStoreConformance({ describe, it, skip: it.skip, beforeEach, afterEach }, {
  name: 'postgres',
  fakeClock: true,
  capabilities: { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true },
  multiClient: true,
  corrupts: true,
  setup: async ({ clock }) => ({
    store: postgresStore({ pool: db.pool, schema: db.schema, clock }),
    connect: () => openPostgresStore(db.url, { clock, pool: { max: 2 } }),
    corrupt: async (key) => {
      await db.pool.query(`UPDATE ${db.schema}.elastic_sessions SET fields = '{"a": 42}' WHERE key = $1`, [key]);
    },
  }),
});


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
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }, {}, now));
    queries = 0;
    const result = await store.apply(k, { fields: { b: { value: '2', stamp: formatStamp(now + 1, 0, '00000000') } }, lastSeenAt: now + 1, userId: 'u1', userStamp: stampAt(now + 1) });
    expect(result.status).toBe('ok');
    expect(queries).toBe(1);
    queries = 0;
    expect(await store.apply(k, { fields: {}, expectVersion: 99 })).toMatchObject({ status: 'conflict' });
    expect(await store.apply(storeKey(), { fields: {} })).toEqual({ status: 'gone' });
    expect(queries).toBe(2);
  });

  it('reads never return an expired session, even while its row is not yet swept', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const k = storeKey();
    await store.create(k, storedRecord({ a: 1 }, { idleTimeout: 1000 }, now));
    now += 1000;
    expect(await store.load(k)).toBeNull();
    expect(await store.apply(k, { fields: {}, lastSeenAt: now })).toEqual({ status: 'gone' });
    const { rowCount } = await db.pool.query(`SELECT 1 FROM ${db.schema}.elastic_sessions WHERE key = $1`, [k]);
    expect(rowCount).toBe(1);
  });

  it('create() takes over the row of an expired session and of a tombstone past its time', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const expired = storeKey();
    await store.create(expired, storedRecord({ a: 1 }, { idleTimeout: 1000 }, now));
    const destroyed = storeKey();
    await store.create(destroyed, storedRecord({}, { absoluteExpiresAt: now + 2000 }, now));
    await store.destroy(destroyed, 1000);
    now += 2500;
    expect(await store.create(destroyed, storedRecord({ b: 1 }, {}, now))).toBe(false);
    now += 1000;
    expect(await store.create(expired, storedRecord({ b: 2 }, {}, now))).toBe(true);
    expect(await store.create(destroyed, storedRecord({ b: 3 }, {}, now))).toBe(true);
    expect((await store.load(expired))?.fields.a).toBeUndefined();
    expect((await store.load(destroyed))?.fields.b?.value).toBe('3');
  });

  it('a row whose fields have the wrong shape loads as null and is counted', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const corrupt = await published(CHANNELS.corrupt, async () => {
      for (const fields of ['[]', '"text"', '{"a": {"v": 1, "s": "x"}}', '{"a": {"v": "1"}}', '{"a": null}']) {
        const k = storeKey();
        await store.create(k, storedRecord({ a: 1 }, {}, now));
        await db.pool.query(`UPDATE ${db.schema}.elastic_sessions SET fields = $2::jsonb WHERE key = $1`, [k, fields]);
        expect(await store.load(k)).toBeNull();
      }
    });
    expect(corrupt).toHaveLength(5);
  });

  it('returns field maps without a prototype', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, clock });
    const k = storeKey();
    await store.create(k, storedRecord(JSON.parse('{"__proto__": 1, "constructor": 2}') as Record<string, unknown>, {}, now));
    const loaded = await store.load(k);
    expect(Object.getPrototypeOf(loaded?.fields)).toBeNull();
    expect(Object.keys(loaded?.fields ?? {}).sort()).toEqual(['__proto__', 'constructor']);
  });

  it('migrates a new schema on first use, and migrating again changes nothing', async () => {
    const schema = `${db.schema}_m`;
    try {
      const store = postgresStore({ pool: db.pool, schema, clock });
      expect(await store.load(storeKey())).toBeNull();
      expect(await migratePostgres(db.pool, { schema })).toEqual({ from: POSTGRES_SCHEMA_VERSION, to: POSTGRES_SCHEMA_VERSION });
      const indexes = await db.pool.query("SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename <> 'elastic_sessions_watermarks' ORDER BY indexname", [schema]);
      expect(indexes.rows.map((row: { indexname: string }) => row.indexname)).toEqual(['elastic_sessions_expires_at', 'elastic_sessions_pkey', 'elastic_sessions_schema_pkey', 'elastic_sessions_user_id']);
      const watermarkIndexes = await db.pool.query("SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'elastic_sessions_watermarks' ORDER BY indexname", [schema]);
      expect(watermarkIndexes.rows.map((row: { indexname: string }) => row.indexname)).toEqual(['elastic_sessions_wm_pkey', 'elastic_sessions_wm_until']);
    } finally {
      await db.pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  });

  it('with migrate: false, unmigrated tables are a configuration error that names the migrate command', async () => {
    const store = postgresStore({ pool: db.pool, schema: db.schema, table: 'never_migrated', migrate: false, clock });
    await expect(store.load(storeKey())).rejects.toMatchObject({ code: 'ESESS_CONFIG', message: expect.stringMatching(/elastic-session migrate/) as unknown });
  });

  it('refuses tables of a newer schema version than it understands', async () => {
    const table = 'from_the_future';
    await migratePostgres(db.pool, { schema: db.schema, table });
    await db.pool.query(`UPDATE ${db.schema}.${table}_schema SET version = 99`);
    const store = postgresStore({ pool: db.pool, schema: db.schema, table, clock });
    await expect(store.load(storeKey())).rejects.toMatchObject({ code: 'ESESS_CONFIG', context: { schemaVersion: 99 } });
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
      const error: unknown = await store.load(storeKey()).catch((caught: unknown) => caught);
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
    const k = storeKey();
    await expect(store.create(k, storedRecord({ 'a\u0000b': 1 }, {}, now))).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('openPostgresStore() owns its pool: close() ends it', async () => {
    const store = await openPostgresStore(db.url, { clock });
    const k = storeKey();
    expect(await store.create(k, storedRecord({ a: 1 }, {}, now))).toBe(true);
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
    expect(JSON.parse(stdout)).toEqual({ scanned: 60, rewritten: 30, fields: 120, passes: 2, clean: true, keyId: 'new' });
    await expectAllUnderNewKey(inner, ids, { newKey, oldKey }, secrets);
  });
});

const HOUR = 3_600_000;

describe('postgres replica powers', () => {
  let now: number;
  const clock = () => now;
  const store = (table?: string) => postgresStore({ pool: db.pool, schema: db.schema, clock, ...(table === undefined ? {} : { table }) });
  /** What the core's model says mergeState leaves, to compare the store with. */
  const modelMerge = async (s: PostgresStore, key: string, foreign: LiveState | TombstoneState): Promise<KeyState> => {
    const current = await s.readState(key);
    const merged = mergeRecords(current, foreign);
    const user = merged?.kind === 'live' ? merged.record.userId : null;
    return settle(merged, user === null ? null : await s.readWatermark(user), now);
  };
  beforeEach(() => {
    now = Date.now();
  });

  it('declares the scan and replica capabilities', () => {
    expect(store().capabilities).toMatchObject({ scan: true, replica: true, userIndex: true, cas: true });
  });

  it('apply() changes the principal only with a strictly newer userStamp', async () => {
    const s = store();
    const k = storeKey();
    const created = stampAt(now, 0, 'aaaaaaaa');
    await s.create(k, storedRecord({}, { userStamp: created }, now));
    expect(await s.apply(k, { fields: {}, userId: 'alice', userStamp: stampAt(now - 1) })).toMatchObject({ status: 'ok' });
    expect(await s.load(k)).toMatchObject({ userId: null, userStamp: created });
    await s.apply(k, { fields: {}, userId: 'alice', userStamp: created });
    expect((await s.load(k))?.userId).toBeNull();
    const later = stampAt(now, 0, 'bbbbbbbb');
    await s.apply(k, { fields: {}, userId: 'alice', userStamp: later });
    expect(await s.load(k)).toMatchObject({ userId: 'alice', userStamp: later });
    expect((await s.listByUser('alice')).map((summary) => summary.key)).toContain(k);
    await s.apply(k, { fields: {}, userId: null, userStamp: stampAt(now, 0, 'aaaaaaab') });
    expect((await s.load(k))?.userId).toBe('alice');
    await expect(s.apply(k, { fields: {}, userId: 'bob' })).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
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
    expect(await s.readState(storeKey())).toBeNull();
    await expect(s.destroy(k, 0, 'not a stamp')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('readState() of a session past its idle deadline is null', async () => {
    const s = store();
    const k = storeKey();
    await s.create(k, storedRecord({}, { idleTimeout: 1000 }, now));
    now += 1000;
    expect(await s.readState(k)).toBeNull();
  });

  it('mergeState() creates a free key at version 1, merges into a live one by the record rules, and never revives past a tombstone', async () => {
    const s = store();
    const k = storeKey();
    const carol = `carol-${storeKey()}`;
    const first = storedRecord({ a: 1, b: 1 }, { version: 7 }, now);
    expect(await s.mergeState(k, { kind: 'live', record: first })).toEqual({ state: 'live', changed: true });
    expect(await s.readState(k)).toEqual({ kind: 'live', record: { ...first, version: 1 } });
    expect(await s.mergeState(k, { kind: 'live', record: first })).toEqual({ state: 'live', changed: false });

    const second = storedRecord({ b: 2, c: 2 }, { lastSeenAt: now + 5, userId: carol, userStamp: stampAt(now + 5) }, now + 5);
    const expected = await modelMerge(s, k, { kind: 'live', record: second });
    expect(await s.mergeState(k, { kind: 'live', record: second })).toEqual({ state: 'live', changed: true });
    const merged = await s.readState(k);
    expect(sameState(merged, expected)).toBe(true);
    expect(merged).toMatchObject({ record: { version: 2, userId: carol, lastSeenAt: now + 5 } });
    expect((await s.listByUser(carol)).map((summary) => summary.key)).toEqual([k]);

    const tombstone: TombstoneState = { kind: 'tombstone', stamp: stampAt(now + 6), until: now + 48 * HOUR };
    expect(await s.mergeState(k, tombstone)).toEqual({ state: 'tombstone', changed: true });
    expect(await s.listByUser(carol)).toEqual([]);
    expect(await s.readState(k)).toEqual(tombstone);
    expect(await s.mergeState(k, { kind: 'live', record: storedRecord({ d: 4 }, {}, now + 7) })).toEqual({ state: 'tombstone', changed: false });
    expect(await s.readState(k)).toEqual(tombstone);
    // A live record guards its own absolute expiry: merged into a shorter tombstone, it extends the guard.
    const longer = storedRecord({ d: 4 }, { absoluteExpiresAt: now + 72 * HOUR }, now + 7);
    const extended = await modelMerge(s, k, { kind: 'live', record: longer });
    expect(await s.mergeState(k, { kind: 'live', record: longer })).toEqual({ state: 'tombstone', changed: true });
    expect(await s.readState(k)).toEqual(extended);
    expect(extended).toMatchObject({ stamp: tombstone.stamp, until: now + 72 * HOUR + TOMBSTONE_GRACE_MS });
    expect(await s.create(k, storedRecord({}, {}, now))).toBe(false);
    expect(await s.apply(k, { fields: {}, lastSeenAt: now + 8 })).toEqual({ status: 'gone' });
  });

  it('mergeState() of two tombstones keeps the later stamp and the later until', async () => {
    const s = store();
    const k = storeKey();
    const early = stampAt(now);
    const late = stampAt(now + 1);
    await s.mergeState(k, { kind: 'tombstone', stamp: late, until: now + 1000 });
    expect(await s.mergeState(k, { kind: 'tombstone', stamp: early, until: now + 5000 })).toEqual({ state: 'tombstone', changed: true });
    expect(await s.readState(k)).toEqual({ kind: 'tombstone', stamp: late, until: now + 5000 });
    expect(await s.mergeState(k, { kind: 'tombstone', stamp: early, until: now + 10 })).toEqual({ state: 'tombstone', changed: false });
  });

  it('mergeState() of a state that is already dead leaves the key free', async () => {
    const s = store();
    const k = storeKey();
    expect(await s.mergeState(k, { kind: 'tombstone', stamp: stampAt(now), until: now })).toEqual({ state: 'absent', changed: false });
    expect(await s.mergeState(k, { kind: 'live', record: storedRecord({}, { idleTimeout: 10 }, now - 10) })).toEqual({ state: 'absent', changed: false });
    const { rowCount } = await db.pool.query(`SELECT 1 FROM ${db.schema}.elastic_sessions WHERE key = $1`, [k]);
    expect(rowCount).toBe(0);
    expect(await s.create(k, storedRecord({}, {}, now))).toBe(true);
  });

  it('mergeState() refuses a malformed foreign state', async () => {
    const s = store();
    await expect(s.mergeState(storeKey(), { kind: 'tombstone', stamp: 'x', until: now })).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
    await expect(s.mergeState(storeKey(), { kind: 'live', record: { ...storedRecord({}, {}, now), userStamp: 'x' } })).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('mergeWatermark() raises the watermark (never lowers it), destroys the sessions it covers and keeps the others', async () => {
    const s = store();
    const user = `user-${storeKey()}`;
    const [before, after, other] = [storeKey(), storeKey(), storeKey()];
    const old = storedRecord({}, { userId: user }, now - 10);
    const young = storedRecord({}, { userId: user }, now + 10);
    await s.create(before, old);
    await s.create(after, young);
    await s.create(other, storedRecord({}, { userId: `${user}-other` }, now - 10));
    const stamp = stampAt(now);
    expect(covers(watermarkAt(stamp), old) && !covers(watermarkAt(stamp), young)).toBe(true);
    expect(await s.readWatermark(user)).toBeNull();
    expect(await s.mergeWatermark(user, stamp)).toBe(1);
    expect(await s.readWatermark(user)).toEqual(watermarkAt(stamp));
    expect(await s.readState(before)).toEqual(revokedTombstone(old));
    expect(await s.readState(after)).toEqual({ kind: 'live', record: young });
    expect((await s.readState(other))?.kind).toBe('live');
    expect(await s.listByUser(user)).toHaveLength(1);
    expect(await s.mergeWatermark(user, stampAt(now - 100))).toBe(0);
    expect(await s.readWatermark(user)).toEqual(watermarkAt(stamp));
    const later = stampAt(now + 20);
    expect(await s.mergeWatermark(user, later)).toBe(1);
    expect(await s.readWatermark(user)).toEqual(watermarkAt(later));
    expect(await s.readState(after)).toEqual(revokedTombstone(young));
    await expect(s.mergeWatermark(user, '')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('mergeState() of a record the watermark covers leaves its revoked tombstone', async () => {
    const s = store();
    const user = `user-${storeKey()}`;
    const stamp = stampAt(now);
    await s.mergeWatermark(user, stamp);
    const covered = storedRecord({ a: 1 }, { userId: user }, now - 1);
    const k = storeKey();
    expect(await s.mergeState(k, { kind: 'live', record: covered })).toEqual({ state: 'tombstone', changed: true });
    expect(await s.readState(k)).toEqual(revokedTombstone(covered));
    const younger = storedRecord({ a: 1 }, { userId: user }, now + 1);
    expect(await s.mergeState(storeKey(), { kind: 'live', record: younger })).toEqual({ state: 'live', changed: true });
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
    expect(await s.mergeState(storeKey(), { kind: 'live', record: storedRecord({}, { userId: user }, now - 1) })).toMatchObject({ state: 'tombstone' });
    await expect(s.destroyByUser(user, 1000, 'nope')).rejects.toMatchObject({ code: 'ESESS_INVALID_INPUT' });
  });

  it('a watermark past its time reads as null, and sweep() removes it without counting it', async () => {
    const table = `wm_${randomBytes(4).toString('hex')}`;
    const s = store(table);
    const user = 'expiring';
    const stamp = stampAt(now);
    await s.mergeWatermark(user, stamp);
    now = watermarkAt(stamp).until;
    expect(await s.readWatermark(user)).toBeNull();
    expect(await s.sweep(100)).toBe(0);
    const { rowCount } = await db.pool.query(`SELECT 1 FROM ${db.schema}.${table}_watermarks`);
    expect(rowCount).toBe(0);
    const k = storeKey();
    expect(await s.mergeState(k, { kind: 'live', record: storedRecord({}, { userId: user }, now) })).toMatchObject({ state: 'live' });
  });

  it('mergeState() from many clients at once on one key loses no field, whether the key existed or not', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => openPostgresStore(db.url, { clock, pool: { max: 3 } })));
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
        expect(state?.kind).toBe('live');
        const fields = Object.keys((state as LiveState).record.fields);
        expect(fields).toHaveLength(20 + (existed ? 1 : 0));
        expect((state as LiveState).record.lastSeenAt).toBe(now + 4);
      }
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });

  it('mergeState() and mergeWatermark() racing from two clients: a record the watermark covers never survives it', async () => {
    const [a, b] = await Promise.all([openPostgresStore(db.url, { clock, pool: { max: 2 } }), openPostgresStore(db.url, { clock, pool: { max: 2 } })]);
    try {
      for (let round = 0; round < 40; round++) {
        const user = `racer-${storeKey()}`;
        const k = storeKey();
        // Every other round the user already has a watermark row (older), so both lock paths run.
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

describe('postgres tables of the previous release (schema version 1)', () => {
  let now: number;
  const clock = () => now;
  beforeEach(() => {
    now = Date.now();
  });

  /** Tables at version 1 holding a live session of a user, one without a user, and a tombstone, written by the version-1 statements. */
  const oldTables = async (table: string) => {
    await postgresV1.createTables(db.pool, db.schema, table);
    const keys = { bound: storeKey(), anonymous: storeKey(), destroyed: storeKey() };
    const { userStamp: _b, ...bound } = storedRecord({ cart: ['a'] }, { userId: 'old-user' }, now);
    const { userStamp: _a, ...anonymous } = storedRecord({ theme: 'dark' }, {}, now);
    const { userStamp: _d, ...destroyed } = storedRecord({ x: 1 }, { userId: 'old-user' }, now);
    expect(await postgresV1.create(db.pool, db.schema, table, keys.bound, bound, now)).toBe(true);
    expect(await postgresV1.create(db.pool, db.schema, table, keys.anonymous, anonymous, now)).toBe(true);
    expect(await postgresV1.create(db.pool, db.schema, table, keys.destroyed, destroyed, now)).toBe(true);
    expect(await postgresV1.destroy(db.pool, db.schema, table, keys.destroyed, TOMBSTONE_GRACE_MS, now)).toBe(true);
    return { keys, bound, anonymous, destroyed };
  };

  it('with migrate: false, version-1 tables are a configuration error that names the migrate command', async () => {
    const table = `v1_${randomBytes(4).toString('hex')}`;
    await oldTables(table);
    const s = postgresStore({ pool: db.pool, schema: db.schema, table, migrate: false, clock });
    await expect(s.load(storeKey())).rejects.toMatchObject({
      code: 'ESESS_CONFIG',
      message: expect.stringMatching(/schema version 1, this elastic-session needs 2: run "elastic-session migrate"/) as unknown,
      context: { schemaVersion: 1, supportedVersion: POSTGRES_SCHEMA_VERSION },
    });
  });

  it('elastic-session migrate upgrades them (1 -> 2); what version 1 wrote then loads, applies, reads and merges', async () => {
    const table = `v1_${randomBytes(4).toString('hex')}`;
    const { keys, bound, anonymous, destroyed } = await oldTables(table);
    const url = new URL(db.url);
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
    expect(stdout).toBe(`schema version 1 -> ${POSTGRES_SCHEMA_VERSION}\n`);

    const s = postgresStore({ pool: db.pool, schema: db.schema, table, migrate: false, clock });
    expect(await s.load(keys.bound)).toEqual({ ...bound, userStamp: '' });
    expect(await s.readState(keys.anonymous)).toEqual({ kind: 'live', record: { ...anonymous, userStamp: '' } });
    expect(await s.readState(keys.destroyed)).toEqual({ kind: 'tombstone', stamp: '', until: destroyed.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
    expect((await s.listByUser('old-user')).map((summary) => summary.key)).toEqual([keys.bound]);

    // '' orders before every stamp: the first stamped principal write wins.
    const stamp = stampAt(now + 1);
    expect(await s.apply(keys.anonymous, { fields: {}, userId: 'new-user', userStamp: stamp, lastSeenAt: now + 1 })).toEqual({ status: 'ok', version: 2 });
    expect(await s.load(keys.anonymous)).toMatchObject({ userId: 'new-user', userStamp: stamp, lastSeenAt: now + 1 });

    // An old tombstone still wins over any live state; a tombstone merged into it keeps the later until.
    expect(await s.mergeState(keys.destroyed, { kind: 'live', record: storedRecord({ y: 1 }, {}, now) })).toEqual({ state: 'tombstone', changed: false });
    expect(await s.mergeState(keys.destroyed, { kind: 'tombstone', stamp: stampAt(now), until: now + 2 * 24 * HOUR })).toEqual({ state: 'tombstone', changed: true });
    expect(await s.readState(keys.destroyed)).toMatchObject({ kind: 'tombstone', until: now + 2 * 24 * HOUR });

    // An old live record merges with a foreign one: the stamped principal wins over the unstamped one.
    const foreign = storedRecord({ cart: ['a', 'b'] }, { userId: 'other-user', userStamp: stampAt(now + 2) }, now + 2);
    expect(await s.mergeState(keys.bound, { kind: 'live', record: foreign })).toEqual({ state: 'live', changed: true });
    expect(await s.load(keys.bound)).toMatchObject({ userId: 'other-user', userStamp: foreign.userStamp, lastSeenAt: now + 2, version: 2, fields: { cart: foreign.fields.cart } });
    expect(await s.listByUser('old-user')).toEqual([]);

    // A revoke-all of the old user covers its unstamped sessions.
    const again = storeKey();
    const { userStamp: _u, ...old } = storedRecord({}, { userId: 'old-user' }, now);
    await postgresV1.create(db.pool, db.schema, table, again, old, now);
    expect(await s.mergeWatermark('old-user', stampAt(now))).toBe(1);
    expect(await s.readState(again)).toMatchObject({ kind: 'tombstone' });
  });
});
