import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { formatStamp } from '../src/core/hlc.js';
import diagnostics from 'node:diagnostics_channel';
import { CHANNELS } from '../src/core/telemetry.js';
import type { SessionEvent } from '../src/core/telemetry.js';
import { postgresStore, postgresSweepLockKey } from '../src/stores/postgres.js';
import { storedRecord } from '../src/testing/fixtures.js';
import type { PostgresStore } from '../src/stores/postgres.js';
import { createTestSchema, POSTGRES_URL } from './helpers/postgres.js';
import type { TestSchema } from './helpers/postgres.js';

let db: TestSchema;
/** Each test sweeps its own table, so counts are exact. */
let table: string;
let now: number;
const clock = () => now;

beforeAll(async () => {
  db = await createTestSchema();
});

afterAll(async () => {
  await db?.drop();
});

beforeEach(() => {
  now = Date.now();
  table = `t_${randomBytes(4).toString('hex')}`;
});

const store = (): PostgresStore => postgresStore({ pool: db.pool, schema: db.schema, table, clock });

/** `count` sessions that expire in one second (fake clock), written in one statement. */
async function expiredRows(count: number): Promise<void> {
  await store().load('warm-up: migrate');
  await db.pool.query(
    `INSERT INTO ${db.schema}.${table} (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, version, fields)
     SELECT 'expired-' || i, $1::bigint, $1::bigint, 1000, $1::bigint + 1000, $1::bigint + 1000, 1, '{}' FROM generate_series(1, $2::int) AS i`,
    [now, count],
  );
}

async function rowCount(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.${table}`);
  return rows[0]?.n ?? -1;
}

/** Makes every deleted row cost ~5 ms, so a sweep batch is slow enough to overlap with others. */
async function slowDeletes(): Promise<void> {
  await db.pool.query(`CREATE OR REPLACE FUNCTION ${db.schema}.slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.005); RETURN OLD; END $$`);
  await db.pool.query(`CREATE TRIGGER slow_delete BEFORE DELETE ON ${db.schema}.${table} FOR EACH ROW EXECUTE FUNCTION ${db.schema}.slow_delete()`);
}

/** Waits until some session holds this advisory lock (pg_locks shows a bigint key as two oids). */
async function lockGranted(lockKey: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const { rowCount: held } = await db.pool.query(
      "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1::bigint",
      [lockKey],
    );
    if (held) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('the sweep lock was never taken');
}

describe('postgres sweeping', () => {
  it('sweep() deletes in batches of at most `limit`, oldest first, and keeps live sessions', async () => {
    await expiredRows(250);
    const live = store();
    await live.create('live', storedRecord({ a: 1 }, {}, now));
    now += 1000;
    const batches: number[] = [];
    for (let n = await live.sweep(100); n > 0; n = await live.sweep(100)) batches.push(n);
    expect(batches).toEqual([100, 100, 50]);
    expect(await rowCount()).toBe(1);
    expect(await live.load('live')).not.toBeNull();
  });

  it('sweep() returns 0 at once while another connection holds the sweep lock, and sweeps once it is released', async () => {
    await expiredRows(50);
    now += 1000;
    const holder = new pg.Client({ connectionString: POSTGRES_URL });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [postgresSweepLockKey({ schema: db.schema, table })]);
      expect(await store().sweep(1000)).toBe(0);
      expect(await rowCount()).toBe(50);
      await holder.query('SELECT pg_advisory_unlock($1::bigint)', [postgresSweepLockKey({ schema: db.schema, table })]);
      expect(await store().sweep(1000)).toBe(50);
    } finally {
      await holder.end();
    }
  });

  it('a second instance never sweeps while the first one is in a batch', async () => {
    await expiredRows(150);
    await slowDeletes();
    now += 1000;
    const first = store();
    const otherPool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    try {
      const second = postgresStore({ pool: otherPool, schema: db.schema, table, clock });
      await second.load('warm-up');
      let firstDone = false;
      const firstBatch = first.sweep(100).finally(() => (firstDone = true));
      await lockGranted(postgresSweepLockKey({ schema: db.schema, table }));
      const started = performance.now();
      expect(await second.sweep(100)).toBe(0);
      expect(performance.now() - started).toBeLessThan(300);
      expect(firstDone, 'the first batch was still running').toBe(false);
      expect(await firstBatch).toBe(100);
      expect(await second.sweep(100)).toBe(50);
    } finally {
      await otherPool.end();
    }
  });

  it('never holds long locks: live sessions load and take deltas while a slow batch runs', async () => {
    await expiredRows(100);
    await slowDeletes();
    const s = store();
    await s.create('live', storedRecord({ a: 1 }, {}, now));
    now += 1000;
    let batchDone = false;
    const batch = s.sweep(100).finally(() => (batchDone = true));
    await lockGranted(postgresSweepLockKey({ schema: db.schema, table }));
    const started = performance.now();
    expect(await s.load('live')).not.toBeNull();
    expect(await s.apply('live', { fields: { b: { value: '2', stamp: formatStamp(now, 1, '00000000') } }, lastSeenAt: now })).toMatchObject({ status: 'ok' });
    const elapsed = performance.now() - started;
    expect(batchDone, 'the batch was still running').toBe(false);
    const swept = await batch;
    expect(swept).toBe(100);
    expect(elapsed).toBeLessThan(300);
  });

  it('the session manager publishes an expired event with the count of each batch', async () => {
    await expiredRows(30);
    now += 1000;
    const events: SessionEvent[] = [];
    const listener = (event: unknown) => void events.push(event as SessionEvent);
    diagnostics.subscribe(CHANNELS.session, listener);
    try {
      const sessions = new SessionManager({ store: store(), secrets: ['sweep-test-secret-0123456789abcdefghij'], clock });
      expect(await sessions.sweep(20)).toBe(20);
      expect(await sessions.sweep(20)).toBe(10);
      expect(await sessions.sweep(20)).toBe(0);
    } finally {
      diagnostics.unsubscribe(CHANNELS.session, listener);
    }
    expect(events).toEqual([
      { type: 'expired', store: 'postgres', count: 20, at: expect.any(String) },
      { type: 'expired', store: 'postgres', count: 10, at: expect.any(String) },
    ]);
  });
});
