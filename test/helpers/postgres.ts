import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { StoredSession } from '../../src/core/types.js';

/** The machine's PostgreSQL (trust auth, database `test`); override with ES_TEST_POSTGRES_URL. */
export const POSTGRES_URL = process.env.ES_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  schema: string;
  pool: pg.Pool;
  /** The server URL with `?schema=` for `openPostgresStore`. */
  url: string;
  drop: () => Promise<void>;
}

/**
 * A fresh schema on the test server for one test file, dropped afterwards. Fails with a message
 * saying how to get the server when it cannot connect (tests never skip silently).
 */
export async function createTestSchema(): Promise<TestSchema> {
  const schema = `es_test_${randomBytes(6).toString('hex')}`;
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 12 });
  pool.on('error', () => undefined);
  try {
    await pool.query(`CREATE SCHEMA ${schema}`);
  } catch (error) {
    await pool.end();
    throw new Error(
      `PostgreSQL is not reachable at ${POSTGRES_URL} (${error instanceof Error ? error.message : String(error)}). ` +
        'Start PostgreSQL 15 on 127.0.0.1:5432 with trust auth and a database "test" (Debian: apt-get install postgresql && runuser -u postgres -- createdb test), or set ES_TEST_POSTGRES_URL.',
      { cause: error },
    );
  }
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return {
    schema,
    pool,
    url: url.toString(),
    drop: async () => {
      try {
        await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await pool.end();
      }
    },
  };
}

/**
 * The previous release (schema version 1, before principals and tombstones were stamped):
 * its tables and its writes, statement for statement as `git show <v1>:src/stores/postgres.ts`
 * ran them, to prove that an upgrade keeps what it wrote readable.
 */
export const postgresV1 = {
  async createTables(pool: pg.Pool, schema: string, table = 'elastic_sessions'): Promise<void> {
    const t = `"${schema}"."${table}"`;
    await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}"."${table}_schema" (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)`);
    await pool.query(`
    CREATE TABLE ${t} (
      key text COLLATE "C" PRIMARY KEY,
      created_at bigint NOT NULL,
      last_seen_at bigint NOT NULL,
      idle_timeout bigint NOT NULL,
      absolute_expires_at bigint NOT NULL,
      expires_at bigint NOT NULL,
      user_id text COLLATE "C",
      version bigint NOT NULL,
      tombstone boolean NOT NULL DEFAULT false,
      fields jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX "${table}_expires_at" ON ${t} (expires_at);
    CREATE INDEX "${table}_user_id" ON ${t} (user_id) WHERE user_id IS NOT NULL;`);
    await pool.query(`INSERT INTO "${schema}"."${table}_schema" (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version`, [1]);
  },

  /** `create(key, session)` of version 1 (its record had no userStamp). */
  async create(pool: pg.Pool, schema: string, table: string, key: string, session: V1Session, now: number): Promise<boolean> {
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version } = session;
    const expiresAt = Math.min(lastSeenAt + idleTimeout, absoluteExpiresAt);
    const fields = Object.create(null) as Record<string, { v: string | null; s: string }>;
    for (const [name, field] of Object.entries(session.fields)) fields[name] = { v: field.value, s: field.stamp };
    const params = [key, createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt, userId ?? null, version, JSON.stringify(fields), now];
    const result = await pool.query(
      `INSERT INTO "${schema}"."${table}" AS s (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, fields)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
             ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at, last_seen_at = excluded.last_seen_at,
               idle_timeout = excluded.idle_timeout, absolute_expires_at = excluded.absolute_expires_at, expires_at = excluded.expires_at,
               user_id = excluded.user_id, version = excluded.version, tombstone = false, fields = excluded.fields
             WHERE s.expires_at <= $10::bigint
             RETURNING 1`,
      params,
    );
    return result.rowCount === 1;
  },

  /** `destroy(key, tombstoneGraceMs)` of version 1 (its tombstones had no stamp). */
  async destroy(pool: pg.Pool, schema: string, table: string, key: string, tombstoneGraceMs: number, now: number): Promise<boolean> {
    const result = await pool.query(
      `UPDATE "${schema}"."${table}" SET tombstone = true, expires_at = absolute_expires_at + $3::bigint, fields = '{}', user_id = NULL, version = version + 1
              WHERE key = $1 AND NOT tombstone AND expires_at > $2::bigint RETURNING 1`,
      [key, now, tombstoneGraceMs],
    );
    return result.rowCount === 1;
  },
};

/** A record as version 1 wrote it: no userStamp. */
export type V1Session = Omit<StoredSession, 'userStamp'>;
