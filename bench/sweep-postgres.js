// Sweeping 1,000,000 expired sessions from PostgreSQL while requests go on: latency of load()
// and apply() on live sessions without a sweep, and during one (batches of BENCH_BATCH rows),
// then two instances sweeping at once. Run with `npm run build && node bench/sweep-postgres.js`;
// prints tables. BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
// BENCH_EXPIRED (1000000), BENCH_LIVE (10000), BENCH_BATCH (1000), BENCH_CONCURRENCY (8),
// BENCH_SECONDS (10, the baseline's length).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { postgresStore } from 'elastic-session/stores/postgres';

const URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const EXPIRED = Number(process.env.BENCH_EXPIRED ?? 1_000_000);
const LIVE = Number(process.env.BENCH_LIVE ?? 10_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const HOUR = 3_600_000;

const schema = `es_bench_${randomBytes(4).toString('hex')}`;
const pool = new pg.Pool({ connectionString: URL, max: CONCURRENCY + 2 });
pool.on('error', () => undefined);
const store = postgresStore({ pool, schema });
const table = `${schema}.elastic_sessions`;

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(label, samples, seconds) {
  const row = { phase: label };
  for (const [operation, values] of Object.entries(samples)) {
    const sorted = [...values].sort((a, b) => a - b);
    row[`${operation} ops/s`] = Math.round(values.length / seconds);
    row[`${operation} p50 ms`] = percentile(sorted, 50).toFixed(2);
    row[`${operation} p99 ms`] = percentile(sorted, 99).toFixed(2);
    row[`${operation} max ms`] = sorted[sorted.length - 1].toFixed(1);
  }
  return row;
}

/** CONCURRENCY workers, each 80% load() / 20% apply() on random live sessions, until `done()`. */
async function traffic(done) {
  const samples = { load: [], apply: [] };
  let n = 0;
  const worker = async () => {
    while (!done()) {
      const key = `live-${Math.floor(Math.random() * LIVE)}`;
      const started = performance.now();
      if (n++ % 5 === 4) {
        const now = Date.now();
        await store.apply(key, { fields: { counter: { value: String(n), stamp: `${now.toString(16).padStart(12, '0')}.0000.00000000` } }, lastSeenAt: now });
        samples.apply.push(performance.now() - started);
      } else {
        await store.load(key);
        samples.load.push(performance.now() - started);
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { samples, seconds: (performance.now() - started) / 1000 };
}

async function fill() {
  await store.migrate();
  const now = Date.now();
  const fields = JSON.stringify({ cart: { v: JSON.stringify(['a', 'b', 'c']), s: `${now.toString(16).padStart(12, '0')}.0000.00000000` } });
  await pool.query(
    `INSERT INTO ${table} (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, fields)
     SELECT 'live-' || i, $1::bigint, $1::bigint, ${24 * HOUR}, $1::bigint + ${24 * HOUR}, $1::bigint + ${24 * HOUR}, 'user-' || (i % 1000), 1, $2::jsonb
     FROM generate_series(0, $3::int - 1) AS i`,
    [now, fields, LIVE],
  );
  // Expired over the last day, in insertion order scattered so batches hit the whole table.
  const chunk = 200_000;
  for (let from = 0; from < EXPIRED; from += chunk) {
    await pool.query(
      `INSERT INTO ${table} (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, fields)
       SELECT 'expired-' || i, t - ${HOUR}, t - ${HOUR}, ${HOUR}, t + ${23 * HOUR}, t, 'user-' || (i % 1000), 3, $2::jsonb
       FROM (SELECT i, $1::bigint - 1 - (hashint4(i) & 2147483647)::bigint % ${24 * HOUR} AS t FROM generate_series($3::int, $4::int - 1) AS i) AS g`,
      [now, fields, from, Math.min(EXPIRED, from + chunk)],
    );
  }
  await pool.query(`VACUUM ANALYZE ${table}`);
}

try {
  const filling = performance.now();
  await fill();
  console.log(`filled ${LIVE} live and ${EXPIRED} expired sessions in ${((performance.now() - filling) / 1000).toFixed(1)} s (schema ${schema})`);

  const baselineEnd = performance.now() + SECONDS * 1000;
  const baseline = await traffic(() => performance.now() >= baselineEnd);

  const batches = [];
  let swept = 0;
  let sweeping = true;
  const sweepStarted = performance.now();
  const sweeper = (async () => {
    for (;;) {
      const started = performance.now();
      const n = await store.sweep(BATCH);
      if (n === 0) break;
      batches.push(performance.now() - started);
      swept += n;
    }
    sweeping = false;
  })();
  const during = await traffic(() => !sweeping);
  await sweeper;
  const sweepSeconds = (performance.now() - sweepStarted) / 1000;

  console.log('\nRequest latency on live sessions, without and during the sweep');
  console.table([summary('no sweep', baseline.samples, baseline.seconds), summary('during sweep', during.samples, during.seconds)]);
  const sortedBatches = [...batches].sort((a, b) => a - b);
  console.log('\nThe sweep');
  console.table([
    {
      'rows removed': swept,
      batches: batches.length,
      'batch size': BATCH,
      seconds: sweepSeconds.toFixed(1),
      'rows/s': Math.round(swept / sweepSeconds),
      'batch p50 ms': percentile(sortedBatches, 50).toFixed(1),
      'batch p99 ms': percentile(sortedBatches, 99).toFixed(1),
      'batch max ms': sortedBatches[sortedBatches.length - 1].toFixed(1),
    },
  ]);

  // Two instances (own pools) sweep the same table at once: the advisory lock lets one work at
  // a time; the other's attempts return 0 immediately. Expire the live sessions to have work.
  await pool.query(`UPDATE ${table} SET expires_at = 0`);
  const instances = [0, 1].map(() => {
    const own = new pg.Pool({ connectionString: URL, max: 1 });
    own.on('error', () => undefined);
    return { pool: own, store: postgresStore({ pool: own, schema }), removed: 0, batches: 0, busy: 0 };
  });
  let remaining = LIVE;
  await Promise.all(
    instances.map(async (instance) => {
      while (remaining > 0) {
        const n = await instance.store.sweep(100);
        if (n > 0) {
          instance.batches++;
          instance.removed += n;
          remaining -= n;
        } else {
          instance.busy++;
          const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${table}`);
          remaining = rows[0].n;
        }
      }
    }),
  );
  console.log('\nTwo instances sweeping the same table at once (batches of 100)');
  console.table(instances.map((instance, i) => ({ instance: i + 1, 'rows removed': instance.removed, batches: instance.batches, 'got 0 (lock busy)': instance.busy })));
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${table}`);
  console.log(`rows left: ${rows[0].n}; removed in total: ${instances[0].removed + instances[1].removed} of ${LIVE}`);
  for (const instance of instances) await instance.pool.end();
} finally {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
}
