import { createHash } from 'node:crypto';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { configError, SessionError } from '../../core/errors.js';
import { toInteger } from '../kit/record-codec.js';
import { readSchemaVersion } from '../kit/sql-schema.js';
import { STORE, storeError } from './errors.js';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;
/** Seconds `migrate` waits for another instance's migration. */
const MIGRATE_LOCK_WAIT = 60;

/**
 * Applied in order; each is idempotent because MySQL commits DDL at once (a crash between a
 * migration and its version bump must leave a state the next run can finish).
 * Same layout as the PostgreSQL store: `expires_at` is when the row may be deleted (session
 * expiry, or the end of a tombstone: the until it guards); `fields` maps names to
 * `{"v": JSON text | null, "s": stamp}`. JSON is a real type in MySQL 8 and a checked LONGTEXT
 * in MariaDB; both work.
 *
 * 2: the principal's stamp (`user_stamp`, '' for rows written before: it orders first), the
 * destroy's stamp on tombstones (`tombstone_stamp`), and the revoke watermarks. The columns are
 * utf8mb4_bin: stamps are ASCII, so they compare by byte, as the core compares them. MySQL 8 has
 * no ADD COLUMN IF NOT EXISTS, so the columns are looked up first.
 */
const MIGRATIONS: readonly ((conn: PoolConnection, table: string) => Promise<void>)[] = [
  async (conn, table) => {
    await conn.query(`CREATE TABLE IF NOT EXISTS \`${table}\` (
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
  },
  async (conn, table) => {
    const stamp = "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT ''";
    await addColumn(conn, table, 'user_stamp', stamp);
    await addColumn(conn, table, 'tombstone_stamp', stamp);
    await conn.query(`CREATE TABLE IF NOT EXISTS \`${table}_watermarks\` (
       user_id VARCHAR(512) NOT NULL,
       stamp VARCHAR(64) NOT NULL,
       \`until\` BIGINT NOT NULL,
       PRIMARY KEY (user_id),
       KEY \`${table}_wm_until\` (\`until\`)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  },
];

async function addColumn(conn: PoolConnection, table: string, column: string, definition: string): Promise<void> {
  const [rows] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?', [table, column]);
  if (toInteger(rows[0]?.n) === 0) await conn.query(`ALTER TABLE \`${table}\` ADD COLUMN ${column} ${definition}`);
}

/** The schema version this code writes and understands. */
export const MYSQL_SCHEMA_VERSION = MIGRATIONS.length;

export function tableName(table: string | undefined): string {
  const name = table ?? 'elastic_sessions';
  if (typeof name !== 'string' || !IDENTIFIER.test(name)) throw configError('table', 'must be an SQL identifier: letters, digits and _, at most 48 characters');
  return name;
}

/**
 * The `GET_LOCK` name a sweep of `database`.`table` takes (at most 64 characters, as MySQL
 * requires), for monitoring (`IS_USED_LOCK`) or pausing sweeps by holding it elsewhere.
 */
export function mysqlSweepLockName(database: string, table = 'elastic_sessions'): string {
  return `es-sweep:${createHash('sha1').update(`${database}.${tableName(table)}`).digest('hex')}`;
}

/** The same name computed by the server from the connection's database, so it always agrees. */
export const lockNameSql = (kind: string) => `CONCAT('es-${kind}:', SHA1(CONCAT_WS('.', DATABASE(), ?)))`;

/**
 * Creates or upgrades the session tables to `MYSQL_SCHEMA_VERSION` in the pool's database.
 * Concurrent runs are serialized by `GET_LOCK`. `elastic-session migrate` calls this.
 */
export async function migrateMysql(pool: Pool, options: { table?: string } = {}): Promise<{ from: number; to: number }> {
  const table = tableName(options.table);
  const meta = `\`${table}_schema\``;
  let conn: PoolConnection | undefined;
  let locked = false;
  try {
    conn = await pool.getConnection();
    const [lock] = await conn.query<RowDataPacket[]>(`SELECT GET_LOCK(${lockNameSql('migrate')}, ?) AS held`, [table, MIGRATE_LOCK_WAIT]);
    if (lock[0]?.held !== 1) throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'Timed out waiting for another instance to migrate the session tables', context: { store: STORE } });
    locked = true;
    await conn.query(`CREATE TABLE IF NOT EXISTS ${meta} (id INT PRIMARY KEY, version INT NOT NULL) ENGINE=InnoDB`);
    const [rows] = await conn.query<RowDataPacket[]>(`SELECT version FROM ${meta} WHERE id = 1`);
    const found = readVersion(rows[0]?.version);
    for (const [index, migration] of MIGRATIONS.entries()) {
      if (index < found) continue;
      await migration(conn, table);
      await conn.query(`INSERT INTO ${meta} (id, version) VALUES (1, ?) ON DUPLICATE KEY UPDATE version = ?`, [index + 1, index + 1]);
    }
    return { from: found, to: MIGRATIONS.length };
  } catch (error) {
    throw storeError(error, 'migrate');
  } finally {
    if (locked) await conn?.query(`DO RELEASE_LOCK(${lockNameSql('migrate')})`, [table]).catch(() => undefined);
    conn?.release();
  }
}

/** The schema version in the pool's database; 0 when the tables were never created. */
export async function schemaVersion(pool: Pool, table: string): Promise<number> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS present FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?', [`${table}_schema`]);
  if (toInteger(rows[0]?.present) !== 1) return 0;
  return readVersion((await pool.query<RowDataPacket[]>(`SELECT version FROM \`${table}_schema\` WHERE id = 1`))[0][0]?.version);
}

function readVersion(found: unknown): number {
  return readSchemaVersion(STORE, found, MIGRATIONS.length);
}
