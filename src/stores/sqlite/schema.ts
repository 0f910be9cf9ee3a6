import type Database from 'better-sqlite3';
import { readSchemaVersion } from '../kit/sql-schema.js';

export const STORE = 'sqlite';

/**
 * Applied in order, each in the same transaction as the version bump; never edit a shipped one.
 * Table names are prefixed because an application-owned database has tables of its own.
 * `tombstone_until` is non-null for destroyed sessions; `expires_at` is kept as
 * min(last_seen_at + idle_timeout, absolute_expires_at) so expiry is one indexed comparison.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE elastic_sessions (
     key TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     last_seen_at INTEGER NOT NULL,
     idle_timeout INTEGER NOT NULL,
     absolute_expires_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     user_id TEXT,
     version INTEGER NOT NULL,
     tombstone_until INTEGER
   ) WITHOUT ROWID;
   CREATE TABLE elastic_session_fields (
     key TEXT NOT NULL,
     name TEXT NOT NULL,
     value TEXT,
     stamp TEXT NOT NULL,
     PRIMARY KEY (key, name)
   ) WITHOUT ROWID;
   CREATE INDEX elastic_sessions_dead_at ON elastic_sessions (coalesce(tombstone_until, expires_at));
   CREATE INDEX elastic_sessions_user ON elastic_sessions (user_id) WHERE user_id IS NOT NULL;`,
  // The stamped principal and tombstones, and the per-user revoke watermarks. Rows of version 1
  // read with the empty stamp, which orders before every stamp; their tombstone_until was
  // already the exact guard (absolute expiry plus grace). Stamps compared in SQL (field writes)
  // use SQLite's default BINARY collation, bytewise: the order of `newer` for these ASCII stamps,
  // so no COLLATE may ever be added to a stamp column.
  `ALTER TABLE elastic_sessions ADD COLUMN user_stamp TEXT NOT NULL DEFAULT '';
   ALTER TABLE elastic_sessions ADD COLUMN tombstone_stamp TEXT NOT NULL DEFAULT '';
   CREATE TABLE elastic_session_watermarks (
     user_id TEXT PRIMARY KEY,
     stamp TEXT NOT NULL,
     until INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX elastic_session_watermarks_until ON elastic_session_watermarks (until);`,
];

/** The schema version this code writes and understands. */
export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to this release's schema, in one IMMEDIATE transaction so that processes
 * opening the same file at once migrate it once. Returns the versions before and after.
 */
export function migrate(db: Database.Database): { from: number; to: number } {
  return db
    .transaction(() => {
      db.exec('CREATE TABLE IF NOT EXISTS elastic_session_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)');
      const found: unknown = db.prepare('SELECT version FROM elastic_session_schema WHERE id = 1').pluck().safeIntegers(false).get();
      // A REAL or TEXT version is not one this store wrote.
      const from = readSchemaVersion(STORE, typeof found === 'number' || found === undefined ? found : -1, SQLITE_SCHEMA_VERSION);
      if (from === SQLITE_SCHEMA_VERSION) return { from, to: from };
      for (const migration of MIGRATIONS.slice(from)) db.exec(migration);
      db.prepare('INSERT INTO elastic_session_schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version').run(SQLITE_SCHEMA_VERSION);
      return { from, to: SQLITE_SCHEMA_VERSION };
    })
    .immediate();
}
