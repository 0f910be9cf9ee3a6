import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type * as Mysql from 'mysql2/promise';
import type { Pool, PoolConnection, PoolOptions, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { configError, SessionError } from '../core/errors.js';
import { importDriver } from './driver.js';
import { mergeDelta } from './delta.js';
import { publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, Clock, SessionDelta, SessionStore, StoreCapabilities, StoredSession, StoredSummary } from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';
import { tlsFromUrl } from './tls-url.js';
import type { UrlTls } from './tls-url.js';
import { checkGrace, encodeFields, readSchemaVersion, readSession, schemaBehindError, toInteger } from './sql-record.js';

export interface MysqlStoreOptions {
  /** A `mysql2/promise` Pool with a default database. The application owns it: `close()` leaves it open. */
  pool: Pool;
  /** Sessions table in the pool's database; the schema-version table is `<table>_schema`. @default 'elastic_sessions' */
  table?: string;
  /**
   * Create or upgrade the tables on first use. With `false` the store only checks the schema
   * version and asks for `elastic-session migrate` (or `migrateMysql`) when it is behind.
   * @default true
   */
  migrate?: boolean;
  /**
   * Time source for expiry, sent with every query (not the server's NOW()), so all instances
   * must run on synchronized clocks. @default Date.now
   */
  clock?: Clock;
}

const STORE = 'mysql';
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;
/** Seconds `migrate` waits for another instance's migration. */
const MIGRATE_LOCK_WAIT = 60;

/**
 * Applied in order; each statement is idempotent because MySQL commits DDL at once (a crash
 * between a migration and its version bump must leave a state the next run can finish).
 * Same layout as the PostgreSQL store: `expires_at` is when the row may be deleted (session
 * expiry, or the end of a tombstone); `fields` maps names to `{"v": JSON text | null, "s": stamp}`.
 * JSON is a real type in MySQL 8 and a checked LONGTEXT in MariaDB; both work.
 */
const MIGRATIONS: readonly ((table: string) => string[])[] = [
  (table) => [
    `CREATE TABLE IF NOT EXISTS \`${table}\` (
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
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
];

/** The schema version this code writes and understands. */
export const MYSQL_SCHEMA_VERSION = MIGRATIONS.length;

function tableName(table: string | undefined): string {
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
const lockNameSql = (kind: string) => `CONCAT('es-${kind}:', SHA1(CONCAT_WS('.', DATABASE(), ?)))`;

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
      for (const statement of migration(table)) await conn.query(statement);
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

function readVersion(found: unknown): number {
  return readSchemaVersion(STORE, found, MIGRATIONS.length);
}

type Row = RowDataPacket;
const LIVE = 'tombstone = 0 AND expires_at > ?';

/**
 * Sessions in MySQL 8 or MariaDB 10.11+: one row per session, fields as JSON with a clock stamp
 * each. A delta that writes fields is one short transaction: the row is locked
 * (`SELECT ... FOR UPDATE`), merged field by field here (last writer by stamp wins; the lock
 * makes this safe), and written back. A delta that only moves `lastSeenAt` or the principal is
 * one statement. Expired rows are invisible at once and removed by `sweep`, which one instance
 * at a time runs (`GET_LOCK` with no wait; the others get 0 at once).
 */
export class MysqlStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true };
  readonly #pool: Pool;
  readonly #table: string;
  readonly #migrate: boolean;
  readonly #clock: Clock;
  readonly #onClose: (() => Promise<void>) | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;

  constructor(options: MysqlStoreOptions, onClose?: () => Promise<void>) {
    if (!options || typeof options.pool?.query !== 'function' || typeof options.pool.getConnection !== 'function') throw configError('pool', 'must be a mysql2/promise Pool');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw configError('clock', 'must be a function returning milliseconds');
    if (options.migrate !== undefined && typeof options.migrate !== 'boolean') throw configError('migrate', 'must be a boolean');
    this.#pool = options.pool;
    this.#table = tableName(options.table);
    this.#migrate = options.migrate ?? true;
    this.#clock = options.clock ?? systemClock;
    this.#onClose = onClose;
  }

  /** Creates or upgrades the tables now (otherwise it happens on first use). */
  async migrate(): Promise<{ from: number; to: number }> {
    this.#open();
    return migrateMysql(this.#pool, { table: this.#table });
  }

  async load(key: string): Promise<StoredSession | null> {
    const rows = await this.#rows('load', `SELECT ${SESSION_COLUMNS} FROM \`${this.#table}\` WHERE \`key\` = ? AND ${LIVE}`, [key, this.#clock()]);
    const row = rows[0];
    if (!row) return null;
    const session = readSession(row);
    if (!session) publishCorrupt(STORE);
    return session;
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version } = session;
    const values = [createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt(session), userId ?? null, version, encodeFields(session.fields)];
    try {
      await this.#write(
        'create',
        `INSERT INTO \`${this.#table}\` (\`key\`, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [key, ...values],
        true,
      );
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ER_DUP_ENTRY') throw storeError(error, 'create');
    }
    // The key is taken; a dead row (expired, or a tombstone past its time) is taken over.
    const replaced = await this.#write(
      'create',
      `UPDATE \`${this.#table}\` SET created_at = ?, last_seen_at = ?, idle_timeout = ?, absolute_expires_at = ?, expires_at = ?, user_id = ?, version = ?, fields = ?, tombstone = 0
       WHERE \`key\` = ? AND expires_at <= ?`,
      [...values, key, this.#clock()],
    );
    return replaced.affectedRows === 1;
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    const fields = Object.entries(delta.fields ?? {});
    if (fields.length === 0) return this.#applyMeta(key, delta);
    const now = this.#clock();
    return this.#transaction('apply', async (conn) => {
      const [rows] = await conn.query<Row[]>(`SELECT ${SESSION_COLUMNS}, tombstone, expires_at FROM \`${this.#table}\` WHERE \`key\` = ? FOR UPDATE`, [key]);
      const row = rows[0];
      if (!row || toInteger(row.tombstone) !== 0 || !((toInteger(row.expires_at) ?? 0) > now)) return { status: 'gone' };
      const session = readSession(row);
      if (!session) {
        publishCorrupt(STORE);
        return { status: 'gone' };
      }
      if (delta.expectVersion !== undefined && delta.expectVersion !== session.version) return { status: 'conflict', version: session.version };
      mergeDelta(session, delta);
      await conn.query(`UPDATE \`${this.#table}\` SET fields = ?, last_seen_at = ?, expires_at = ?, user_id = ?, version = ? WHERE \`key\` = ?`, [
        encodeFields(session.fields),
        session.lastSeenAt,
        expiresAt(session),
        session.userId,
        session.version,
        key,
      ]);
      return { status: 'ok', version: session.version };
    });
  }

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    const result = await this.#write('destroy', `UPDATE \`${this.#table}\` SET ${TOMBSTONE} WHERE \`key\` = ? AND ${LIVE}`, [checkGrace(tombstoneGraceMs), key, this.#clock()]);
    return result.affectedRows === 1;
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    const rows = await this.#rows('listByUser', `SELECT \`key\`, created_at, last_seen_at, expires_at FROM \`${this.#table}\` WHERE user_id = ? AND ${LIVE} ORDER BY created_at`, [userId, this.#clock()]);
    const summaries: StoredSummary[] = [];
    for (const row of rows) {
      const summary = { key: row.key as unknown, createdAt: toInteger(row.created_at), lastSeenAt: toInteger(row.last_seen_at), expiresAt: toInteger(row.expires_at) };
      if (typeof summary.key === 'string' && summary.createdAt !== undefined && summary.lastSeenAt !== undefined && summary.expiresAt !== undefined) summaries.push(summary as StoredSummary);
      else publishCorrupt(STORE);
    }
    return summaries;
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number> {
    const result = await this.#write('destroyByUser', `UPDATE \`${this.#table}\` SET ${TOMBSTONE} WHERE user_id = ? AND ${LIVE}`, [checkGrace(tombstoneGraceMs), userId, this.#clock()]);
    return result.affectedRows;
  }

  /**
   * Deletes up to `limit` expired sessions and dead tombstones, oldest first, in one short
   * statement under READ COMMITTED (no gap locks on the index range). Returns 0 at once when
   * another instance holds the sweep lock of this table.
   */
  async sweep(limit: number): Promise<number> {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'sweep() limit must be a non-negative integer' });
    this.#open();
    await this.#whenReady();
    let conn: PoolConnection | undefined;
    let locked = false;
    let broken = false;
    try {
      conn = await this.#pool.getConnection();
      const [lock] = await conn.query<Row[]>(`SELECT GET_LOCK(${lockNameSql('sweep')}, 0) AS held`, [this.#table]);
      if (toInteger(lock[0]?.held) !== 1) return 0;
      locked = true;
      await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      const [result] = await conn.query<ResultSetHeader>(`DELETE FROM \`${this.#table}\` WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`, [this.#clock(), limit]);
      return result.affectedRows;
    } catch (error) {
      broken = isFatal(error);
      throw storeError(error, 'sweep');
    } finally {
      if (conn) {
        if (locked && !broken) {
          await conn.query(`DO RELEASE_LOCK(${lockNameSql('sweep')})`, [this.#table]).catch(() => (broken = true));
        }
        // A connection that may still hold the lock must not go back to the pool.
        if (broken) conn.destroy();
        else conn.release();
      }
    }
  }

  /**
   * Up to `limit` keys of live sessions after `cursor`, in key order (the table's utf8mb4_bin
   * collation: by code point), by keyset pagination on the primary key: each page is one index
   * range scan, however far the walk has come. The cursor is the last key of a full page; a
   * page shorter than `limit` ends the walk.
   */
  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() limit must be a positive integer' });
    if (cursor !== null && typeof cursor !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor must be a string or null' });
    const rows = await this.#rows('scan', `SELECT \`key\` FROM \`${this.#table}\` WHERE \`key\` > ? AND ${LIVE} ORDER BY \`key\` LIMIT ?`, [cursor ?? '', this.#clock(), limit]);
    const keys: string[] = [];
    for (const row of rows) {
      const key = row.key as unknown;
      if (typeof key === 'string') keys.push(key);
      else if (Buffer.isBuffer(key)) keys.push(key.toString('utf8'));
    }
    return { keys, cursor: keys.length === limit ? (keys.at(-1) ?? null) : null };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#onClose?.();
  }

  #open(): void {
    if (this.#closed) throw new SessionError('ESESS_STORE_CLOSED', { context: { store: STORE } });
  }

  /** A delta without fields: one statement; the new version comes back as LAST_INSERT_ID. */
  async #applyMeta(key: string, delta: SessionDelta): Promise<ApplyResult> {
    const now = this.#clock();
    const setUser = delta.userId !== undefined;
    const lastSeenAt = delta.lastSeenAt ?? null;
    // expires_at is assigned before last_seen_at and reads only old values, so the statement
    // means the same under MySQL's left-to-right and MariaDB's SIMULTANEOUS_ASSIGNMENT rules.
    const expect = delta.expectVersion === undefined ? '' : ' AND version = ?';
    const result = await this.#write(
      'apply',
      `UPDATE \`${this.#table}\` SET
         expires_at = LEAST(GREATEST(last_seen_at, COALESCE(?, last_seen_at)) + idle_timeout, absolute_expires_at),
         last_seen_at = GREATEST(last_seen_at, COALESCE(?, last_seen_at)),
         user_id = IF(?, ?, user_id),
         version = LAST_INSERT_ID(version + 1)
       WHERE \`key\` = ? AND ${LIVE}${expect}`,
      [lastSeenAt, lastSeenAt, setUser, setUser ? delta.userId : null, key, now, ...(delta.expectVersion === undefined ? [] : [delta.expectVersion])],
    );
    if (result.affectedRows === 1) return { status: 'ok', version: result.insertId };
    if (delta.expectVersion === undefined) return { status: 'gone' };
    const [row] = await this.#rows('apply', `SELECT version FROM \`${this.#table}\` WHERE \`key\` = ? AND ${LIVE}`, [key, now]);
    const version = toInteger(row?.version);
    return version === undefined ? { status: 'gone' } : { status: 'conflict', version };
  }

  async #rows(operation: string, sql: string, params: unknown[]): Promise<Row[]> {
    this.#open();
    await this.#whenReady();
    try {
      const [rows] = await this.#pool.query<Row[]>(sql, params);
      return rows;
    } catch (error) {
      throw storeError(error, operation);
    }
  }

  /** @param raw rethrow driver errors untranslated (for the caller to inspect). */
  async #write(operation: string, sql: string, params: unknown[], raw = false): Promise<ResultSetHeader> {
    this.#open();
    await this.#whenReady();
    try {
      const [result] = await this.#pool.query<ResultSetHeader>(sql, params);
      return result;
    } catch (error) {
      throw raw ? error : storeError(error, operation);
    }
  }

  async #transaction<T>(operation: string, body: (conn: PoolConnection) => Promise<T>): Promise<T> {
    this.#open();
    await this.#whenReady();
    let conn: PoolConnection | undefined;
    try {
      conn = await this.#pool.getConnection();
      await conn.query('START TRANSACTION');
      const result = await body(conn);
      await conn.query('COMMIT');
      conn.release();
      return result;
    } catch (error) {
      if (conn) {
        if (isFatal(error)) conn.destroy();
        else await conn.query('ROLLBACK').then(() => conn?.release(), () => conn?.destroy());
      }
      throw storeError(error, operation);
    }
  }

  #whenReady(): Promise<void> {
    this.#ready ??= (async () => {
      if (this.#migrate) {
        await migrateMysql(this.#pool, { table: this.#table });
        return;
      }
      let found: number;
      try {
        const [rows] = await this.#pool.query<Row[]>('SELECT COUNT(*) AS present FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?', [`${this.#table}_schema`]);
        found = toInteger(rows[0]?.present) === 1 ? readVersion((await this.#pool.query<Row[]>(`SELECT version FROM \`${this.#table}_schema\` WHERE id = 1`))[0][0]?.version) : 0;
      } catch (error) {
        throw storeError(error, 'migrate');
      }
      if (found < MIGRATIONS.length) throw schemaBehindError(STORE, found, MIGRATIONS.length);
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }
}

const SESSION_COLUMNS = 'created_at, last_seen_at, idle_timeout, absolute_expires_at, user_id, version, CAST(fields AS CHAR) AS fields';
const TOMBSTONE = 'tombstone = 1, expires_at = absolute_expires_at + ?, fields = \'{}\', user_id = NULL, version = version + 1';

export function mysqlStore(options: MysqlStoreOptions): MysqlStore {
  return new MysqlStore(options);
}

/** URL TLS settings (see `tlsFromUrl`) as mysql2's `ssl` option; undefined for none or `disabled`. */
function mysqlSsl(settings: UrlTls | undefined): PoolOptions['ssl'] | undefined {
  if (settings === undefined || settings.mode === 'disabled') return undefined;
  const { mode, ...files } = settings;
  return { ...files, rejectUnauthorized: mode !== 'required', verifyIdentity: mode === 'verify-full' };
}

/**
 * Opens a store over its own pool from a URL (`mysql://user:pass@host:3306/db`), for the
 * session service and the CLI. The query parameter `table` names the table; `ssl-mode`,
 * `ssl-ca`, `ssl-cert` and `ssl-key` set TLS (see `tlsFromUrl`); the others go to mysql2.
 * `options.pool.ssl` replaces the URL's TLS settings. `close()` ends the pool.
 */
export async function openMysqlStore(url: string, options: Omit<MysqlStoreOptions, 'pool'> & { pool?: PoolOptions } = {}): Promise<MysqlStore> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw configError('store', 'is not a valid mysql:// URL');
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') throw configError('store', 'must be a mysql:// or mariadb:// URL');
  if (parsed.pathname.length <= 1) throw configError('store', 'must name a database (mysql://host:3306/DATABASE)');
  const table = parsed.searchParams.get('table') ?? options.table;
  parsed.searchParams.delete('table');
  const tls = await tlsFromUrl(parsed.searchParams);
  if (tls && parsed.searchParams.has('ssl')) throw configError('store', 'cannot combine mysql2\'s ssl parameter with ssl-mode, ssl-ca, ssl-cert or ssl-key');
  // mysql2 checks the certificate of a server reached by IP address against the name
  // "localhost", not the address: it would accept a certificate for localhost and refuse one for
  // the address. verify-full cannot be honoured there, so it is refused rather than weakened.
  if (tls?.mode === 'verify-full' && isIP(parsed.hostname.replace(/^\[|\]$/g, '')) !== 0) {
    throw configError('store', 'has ssl-mode=verify-full (the default with ssl-ca, ssl-cert or ssl-key) and an IP address as host: mysql2 cannot check a certificate against an IP address; connect by a host name the certificate names, or set ssl-mode=verify-ca');
  }
  const ssl = mysqlSsl(tls);
  parsed.protocol = 'mysql:';
  const mysql: typeof Mysql = await importDriver(() => import('mysql2/promise'), 'MySQL', 'mysql2');
  const createPool = mysql.createPool ?? (mysql as unknown as { default: typeof Mysql }).default.createPool;
  const pool = createPool({ uri: parsed.toString(), connectionLimit: 10, connectTimeout: 5000, enableKeepAlive: true, ...(ssl ? { ssl } : {}), ...options.pool });
  const { pool: _ignored, ...rest } = options;
  try {
    return new MysqlStore({ ...rest, pool, ...(table === null || table === undefined ? {} : { table }) }, () => pool.end());
  } catch (error) {
    await pool.end();
    throw error;
  }
}

/** Whether the connection may be broken (or in an unknown state) after this error. */
function isFatal(error: unknown): boolean {
  if (error instanceof SessionError) return false;
  return (error as { fatal?: unknown } | null)?.fatal === true || !(error as { sqlState?: unknown } | null)?.sqlState;
}

/** Driver and server failures as typed errors; the MySQL error code travels in the context. */
function storeError(error: unknown, operation: string): SessionError {
  if (error instanceof SessionError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const context = { store: STORE, operation, ...(typeof code === 'string' ? { mysqlCode: code } : {}) };
  if (code === 'ER_DATA_TOO_LONG') return new SessionError('ESESS_INVALID_INPUT', { message: 'A store key or user ID is longer than the session table allows', cause: error, context });
  if (code === 'ER_NET_PACKET_TOO_LARGE') return new SessionError('ESESS_TOO_LARGE', { message: 'Session data exceeds the server\'s max_allowed_packet', cause: error, context });
  return new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context });
}
