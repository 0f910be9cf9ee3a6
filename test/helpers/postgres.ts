import { randomBytes } from 'node:crypto';
import pg from 'pg';

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
        'Start PostgreSQL 15 on 127.0.0.1:5432 with trust auth and a database "test", or set ES_TEST_POSTGRES_URL.',
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
