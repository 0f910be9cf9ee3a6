import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';

/** The machine's MariaDB/MySQL (root, empty password, database `test`); override with ES_TEST_MYSQL_URL. */
export const MYSQL_URL = process.env.ES_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

export interface TestTables {
  /** A fresh table name; tables named after it (and `<table>_schema`) are dropped by `drop()`. */
  table: string;
  pool: mysql.Pool;
  /** The server URL with `?table=` for `openMysqlStore`. */
  url: string;
  /** Another fresh table name, also dropped by `drop()`. */
  another: () => string;
  drop: () => Promise<void>;
}

/**
 * Fresh table names on the test server for one test file, dropped afterwards. Fails with a
 * message saying how to get the server when it cannot connect (tests never skip silently).
 */
export async function createTestTables(): Promise<TestTables> {
  const table = `es_test_${randomBytes(5).toString('hex')}`;
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 12 });
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end();
    throw new Error(
      `MySQL/MariaDB is not reachable at ${MYSQL_URL} (${error instanceof Error ? error.message : String(error)}). ` +
        'Start MariaDB 10.11 or MySQL 8 on 127.0.0.1:3306 with user root (empty password) and a database "test", or set ES_TEST_MYSQL_URL.',
      { cause: error },
    );
  }
  const tables = [table];
  const url = new URL(MYSQL_URL);
  url.searchParams.set('table', table);
  return {
    table,
    pool,
    url: url.toString(),
    another: () => {
      const name = `${table}_${tables.length}`;
      tables.push(name);
      return name;
    },
    drop: async () => {
      try {
        for (const name of tables) await pool.query(`DROP TABLE IF EXISTS \`${name}\`, \`${name}_schema\``);
      } finally {
        await pool.end();
      }
    },
  };
}
