import { createHash } from 'node:crypto';
import type * as Pg from 'pg';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import { configError, SessionError } from '../core/errors.js';
import { importDriver } from './driver.js';
import { publishCorrupt } from '../core/telemetry.js';
import type { ApplyResult, Clock, SessionDelta, SessionStore, StoreCapabilities, StoredSession, StoredSummary } from '../core/types.js';
import { expiresAt, systemClock } from '../core/types.js';
import { checkGrace, encodeFields, readSchemaVersion, readSession, schemaBehindError, toInteger } from './sql-record.js';

export interface PostgresStoreOptions {
  /** A `pg` Pool. The application owns it: `close()` leaves it open. Give it an `error` listener. */
  pool: Pool;
  /** Schema holding the tables; created on migration when missing. @default 'public' */
  schema?: string;
  /** Sessions table; the schema-version table is `<table>_schema`. @default 'elastic_sessions' */
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

export interface PostgresTarget {
  /** @default 'public' */
  schema?: string;
  /** @default 'elastic_sessions' */
  table?: string;
}

const STORE = 'postgres';
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

/**
 * Applied in order inside one transaction with the version bump; never edit a shipped one.
 * `expires_at` is when the row may be deleted: the session's expiry,
 * min(last_seen_at + idle_timeout, absolute_expires_at), for a live row, and the end of the
 * tombstone for a destroyed one. Liveness and sweeping are both one indexed comparison.
 * `fields` maps each field name to `{"v": <JSON text or null>, "s": <stamp>}`; values stay
 * text so the store never reinterprets (or rejects) what the manager encoded.
 */
const MIGRATIONS: readonly ((t: Names) => string)[] = [
  (t) => `
    CREATE TABLE ${t.table} (
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
    CREATE INDEX ${t.index('expires_at')} ON ${t.table} (expires_at);
    CREATE INDEX ${t.index('user_id')} ON ${t.table} (user_id) WHERE user_id IS NOT NULL;`,
];

/** The schema version this code writes and understands. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

interface Names {
  schema: string;
  /** The sessions table, unquoted. */
  name: string;
  /** Quoted, schema-qualified. */
  table: string;
  meta: string;
  index: (suffix: string) => string;
  /** Advisory-lock keys, one per table, so stores on other tables never contend. */
  sweepLock: string;
  migrateLock: string;
}

function names(target: PostgresTarget): Names {
  const schema = target.schema ?? 'public';
  const table = target.table ?? 'elastic_sessions';
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema)) throw configError('schema', 'must be an SQL identifier: letters, digits and _, at most 48 characters');
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) throw configError('table', 'must be an SQL identifier: letters, digits and _, at most 48 characters');
  return {
    schema,
    name: table,
    table: `"${schema}"."${table}"`,
    meta: `"${schema}"."${table}_schema"`,
    index: (suffix) => `"${table}_${suffix}"`,
    sweepLock: lockKey(`sweep:${schema}.${table}`),
    migrateLock: lockKey(`migrate:${schema}.${table}`),
  };
}

/**
 * The advisory-lock key a sweep of these tables takes (`pg_try_advisory_xact_lock`), for
 * monitoring (`pg_locks`) or for pausing sweeps by holding it from another session.
 */
export function postgresSweepLockKey(target: PostgresTarget = {}): string {
  return names(target).sweepLock;
}

/** A signed 64-bit advisory-lock key (as text) from the first 8 bytes of a SHA-256. */
function lockKey(name: string): string {
  return createHash('sha256').update(`elastic-session:${name}`).digest().readBigInt64BE(0).toString();
}

/**
 * Creates or upgrades the session tables to `POSTGRES_SCHEMA_VERSION`. Safe to run from many
 * instances at once (a transaction-scoped advisory lock serializes them); each migration and
 * the version bump commit together. `elastic-session migrate` calls this.
 * @returns the schema version found before and the one now in place.
 */
export async function migratePostgres(pool: Pool, target: PostgresTarget = {}): Promise<{ from: number; to: number }> {
  const t = names(target);
  let client: PoolClient | undefined;
  try {
    client = await pool.connect();
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [t.migrateLock]);
    // CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege first, so ask before trying.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [t.schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA "${t.schema}"`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${t.meta} (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)`);
    const found = readVersion((await client.query(`SELECT version FROM ${t.meta} WHERE id = 1`)).rows[0]?.version);
    for (const migration of MIGRATIONS.slice(found)) await client.query(migration(t));
    if (found < MIGRATIONS.length) {
      await client.query(`INSERT INTO ${t.meta} (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version`, [MIGRATIONS.length]);
    }
    await client.query('COMMIT');
    return { from: found, to: MIGRATIONS.length };
  } catch (error) {
    await client?.query('ROLLBACK').catch(() => undefined);
    throw storeError(error, 'migrate');
  } finally {
    client?.release();
  }
}

/** The schema version in the database; 0 when the tables were never created. */
async function schemaVersion(pool: Pool, t: Names): Promise<number> {
  const result = await pool.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [t.meta]);
  if (result.rows[0]?.present !== true) return 0;
  return readVersion((await pool.query(`SELECT version FROM ${t.meta} WHERE id = 1`)).rows[0]?.version);
}

function readVersion(found: unknown): number {
  return readSchemaVersion(STORE, found, MIGRATIONS.length);
}

type Row = Record<string, unknown>;

/**
 * Sessions in PostgreSQL: one row per session, fields as JSONB with a clock stamp each.
 * A delta is one statement that merges field by field in SQL (last writer by stamp wins),
 * so concurrent deltas from any number of instances never lose a field. PostgreSQL has no
 * TTL: expired rows are invisible at once and removed by `sweep`, which one instance at a
 * time runs (a transaction-scoped advisory lock; the others get 0 at once).
 */
export class PostgresStore implements SessionStore {
  readonly name = STORE;
  readonly capabilities: StoreCapabilities = { nativeTtl: false, cas: true, userIndex: true, sweep: true };
  readonly #pool: Pool;
  readonly #t: Names;
  readonly #migrate: boolean;
  readonly #clock: Clock;
  readonly #onClose: (() => Promise<void>) | undefined;
  readonly #sql: ReturnType<typeof statements>;
  #ready: Promise<void> | undefined;
  #closed = false;

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
    this.#open();
    return migratePostgres(this.#pool, { schema: this.#t.schema, table: this.#t.name });
  }

  async load(key: string): Promise<StoredSession | null> {
    const rows = await this.#query('load', this.#sql.load, [key, this.#clock()]);
    const row = rows[0];
    if (!row) return null;
    const session = readSession(row);
    if (!session) publishCorrupt(STORE);
    return session;
  }

  async create(key: string, session: StoredSession): Promise<boolean> {
    const { createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, userId, version } = session;
    const params = [key, createdAt, lastSeenAt, idleTimeout, absoluteExpiresAt, expiresAt(session), userId ?? null, version, encodeFields(session.fields), this.#clock()];
    return (await this.#query('create', this.#sql.create, params)).length === 1;
  }

  async apply(key: string, delta: SessionDelta): Promise<ApplyResult> {
    const setUser = delta.userId !== undefined;
    const params = [key, this.#clock(), encodeFields(delta.fields), delta.lastSeenAt ?? null, setUser, setUser ? delta.userId : null, delta.expectVersion ?? null];
    const row = (await this.#query('apply', this.#sql.apply, params))[0];
    if (!row) return { status: 'gone' };
    if (row.applied !== null) return { status: 'ok', version: toNumber(row.applied) };
    return { status: 'conflict', version: toNumber(row.current) };
  }

  async destroy(key: string, tombstoneGraceMs: number): Promise<boolean> {
    return (await this.#query('destroy', this.#sql.destroy, [key, this.#clock(), checkGrace(tombstoneGraceMs)])).length === 1;
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

  async destroyByUser(userId: string, tombstoneGraceMs: number): Promise<number> {
    return (await this.#query('destroyByUser', this.#sql.destroyByUser, [userId, this.#clock(), checkGrace(tombstoneGraceMs)])).length;
  }

  /**
   * Deletes up to `limit` expired sessions and dead tombstones, oldest first, in one short
   * statement. Returns 0 at once when another instance is sweeping this table.
   */
  async sweep(limit: number): Promise<number> {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new SessionError('ESESS_INVALID_INPUT', { message: 'sweep() limit must be a non-negative integer' });
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
    if (!Number.isSafeInteger(limit) || limit < 1) throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() limit must be a positive integer' });
    if (cursor !== null && typeof cursor !== 'string') throw new SessionError('ESESS_INVALID_INPUT', { message: 'scan() cursor must be a string or null' });
    const keys: string[] = [];
    for (const row of await this.#query('scan', this.#sql.scan, [cursor ?? '', this.#clock(), limit])) {
      if (typeof row.key === 'string') keys.push(row.key);
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

  async #query(operation: string, sql: string, params: unknown[]): Promise<Row[]> {
    this.#open();
    await this.#whenReady();
    try {
      return (await this.#pool.query<Row>(sql, params)).rows;
    } catch (error) {
      throw storeError(error, operation);
    }
  }

  /** Migrates (or checks the version) once; a failure is retried by the next call. */
  #whenReady(): Promise<void> {
    this.#ready ??= (async () => {
      if (this.#migrate) {
        await migratePostgres(this.#pool, { schema: this.#t.schema, table: this.#t.name });
        return;
      }
      let found: number;
      try {
        found = await schemaVersion(this.#pool, this.#t);
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

export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(options);
}

/**
 * Opens a store over its own pool from a URL (`postgres://user:pass@host:5432/db`), for the
 * session service and the CLI. Query parameters `schema` and `table` choose the tables; the
 * others go to `pg` (`sslmode`, ...). `close()` ends the pool.
 */
export async function openPostgresStore(url: string, options: Omit<PostgresStoreOptions, 'pool'> & { pool?: PoolConfig } = {}): Promise<PostgresStore> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw configError('store', 'is not a valid postgres:// URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') throw configError('store', 'must be a postgres:// or postgresql:// URL');
  const schema = parsed.searchParams.get('schema') ?? options.schema;
  const table = parsed.searchParams.get('table') ?? options.table;
  parsed.searchParams.delete('schema');
  parsed.searchParams.delete('table');
  const pg: typeof Pg = await importDriver(() => import('pg'), 'PostgreSQL', 'pg');
  const pool = new pg.Pool({ connectionTimeoutMillis: 5000, ...options.pool, connectionString: parsed.toString() });
  // An idle connection that dies (server restart) is reported on the pool; the next query
  // reports it to its caller, so the event itself needs no action.
  pool.on('error', () => undefined);
  const { pool: _ignored, ...rest } = options;
  try {
    return new PostgresStore({ ...rest, pool, ...(schema === null ? {} : { schema }), ...(table === null ? {} : { table }) }, () => pool.end());
  } catch (error) {
    await pool.end();
    throw error;
  }
}

function statements(t: Names) {
  const live = 'NOT tombstone AND expires_at > $2::bigint';
  return {
    load: `SELECT created_at, last_seen_at, idle_timeout, absolute_expires_at, user_id, version, fields::text AS fields
           FROM ${t.table} WHERE key = $1 AND ${live}`,
    // Insert, or take over a dead row (expired, or a tombstone past its time); a live row or
    // live tombstone keeps the key and nothing is returned.
    create: `INSERT INTO ${t.table} AS s (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, fields)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
             ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at, last_seen_at = excluded.last_seen_at,
               idle_timeout = excluded.idle_timeout, absolute_expires_at = excluded.absolute_expires_at, expires_at = excluded.expires_at,
               user_id = excluded.user_id, version = excluded.version, tombstone = false, fields = excluded.fields
             WHERE s.expires_at <= $10::bigint
             RETURNING 1`,
    // One statement: lock the live row and read its version (so "gone" and "conflict" need no
    // second query; a row that a concurrent destroy turned into a tombstone is re-checked after
    // the lock wait and drops out; dead rows are never locked, so a sweep never blocks this),
    // then merge. For each delta field the stored entry is kept when its stamp is not
    // older (stamps are fixed-width hex, compared bytewise with COLLATE "C"). When no field
    // wins (a touch), `fields` stays the very same value, so PostgreSQL does not rewrite it.
    apply: `WITH cur AS (
              SELECT key, version FROM ${t.table} WHERE key = $1 AND ${live} FOR UPDATE
            ), upd AS (
              UPDATE ${t.table} AS s SET
                fields = coalesce(s.fields || (
                  SELECT jsonb_object_agg(d.key, d.value) FROM jsonb_each($3::jsonb) AS d
                  WHERE s.fields -> d.key IS NULL OR (d.value ->> 's') COLLATE "C" > (s.fields -> d.key ->> 's') COLLATE "C"
                ), s.fields),
                last_seen_at = greatest(s.last_seen_at, coalesce($4::bigint, s.last_seen_at)),
                expires_at = least(greatest(s.last_seen_at, coalesce($4::bigint, s.last_seen_at)) + s.idle_timeout, s.absolute_expires_at),
                user_id = CASE WHEN $5::boolean THEN $6::text ELSE s.user_id END,
                version = s.version + 1
              FROM cur
              WHERE s.key = cur.key AND ($7::bigint IS NULL OR cur.version = $7::bigint)
              RETURNING s.version
            )
            SELECT cur.version AS current, upd.version AS applied FROM cur LEFT JOIN upd ON true`,
    destroy: `UPDATE ${t.table} SET tombstone = true, expires_at = absolute_expires_at + $3::bigint, fields = '{}', user_id = NULL, version = version + 1
              WHERE key = $1 AND ${live} RETURNING 1`,
    destroyByUser: `UPDATE ${t.table} SET tombstone = true, expires_at = absolute_expires_at + $3::bigint, fields = '{}', user_id = NULL, version = version + 1
                    WHERE user_id = $1 AND ${live} RETURNING 1`,
    listByUser: `SELECT key, created_at, last_seen_at, expires_at FROM ${t.table} WHERE user_id = $1 AND ${live} ORDER BY created_at`,
    // Keyset pagination on the primary key ('' sorts before every key): an index range scan.
    scan: `SELECT key FROM ${t.table} WHERE key > $1::text AND ${live} ORDER BY key LIMIT $3`,
    // The lock is taken (or not) once, before the scan; it is released when this statement's
    // transaction ends. SKIP LOCKED: rows that a writer holds are left for the next batch.
    // Victims are deleted by ctid (stable while we hold their row locks): a TID scan, where a
    // join on key let the planner hash the whole table for every batch.
    sweep: `WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($3::bigint) AS held),
            victims AS (
              SELECT ctid FROM ${t.table} WHERE (SELECT held FROM lock) AND expires_at <= $1::bigint
              ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
            ),
            removed AS (DELETE FROM ${t.table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM victims)) RETURNING 1)
            SELECT (SELECT held FROM lock) AS held, (SELECT count(*) FROM removed) AS removed`,
  };
}

function toNumber(value: unknown): number {
  const n = toInteger(value);
  if (n === undefined) throw new SessionError('ESESS_STORE_UNAVAILABLE', { message: 'The database returned an unreadable number', context: { store: STORE } });
  return n;
}

/** Driver and server failures as typed errors; the SQLSTATE travels in the context. */
function storeError(error: unknown, operation: string): SessionError {
  if (error instanceof SessionError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const context = { store: STORE, operation, ...(typeof code === 'string' ? { sqlState: code } : {}) };
  // Text PostgreSQL cannot hold (a NUL character in a field name or user ID).
  if (code === '22P05' || code === '22021') return new SessionError('ESESS_INVALID_INPUT', { message: 'Session data holds characters PostgreSQL cannot store', cause: error, context });
  if (code === '54000') return new SessionError('ESESS_TOO_LARGE', { message: 'Session data exceeds a PostgreSQL limit', cause: error, context });
  return new SessionError('ESESS_STORE_UNAVAILABLE', { cause: error, context });
}
