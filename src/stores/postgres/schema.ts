import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { configError } from '../../core/errors.js';
import { readSchemaVersion } from '../kit/sql-schema.js';
import { storeError, STORE } from './errors.js';

export interface PostgresTarget {
  /** @default 'public' */
  schema?: string;
  /** @default 'elastic_sessions' */
  table?: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

export interface Names {
  schema: string;
  /** The sessions table, unquoted. */
  name: string;
  /** Quoted, schema-qualified. */
  table: string;
  meta: string;
  /** The revoke watermarks, one row per user (`<table>_watermarks`). */
  watermarks: string;
  index: (suffix: string) => string;
  /** Advisory-lock keys, one per table, so stores on other tables never contend. */
  sweepLock: string;
  migrateLock: string;
}

/**
 * Applied in order inside one transaction with the version bump; never edit a shipped one.
 * `expires_at` is when the row may be deleted: the session's expiry,
 * min(last_seen_at + idle_timeout, absolute_expires_at), for a live row, and the end of the
 * tombstone (the `until` it guards) for a destroyed one. Liveness and sweeping are both one
 * indexed comparison. `fields` maps each field name to `{"v": <JSON text or null>, "s": <stamp>}`;
 * values stay text so the store never reinterprets (or rejects) what the manager encoded.
 *
 * 2: the principal's stamp (`user_stamp`, '' for rows written before: it orders first), the
 * destroy's stamp on tombstones (`tombstone_stamp`, '' for older tombstones), and the revoke
 * watermarks. Stamps are COLLATE "C" so they compare bytewise, as the core compares them.
 * Adding a NOT NULL column with a constant default rewrites no rows (PostgreSQL 11+).
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
  (t) => `
    ALTER TABLE ${t.table}
      ADD COLUMN user_stamp text COLLATE "C" NOT NULL DEFAULT '',
      ADD COLUMN tombstone_stamp text COLLATE "C" NOT NULL DEFAULT '';
    CREATE TABLE ${t.watermarks} (
      user_id text COLLATE "C" NOT NULL,
      stamp text COLLATE "C" NOT NULL,
      until bigint NOT NULL,
      CONSTRAINT ${t.index('wm_pkey')} PRIMARY KEY (user_id)
    );
    CREATE INDEX ${t.index('wm_until')} ON ${t.watermarks} (until);`,
];

/** The schema version this code writes and understands. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

export function names(target: PostgresTarget): Names {
  const schema = target.schema ?? 'public';
  const table = target.table ?? 'elastic_sessions';
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema)) throw configError('schema', 'must be an SQL identifier: letters, digits and _, at most 48 characters');
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) throw configError('table', 'must be an SQL identifier: letters, digits and _, at most 48 characters');
  return {
    schema,
    name: table,
    table: `"${schema}"."${table}"`,
    meta: `"${schema}"."${table}_schema"`,
    watermarks: `"${schema}"."${table}_watermarks"`,
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
export async function schemaVersion(pool: Pool, t: Names): Promise<number> {
  const result = await pool.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [t.meta]);
  if (result.rows[0]?.present !== true) return 0;
  return readVersion((await pool.query(`SELECT version FROM ${t.meta} WHERE id = 1`)).rows[0]?.version);
}

function readVersion(found: unknown): number {
  return readSchemaVersion(STORE, found, MIGRATIONS.length);
}
