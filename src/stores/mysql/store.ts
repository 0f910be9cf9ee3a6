import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { configError, SessionError } from '../../core/errors.js';
import { covers, mergeDelta } from '../../core/record.js';
import { publishCorrupt } from '../../core/telemetry.js';
import type {
  ApplyResult,
  Clock,
  KeyState,
  LiveState,
  MergeOutcome,
  SessionDelta,
  SessionStore,
  StoreCapabilities,
  StoredSession,
  StoredSummary,
  TombstoneState,
  Watermark,
} from '../../core/types.js';
import { expiresAt, systemClock } from '../../core/types.js';
import { backoff } from '../kit/cas.js';
import { checkDelta, checkForeignState, checkGrace, checkLimit, checkRecord, checkStamp, checkSweepLimit } from '../kit/checks.js';
import { encodeFields, toInteger } from '../kit/record-codec.js';
import { migrateOrCheck } from '../kit/sql-schema.js';
import { once, StoreShell } from '../kit/shell.js';
import { isFatal, STORE, storeError } from './errors.js';
import { mergeLocked, raiseWatermark, revokeCovered } from './replica.js';
import type { Tables } from './replica.js';
import { LIVE } from './replica.js';
import { SESSION_COLUMNS, sessionOf, STATE_COLUMNS, stateOf, watermarkOf } from './rows.js';
import { lockNameSql, migrateMysql, MYSQL_SCHEMA_VERSION, schemaVersion, tableName } from './schema.js';

export interface MysqlStoreOptions {
  /** A `mysql2/promise` Pool with a default database. The application owns it: `close()` leaves it open. */
  pool: Pool;
  /** Sessions table in the pool's database; the schema-version table is `<table>_schema`, the revoke watermarks `<table>_watermarks`. @default 'elastic_sessions' */
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

type Rows = RowDataPacket[];
const DEADLOCK_ATTEMPTS = 4;
/** The same for a destroy (parameters: stamp, grace). */
const DESTROY = "tombstone = 1, tombstone_stamp = ?, expires_at = absolute_expires_at + ?, fields = '{}', user_id = NULL, user_stamp = '', version = version + 1";

/**
 * Sessions in MySQL 8 or MariaDB 10.11+: one row per session, fields as JSON with a clock stamp
 * each. A delta that writes fields is one short transaction: the row is locked
 * (`SELECT ... FOR UPDATE`), merged field by field here (last writer by stamp wins; the lock
 * makes this safe), and written back. A delta that only moves `lastSeenAt` or the principal is
 * one statement. Expired rows are invisible at once and removed by `sweep`, which one instance
 * at a time runs (`GET_LOCK` with no wait; the others get 0 at once). The replica powers merge
 * the same way, by the core's rules (`mergeForeign`).
 */
export class MysqlStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true };
  readonly #pool: Pool;
  readonly #table: string;
  readonly #watermarks: string;
  readonly #names: Tables;
  readonly #migrate: boolean;
  readonly #clock: Clock;
  readonly #onClose: (() => Promise<void>) | undefined;
  readonly #shell = new StoreShell(STORE, { classify: storeError });
  readonly #ready = once(() =>
    migrateOrCheck({
      store: STORE,
      migrate: this.#migrate,
      run: () => migrateMysql(this.#pool, { table: this.#table }),
      version: () => schemaVersion(this.#pool, this.#table),
      supported: MYSQL_SCHEMA_VERSION,
      wrap: (error) => storeError(error, 'migrate'),
    }),
  );

  constructor(options: MysqlStoreOptions, onClose?: () => Promise<void>) {
    if (!options || typeof options.pool?.query !== 'function' || typeof options.pool.getConnection !== 'function') throw configError('pool', 'must be a mysql2/promise Pool');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw configError('clock', 'must be a function returning milliseconds');
    if (options.migrate !== undefined && typeof options.migrate !== 'boolean') throw configError('migrate', 'must be a boolean');
    this.#pool = options.pool;
    this.#table = tableName(options.table);
    this.#watermarks = `\`${this.#table}_watermarks\``;
    this.#names = { sessions: `\`${this.#table}\``, watermarks: this.#watermarks };
    this.#migrate = options.migrate ?? true;
    this.#clock = options.clock ?? systemClock;
    this.#onClose = onClose;
  }

  /** Creates or upgrades the tables now (otherwise it happens on first use). */
  async migrate(): Promise<{ from: number; to: number }> {
    this.#shell.open('migrate');
    return migrateMysql(this.#pool, { table: this.#table });
  }

  async load(key: string): Promise<StoredSession | null> {
    const row = (await this.#rows('load', `SELECT ${SESSION_COLUMNS} FROM \`${this.#table}\` WHERE \`key\` = ? AND ${LIVE}`, [key, this.#clock()]))[0];
    return row ? sessionOf(row) : null;
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    checkRecord(session);
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, userStamp, version } = session;
    const values = [createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt(session), userId ?? null, userStamp, version, encodeFields(session.fields)];
    return this.#run('create', async () => {
      try {
        await this.#pool.query(
          `INSERT INTO \`${this.#table}\` (\`key\`, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, user_stamp, version, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [key, ...values],
        );
        return true;
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'ER_DUP_ENTRY') throw error;
      }
      // The key is taken; a dead row (expired, or a tombstone past its time) is taken over.
      const [replaced] = await this.#pool.query<ResultSetHeader>(
        `UPDATE \`${this.#table}\` SET created_at = ?, last_seen_at = ?, idle_timeout = ?, absolute_expires_at = ?, expires_at = ?, user_id = ?, user_stamp = ?, version = ?, fields = ?,
           tombstone = 0, tombstone_stamp = ''
         WHERE \`key\` = ? AND expires_at <= ?`,
        [...values, key, this.#clock()],
      );
      return replaced.affectedRows === 1;
    });
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    checkDelta(delta);
    const fields = Object.entries(delta.fields ?? {});
    if (fields.length === 0) return this.#applyMeta(key, delta);
    const now = this.#clock();
    return this.#transaction('apply', async (conn) => {
      const [rows] = await conn.query<Rows>(`SELECT ${SESSION_COLUMNS}, tombstone, expires_at FROM \`${this.#table}\` WHERE \`key\` = ? FOR UPDATE`, [key]);
      const row = rows[0];
      if (!row || toInteger(row.tombstone) !== 0 || !((toInteger(row.expires_at) ?? 0) > now)) return { status: 'gone' };
      const session = sessionOf(row);
      if (!session) return { status: 'gone' };
      if (delta.expectVersion !== undefined && delta.expectVersion !== session.version) return { status: 'conflict', version: session.version };
      mergeDelta(session, delta);
      await conn.query(`UPDATE \`${this.#table}\` SET fields = ?, last_seen_at = ?, expires_at = ?, user_id = ?, user_stamp = ?, version = ? WHERE \`key\` = ?`, [
        encodeFields(session.fields),
        session.lastSeenAt,
        expiresAt(session),
        session.userId,
        session.userStamp,
        session.version,
        key,
      ]);
      return { status: 'ok', version: session.version };
    });
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp = ''): Promise<boolean> {
    checkGrace(tombstoneGraceMs);
    checkStamp(stamp, 'A destroy stamp', true);
    const result = await this.#write('destroy', `UPDATE \`${this.#table}\` SET ${DESTROY} WHERE \`key\` = ? AND ${LIVE}`, [stamp, tombstoneGraceMs, key, this.#clock()]);
    return result.affectedRows === 1;
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    const rows = await this.#rows('listByUser', `SELECT \`key\`, created_at, last_seen_at, expires_at FROM \`${this.#table}\` WHERE user_id = ? AND ${LIVE} ORDER BY created_at`, [userId, this.#clock()]);
    const summaries: StoredSummary[] = [];
    for (const row of rows) {
      const summary = { key: row.key, createdAt: toInteger(row.created_at), lastSeenAt: toInteger(row.last_seen_at), expiresAt: toInteger(row.expires_at) };
      if (typeof summary.key === 'string' && summary.createdAt !== undefined && summary.lastSeenAt !== undefined && summary.expiresAt !== undefined) summaries.push(summary as StoredSummary);
      else publishCorrupt(STORE);
    }
    return summaries;
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    checkGrace(tombstoneGraceMs);
    if (stamp !== undefined) await this.#raiseWatermark('destroyByUser', userId, checkStamp(stamp, 'A revoke stamp'));
    const result = await this.#write('destroyByUser', `UPDATE \`${this.#table}\` SET ${DESTROY} WHERE user_id = ? AND ${LIVE}`, [stamp ?? '', tombstoneGraceMs, userId, this.#clock()]);
    return result.affectedRows;
  }

  async readState(key: string): Promise<KeyState> {
    const now = this.#clock();
    return stateOf((await this.#rows('readState', `SELECT ${STATE_COLUMNS} FROM \`${this.#table}\` WHERE \`key\` = ? AND expires_at > ?`, [key, now]))[0], now);
  }

  /**
   * One short transaction with the row locked (`mergeLocked`), the watermark of the merged
   * record's user read LOCK IN SHARE MODE in it. When the user had no watermark row and a live
   * record of the user was written, the watermark is read again after the commit and a record it
   * now covers is revoked (see the PostgreSQL store for why that closes the race). Under
   * REPEATABLE READ the locking read of a missing row already takes a gap lock that holds off
   * the watermark's insert; a server running READ COMMITTED takes none, and needs the second read.
   */
  async mergeState(key: string, foreign: LiveState | TombstoneState): Promise<MergeOutcome> {
    checkForeignState(foreign);
    const now = this.#clock();
    const { next, outcome, unguarded } = await this.#transaction('mergeState', (conn) => mergeLocked(conn, this.#names, key, foreign, now));
    const record = next?.kind === 'live' ? next.record : null;
    const userId = record?.userId ?? null;
    if (!unguarded || !outcome.changed || record === null || userId === null) return outcome;
    const watermark = await this.readWatermark(userId);
    if (watermark === null || !covers(watermark, record)) return outcome;
    await this.#revokeCovered('mergeState', userId, watermark, key);
    return { state: 'tombstone', changed: true };
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    const now = this.#clock();
    return watermarkOf((await this.#rows('readWatermark', `SELECT stamp, \`until\` FROM ${this.#watermarks} WHERE user_id = ? AND \`until\` > ?`, [userId, now]))[0], now);
  }

  /**
   * Raises the watermark in a transaction of its own, committed before the user's sessions are
   * walked (in a second one, the rows locked, the core's `covers` deciding), so a mergeState that
   * missed the raise has committed its record before the walk starts.
   */
  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    checkStamp(stamp, 'A watermark stamp');
    const watermark = await this.#raiseWatermark('mergeWatermark', userId, stamp);
    return this.#revokeCovered('mergeWatermark', userId, watermark);
  }

  /**
   * Deletes up to `limit` expired sessions and dead tombstones, oldest first, in one short
   * statement under READ COMMITTED (no gap locks on the index range); after the last batch, up to
   * as many dead watermarks (uncounted). Returns 0 at once when another instance holds the sweep
   * lock of this table.
   */
  async sweep(limit: number): Promise<number> {
    checkSweepLimit(limit, STORE);
    return this.#run('sweep', async () => {
      let conn: PoolConnection | undefined;
      let locked = false;
      let broken = false;
      try {
        conn = await this.#pool.getConnection();
        const [lock] = await conn.query<Rows>(`SELECT GET_LOCK(${lockNameSql('sweep')}, 0) AS held`, [this.#table]);
        if (toInteger(lock[0]?.held) !== 1) return 0;
        locked = true;
        const now = this.#clock();
        await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
        const [result] = await conn.query<ResultSetHeader>(`DELETE FROM \`${this.#table}\` WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`, [now, limit]);
        // Dead watermarks go once the sessions are done (a batch that was not full), so a sweep
        // through a backlog costs no extra round trips per batch.
        if (result.affectedRows < limit) {
          await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
          await conn.query(`DELETE FROM ${this.#watermarks} WHERE \`until\` <= ? ORDER BY \`until\` LIMIT ?`, [now, limit]);
        }
        return result.affectedRows;
      } catch (error) {
        broken = isFatal(error);
        throw error;
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
    });
  }

  /**
   * Up to `limit` keys of live sessions after `cursor`, in key order (the table's utf8mb4_bin
   * collation: by code point), by keyset pagination on the primary key: each page is one index
   * range scan, however far the walk has come. The cursor is the last key of a full page; a
   * page shorter than `limit` ends the walk.
   */
  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    checkLimit(limit, STORE);
    if (cursor !== null && typeof cursor !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor must be a string or null' });
    const rows = await this.#rows('scan', `SELECT \`key\` FROM \`${this.#table}\` WHERE \`key\` > ? AND ${LIVE} ORDER BY \`key\` LIMIT ?`, [cursor ?? '', this.#clock(), limit]);
    const keys: string[] = [];
    for (const row of rows) {
      const key = row.key;
      if (typeof key === 'string') keys.push(key);
      else if (Buffer.isBuffer(key)) keys.push(key.toString('utf8'));
    }
    return { keys, cursor: keys.length === limit ? (keys.at(-1) ?? null) : null };
  }

  async close(): Promise<void> {
    if (!this.#shell.close()) return;
    await this.#onClose?.();
  }

  /** A delta without fields: one statement; the new version comes back as LAST_INSERT_ID. */
  async #applyMeta(key: string, delta: SessionDelta): Promise<ApplyResult> {
    const now = this.#clock();
    const setUser = delta.userId !== undefined;
    const userStamp = setUser ? (delta.userStamp ?? null) : null;
    const lastSeenAt = delta.lastSeenAt ?? null;
    // Every assignment reads only old values (expires_at before last_seen_at, user_id before
    // user_stamp), so the statement means the same under MySQL's left-to-right and MariaDB's
    // SIMULTANEOUS_ASSIGNMENT rules. The principal moves only with a strictly newer stamp
    // (user_stamp is utf8mb4_bin, which wins over the parameter's collation: by byte).
    const expect = delta.expectVersion === undefined ? '' : ' AND version = ?';
    const result = await this.#write(
      'apply',
      `UPDATE \`${this.#table}\` SET
         expires_at = LEAST(GREATEST(last_seen_at, COALESCE(?, last_seen_at)) + idle_timeout, absolute_expires_at),
         last_seen_at = GREATEST(last_seen_at, COALESCE(?, last_seen_at)),
         user_id = IF(? AND ? > user_stamp, ?, user_id),
         user_stamp = IF(? AND ? > user_stamp, ?, user_stamp),
         version = LAST_INSERT_ID(version + 1)
       WHERE \`key\` = ? AND ${LIVE}${expect}`,
      [lastSeenAt, lastSeenAt, setUser, userStamp, setUser ? delta.userId : null, setUser, userStamp, userStamp, key, now, ...(delta.expectVersion === undefined ? [] : [delta.expectVersion])],
    );
    if (result.affectedRows === 1) return { status: 'ok', version: result.insertId };
    if (delta.expectVersion === undefined) return { status: 'gone' };
    const [row] = await this.#rows('apply', `SELECT version FROM \`${this.#table}\` WHERE \`key\` = ? AND ${LIVE}`, [key, now]);
    const version = toInteger(row?.version);
    return version === undefined ? { status: 'gone' } : { status: 'conflict', version };
  }

  #raiseWatermark(operation: string, userId: string, stamp: string): Promise<Watermark> {
    const now = this.#clock();
    return this.#transaction(operation, (conn) => raiseWatermark(conn, this.#names, userId, stamp, now));
  }

  #revokeCovered(operation: string, userId: string, watermark: Watermark, key?: string): Promise<number> {
    const now = this.#clock();
    return this.#transaction(operation, (conn) => revokeCovered(conn, this.#names, userId, watermark, now, key));
  }

  #run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return this.#shell.run(operation, async () => {
      await this.#whenReady();
      return fn();
    });
  }

  async #rows(operation: string, sql: string, params: unknown[]): Promise<Rows> {
    return this.#run(operation, async () => (await this.#pool.query<Rows>(sql, params))[0]);
  }

  async #write(operation: string, sql: string, params: unknown[]): Promise<ResultSetHeader> {
    return this.#run(operation, async () => (await this.#pool.query<ResultSetHeader>(sql, params))[0]);
  }

  /**
   * A short transaction on a pooled connection. InnoDB may pick it as a deadlock victim (a revoke
   * walk takes the user index entry before the row, a merge the row before the index entry) and
   * roll it back whole; it is then run again, as InnoDB asks, a few times.
   */
  async #transaction<T>(operation: string, body: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.#run(operation, async () => {
      for (let attempt = 1; ; attempt++) {
        const conn = await this.#pool.getConnection();
        try {
          await conn.query('START TRANSACTION');
          const result = await body(conn);
          await conn.query('COMMIT');
          conn.release();
          return result;
        } catch (error) {
          if (isFatal(error)) conn.destroy();
          else await conn.query('ROLLBACK').then(() => conn.release(), () => conn.destroy());
          if (attempt >= DEADLOCK_ATTEMPTS || (error as { code?: unknown }).code !== 'ER_LOCK_DEADLOCK') throw error;
          await backoff(attempt);
        }
      }
    });
  }

  #whenReady(): Promise<void> {
    return this.#ready();
  }
}

export function mysqlStore(options: MysqlStoreOptions): MysqlStore {
  return new MysqlStore(options);
}
