import type { Pool, PoolClient } from 'pg';
import { configError, SessionError } from '../../core/errors.js';
import { covers, mergeWatermarks, revokedTombstone, watermarkAt } from '../../core/record.js';
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
import { checkDelta, checkForeignState, checkGrace, checkLimit, checkRecord, checkStamp, checkSweepLimit } from '../kit/checks.js';
import { encodeFields, toInteger } from '../kit/record-codec.js';
import { mergeForeign } from '../kit/replica.js';
import { migrateOrCheck } from '../kit/sql-schema.js';
import { once, StoreShell } from '../kit/shell.js';
import { STORE, storeError, toNumber } from './errors.js';
import { sessionOf, stateOf, watermarkOf } from './rows.js';
import type { Row } from './rows.js';
import { migratePostgres, names, POSTGRES_SCHEMA_VERSION, schemaVersion } from './schema.js';
import type { Names } from './schema.js';
import { statements } from './statements.js';
import type { Statements } from './statements.js';

export interface PostgresStoreOptions {
  /** A `pg` Pool. The application owns it: `close()` leaves it open. Give it an `error` listener. */
  pool: Pool;
  /** Schema holding the tables; created on migration when missing. @default 'public' */
  schema?: string;
  /** Sessions table; the schema-version table is `<table>_schema`, the revoke watermarks `<table>_watermarks`. @default 'elastic_sessions' */
  table?: string;
  /**
   * Create or upgrade the tables on first use. With `false` the store only checks the schema
   * version and asks for `elastic-session migrate` (or `migratePostgres`) when it is behind.
   * @default true
   */
  migrate?: boolean;
  /**
   * Time source for expiry. Every query compares against this clock (sent as a parameter), not
   * the database's `now()`, so all instances must run on synchronized clocks (NTP), as they
   * must anyway for the hybrid logical clock. @default Date.now
   */
  clock?: Clock;
}

/**
 * Sessions in PostgreSQL: one row per session, fields as JSONB with a clock stamp each.
 * A delta is one statement that merges field by field in SQL (last writer by stamp wins),
 * so concurrent deltas from any number of instances never lose a field. PostgreSQL has no
 * TTL: expired rows are invisible at once and removed by `sweep`, which one instance at a
 * time runs (a transaction-scoped advisory lock; the others get 0 at once). The replica powers
 * merge in a short transaction with the row locked, by the core's rules (`mergeForeign`).
 */
export class PostgresStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true, scan: true, replica: true };
  readonly #pool: Pool;
  readonly #t: Names;
  readonly #migrate: boolean;
  readonly #clock: Clock;
  readonly #onClose: (() => Promise<void>) | undefined;
  readonly #sql: Statements;
  readonly #shell = new StoreShell(STORE, { classify: storeError });
  readonly #ready = once(() =>
    migrateOrCheck({
      store: STORE,
      migrate: this.#migrate,
      run: () => migratePostgres(this.#pool, { schema: this.#t.schema, table: this.#t.name }),
      version: () => schemaVersion(this.#pool, this.#t),
      supported: POSTGRES_SCHEMA_VERSION,
      wrap: (error) => storeError(error, 'migrate'),
    }),
  );

  constructor(options: PostgresStoreOptions, onClose?: () => Promise<void>) {
    if (!options || typeof options.pool?.query !== 'function' || typeof options.pool.connect !== 'function') throw configError('pool', 'must be a pg Pool');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw configError('clock', 'must be a function returning milliseconds');
    if (options.migrate !== undefined && typeof options.migrate !== 'boolean') throw configError('migrate', 'must be a boolean');
    this.#pool = options.pool;
    this.#t = names(options);
    this.#migrate = options.migrate ?? true;
    this.#clock = options.clock ?? systemClock;
    this.#onClose = onClose;
    this.#sql = statements(this.#t);
  }

  /** Creates or upgrades the tables now (otherwise it happens on first use). */
  async migrate(): Promise<{ from: number; to: number }> {
    this.#shell.open('migrate');
    return migratePostgres(this.#pool, { schema: this.#t.schema, table: this.#t.name });
  }

  async load(key: string): Promise<StoredSession | null> {
    const row = (await this.#query('load', this.#sql.load, [key, this.#clock()]))[0];
    return row ? sessionOf(row) : null;
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    checkRecord(session);
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, userStamp, version } = session;
    const params = [key, createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt(session), userId ?? null, userStamp, version, encodeFields(session.fields), this.#clock()];
    return (await this.#query('create', this.#sql.create, params)).length === 1;
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    checkDelta(delta);
    const setUser = delta.userId !== undefined;
    const params = [key, this.#clock(), encodeFields(delta.fields), delta.lastSeenAt ?? null, setUser, setUser ? delta.userId : null, delta.expectVersion ?? null, setUser ? delta.userStamp : null];
    const row = (await this.#query('apply', this.#sql.apply, params))[0];
    if (!row) return { status: 'gone' };
    if (row.applied !== null) return { status: 'ok', version: toNumber(row.applied) };
    return { status: 'conflict', version: toNumber(row.current) };
  }

  async destroy(key: string, tombstoneGraceMs: number, stamp = ''): Promise<boolean> {
    checkGrace(tombstoneGraceMs);
    checkStamp(stamp, 'A destroy stamp', true);
    return (await this.#query('destroy', this.#sql.destroy, [key, this.#clock(), tombstoneGraceMs, stamp])).length === 1;
  }

  async listByUser(userId: string): Promise<StoredSummary[]> {
    const summaries: StoredSummary[] = [];
    for (const row of await this.#query('listByUser', this.#sql.listByUser, [userId, this.#clock()])) {
      const summary = { key: row.key, createdAt: toInteger(row.created_at), lastSeenAt: toInteger(row.last_seen_at), expiresAt: toInteger(row.expires_at) };
      if (typeof summary.key === 'string' && summary.createdAt !== undefined && summary.lastSeenAt !== undefined && summary.expiresAt !== undefined) summaries.push(summary as StoredSummary);
      else publishCorrupt(STORE);
    }
    return summaries;
  }

  async destroyByUser(userId: string, tombstoneGraceMs: number, stamp?: string): Promise<number> {
    checkGrace(tombstoneGraceMs);
    if (stamp !== undefined) await this.#raiseWatermark('destroyByUser', userId, checkStamp(stamp, 'A revoke stamp'));
    return (await this.#query('destroyByUser', this.#sql.destroyByUser, [userId, this.#clock(), tombstoneGraceMs, stamp ?? ''])).length;
  }

  async readState(key: string): Promise<KeyState> {
    const now = this.#clock();
    return stateOf((await this.#query('readState', this.#sql.readState, [key, now]))[0], now);
  }

  /**
   * One short transaction: a dead placeholder row is inserted if the key has none (so there is
   * always a row to lock, and a concurrent create or merge of the key waits for this one), the
   * row is locked, the merge is computed by the core's rules, and the result written. The
   * watermark of the merged record's user is read FOR SHARE in the same transaction.
   *
   * A watermark row that does not exist yet cannot be locked: a mergeWatermark inserting it
   * could then walk the user's sessions before this transaction commits, and miss the record it
   * writes. So when no watermark row was found and a live record of a user was written, the
   * watermark is read again after the commit (by then any mergeWatermark that this read misses
   * starts its walk later, and sees the record), and a record it covers is destroyed.
   */
  async mergeState(key: string, foreign: LiveState | TombstoneState): Promise<MergeOutcome> {
    checkForeignState(foreign);
    const now = this.#clock();
    const sql = this.#sql;
    const { next, outcome, unguarded } = await this.#transaction('mergeState', async (client) => {
      await client.query(sql.placeholder, [key]);
      const current = stateOf((await client.query<Row>(sql.lock, [key])).rows[0], now);
      let unguarded = false;
      const merged = await mergeForeign(current, foreign, async (user) => {
        const row = (await client.query<Row>(sql.shareWatermark, [user])).rows[0];
        unguarded = row === undefined;
        return watermarkOf(row, now);
      }, now);
      const { next, outcome } = merged;
      if (next === null) {
        await client.query(sql.deleteKey, [key]);
      } else if (!outcome.changed) {
        // Nothing to write.
      } else if (next.kind === 'tombstone') {
        await client.query(sql.writeTombstone, [key, next.stamp, next.until]);
      } else {
        const r = next.record;
        await client.query(sql.writeLive, [key, r.createdAt, r.lastSeenAt, r.idleTimeout, r.absoluteExpiresAt, expiresAt(r), r.userId, r.userStamp, r.version, encodeFields(r.fields)]);
      }
      return { ...merged, unguarded };
    });
    const record = next?.kind === 'live' ? next.record : null;
    const userId = record?.userId ?? null;
    if (!unguarded || !outcome.changed || record === null || userId === null) return outcome;
    const after = this.#clock();
    const watermark = watermarkOf((await this.#query('mergeState', sql.readWatermark, [userId, after]))[0], after);
    if (watermark === null || !covers(watermark, record)) return outcome;
    await this.#revokeCovered('mergeState', userId, watermark, key);
    return { state: 'tombstone', changed: true };
  }

  async readWatermark(userId: string): Promise<Watermark | null> {
    const now = this.#clock();
    return watermarkOf((await this.#query('readWatermark', this.#sql.readWatermark, [userId, now]))[0], now);
  }

  /**
   * Raises the watermark in a transaction of its own, committed before the user's sessions are
   * walked (in a second one, the rows locked, the core's `covers` deciding): a mergeState that
   * missed the raise has committed its record by then (it held the watermark row FOR SHARE, or
   * read it again after its commit), so the walk sees the record.
   */
  async mergeWatermark(userId: string, stamp: string): Promise<number> {
    checkStamp(stamp, 'A watermark stamp');
    const watermark = await this.#raiseWatermark('mergeWatermark', userId, stamp);
    return this.#revokeCovered('mergeWatermark', userId, watermark);
  }

  /**
   * Deletes up to `limit` expired sessions and dead tombstones, oldest first, in one short
   * statement (dead watermarks too, uncounted). Returns 0 at once when another instance is
   * sweeping this table.
   */
  async sweep(limit: number): Promise<number> {
    checkSweepLimit(limit, STORE);
    const row = (await this.#query('sweep', this.#sql.sweep, [this.#clock(), limit, this.#t.sweepLock]))[0];
    return row ? toNumber(row.removed) : 0;
  }

  /**
   * Up to `limit` keys of live sessions after `cursor`, in key order (bytewise: the key column
   * is COLLATE "C"), by keyset pagination on the primary key: each page is one index range
   * scan, however far the walk has come. The cursor is the last key of a full page; a page
   * shorter than `limit` ends the walk.
   */
  async scan(cursor: string | null, limit: number): Promise<{ keys: string[]; cursor: string | null }> {
    checkLimit(limit, STORE);
    if (cursor !== null && typeof cursor !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor must be a string or null' });
    const keys: string[] = [];
    for (const row of await this.#query('scan', this.#sql.scan, [cursor ?? '', this.#clock(), limit])) {
      if (typeof row.key === 'string') keys.push(row.key);
    }
    return { keys, cursor: keys.length === limit ? (keys.at(-1) ?? null) : null };
  }

  async close(): Promise<void> {
    if (!this.#shell.close()) return;
    await this.#onClose?.();
  }

  /** mergeWatermarks(stored, watermarkAt(stamp)), in a transaction with the watermark row locked. */
  #raiseWatermark(operation: string, userId: string, stamp: string): Promise<Watermark> {
    const raised = watermarkAt(stamp);
    const now = this.#clock();
    const sql = this.#sql;
    return this.#transaction(operation, async (client) => {
      // A sweep may delete an expired row between the insert that found it and the lock: insert again.
      for (;;) {
        if ((await client.query(sql.insertWatermark, [userId, raised.stamp, raised.until])).rowCount === 1) return raised;
        const row = (await client.query<Row>(sql.lockWatermark, [userId])).rows[0];
        if (!row) continue;
        const stored = watermarkOf(row, now);
        const next = mergeWatermarks(stored, raised) ?? raised;
        if (stored === null || next.stamp !== stored.stamp || next.until !== stored.until) await client.query(sql.writeWatermark, [userId, next.stamp, next.until]);
        return next;
      }
    });
  }

  /** Turns the live sessions of the user (or only `key`) that the watermark covers into their revoked tombstones; returns how many. */
  #revokeCovered(operation: string, userId: string, watermark: Watermark, key?: string): Promise<number> {
    const now = this.#clock();
    return this.#transaction(operation, async (client) => {
      const rows = (await (key === undefined ? client.query<Row>(this.#sql.userSessions, [userId, now]) : client.query<Row>(this.#sql.keySession, [userId, now, key]))).rows;
      const keys: string[] = [];
      const stamps: string[] = [];
      const untils: number[] = [];
      for (const row of rows) {
        const record = sessionOf(row);
        if (record === null || typeof row.key !== 'string' || !covers(watermark, record)) continue;
        const tombstone = revokedTombstone(record);
        keys.push(row.key);
        stamps.push(tombstone.stamp);
        untils.push(tombstone.until);
      }
      if (keys.length > 0) await client.query(this.#sql.revoke, [keys, stamps, untils]);
      return keys.length;
    });
  }

  async #query(operation: string, sql: string, params: unknown[]): Promise<Row[]> {
    return this.#shell.run(operation, async () => {
      await this.#whenReady();
      return (await this.#pool.query<Row>(sql, params)).rows;
    });
  }

  async #transaction<T>(operation: string, body: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.#shell.run(operation, async () => {
      await this.#whenReady();
      const client = await this.#pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await body(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => (broken = true));
        throw error;
      } finally {
        client.release(broken);
      }
    });
  }

  /** Migrates (or checks the version) once; a failure is retried by the next call. */
  #whenReady(): Promise<void> {
    return this.#ready();
  }
}

export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(options);
}
