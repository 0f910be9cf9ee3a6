import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { StoredSession } from '../../src/core/types.js';

/** The machine's MariaDB/MySQL (root, empty password, database `test`); override with ES_TEST_MYSQL_URL. */
export const MYSQL_URL = process.env.ES_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

export interface TestTables {
  /** A fresh table name; tables named after it (and `<table>_schema`, `<table>_watermarks`) are dropped by `drop()`. */
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
        'Start MariaDB 10.11 or MySQL 8 on 127.0.0.1:3306 with user root (empty password) and a database "test" (Debian: apt-get install mariadb-server, then mariadb -e "CREATE DATABASE test"), or set ES_TEST_MYSQL_URL.',
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
        for (const name of tables) await pool.query(`DROP TABLE IF EXISTS \`${name}\`, \`${name}_schema\`, \`${name}_watermarks\``);
      } finally {
        await pool.end();
      }
    },
  };
}

/** A record as version 1 wrote it: no userStamp. */
export type V1Session = Omit<StoredSession, 'userStamp'>;

/**
 * The previous release (schema version 1, before principals and tombstones were stamped):
 * its tables and its writes, statement for statement as `git show <v1>:src/stores/mysql.ts`
 * ran them, to prove that an upgrade keeps what it wrote readable.
 */
export const mysqlV1 = {
  async createTables(pool: mysql.Pool, table: string): Promise<void> {
    await pool.query(`CREATE TABLE IF NOT EXISTS \`${table}_schema\` (id INT PRIMARY KEY, version INT NOT NULL) ENGINE=InnoDB`);
    await pool.query(`CREATE TABLE IF NOT EXISTS \`${table}\` (
       \`key\` VARCHAR(255) NOT NULL,
       created_at BIGINT NOT NULL,
       last_seen_at BIGINT NOT NULL,
       idle_timeout BIGINT NOT NULL,
       absolute_expires_at BIGINT NOT NULL,
       expires_at BIGINT NOT NULL,
       user_id VARCHAR(512) NULL,
       version BIGINT NOT NULL,
       tombstone BOOLEAN NOT NULL DEFAULT FALSE,
       fields JSON NOT NULL,
       PRIMARY KEY (\`key\`),
       KEY \`${table}_expires_at\` (expires_at),
       KEY \`${table}_user_id\` (user_id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await pool.query(`INSERT INTO \`${table}_schema\` (id, version) VALUES (1, ?) ON DUPLICATE KEY UPDATE version = ?`, [1, 1]);
  },

  /** `create(key, session)` of version 1 on a free key. */
  async create(pool: mysql.Pool, table: string, key: string, session: V1Session): Promise<void> {
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version } = session;
    const expiresAt = Math.min(lastSeenAt + idleTimeout, absoluteExpiresAt);
    const fields = Object.create(null) as Record<string, { v: string | null; s: string }>;
    for (const [name, field] of Object.entries(session.fields)) fields[name] = { v: field.value, s: field.stamp };
    const values = [createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt, userId ?? null, version, JSON.stringify(fields)];
    await pool.query(
      `INSERT INTO \`${table}\` (\`key\`, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [key, ...values],
    );
  },

  /** `destroy(key, tombstoneGraceMs)` of version 1 (its tombstones had no stamp). */
  async destroy(pool: mysql.Pool, table: string, key: string, tombstoneGraceMs: number, now: number): Promise<boolean> {
    const [result] = await pool.query<mysql.ResultSetHeader>(
      `UPDATE \`${table}\` SET tombstone = 1, expires_at = absolute_expires_at + ?, fields = '{}', user_id = NULL, version = version + 1 WHERE \`key\` = ? AND tombstone = 0 AND expires_at > ?`,
      [tombstoneGraceMs, key, now],
    );
    return result.affectedRows === 1;
  },
};
