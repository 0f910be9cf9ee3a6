import type Database from 'better-sqlite3';
import { META_COLUMNS, RECORD_COLUMNS } from './rows.js';

const LIVE = 'tombstone_until IS NULL AND expires_at > ?';
/** Destroys a live row in place: the tombstone keeps the key until the absolute expiry plus the grace. */
const TOMBSTONE = 'tombstone_until = absolute_expires_at + ?, tombstone_stamp = ?, user_id = NULL';

type StatementName =
  | 'load' | 'state' | 'meta' | 'deadAt' | 'insertSession' | 'putField' | 'setField' | 'update' | 'rewrite' | 'tombstone' | 'tombstoneUser'
  | 'userMeta' | 'putTombstone' | 'listByUser' | 'dead' | 'scan' | 'deleteSession' | 'deleteFields' | 'watermark' | 'putWatermark' | 'deadWatermarks';

/** The store's prepared statements, by name (declared: better-sqlite3's own statement type cannot be named in declarations). */
export type Statements = Record<StatementName, Database.Statement>;

export function prepareStatements(db: Database.Database): Statements {
  // The application may have turned on safe integers for its connection; we want plain numbers.
  const prepare = (sql: string): Database.Statement => db.prepare(sql).safeIntegers(false);
  return {
    // One statement each, so the meta and the fields come from one snapshot even while others write.
    load: prepare(`SELECT ${RECORD_COLUMNS} FROM elastic_sessions LEFT JOIN elastic_session_fields USING (key) WHERE key = ? AND ${LIVE}`).raw(),
    state: prepare(`SELECT ${RECORD_COLUMNS} FROM elastic_sessions LEFT JOIN elastic_session_fields USING (key) WHERE key = ?`).raw(),
    meta: prepare(`SELECT ${META_COLUMNS} FROM elastic_sessions WHERE key = ? AND ${LIVE}`).raw(),
    deadAt: prepare('SELECT coalesce(tombstone_until, expires_at) FROM elastic_sessions WHERE key = ?').pluck(),
    insertSession: prepare(
      `INSERT INTO elastic_sessions (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, user_stamp, version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    /** A delta's field write: the stored one stays when its stamp is not older (last writer wins in the WHERE). */
    putField: prepare(
      `INSERT INTO elastic_session_fields (key, name, value, stamp) VALUES (?, ?, ?, ?)
       ON CONFLICT (key, name) DO UPDATE SET value = excluded.value, stamp = excluded.stamp
       WHERE excluded.stamp > elastic_session_fields.stamp`,
    ),
    /** A merged field, already decided by `mergeRecords`. */
    setField: prepare(
      `INSERT INTO elastic_session_fields (key, name, value, stamp) VALUES (?, ?, ?, ?)
       ON CONFLICT (key, name) DO UPDATE SET value = excluded.value, stamp = excluded.stamp`,
    ),
    update: prepare('UPDATE elastic_sessions SET last_seen_at = ?, expires_at = ?, user_id = ?, user_stamp = ?, version = ? WHERE key = ?'),
    rewrite: prepare(
      `UPDATE elastic_sessions SET created_at = ?, last_seen_at = ?, idle_timeout = ?, absolute_expires_at = ?, expires_at = ?, user_id = ?, user_stamp = ?, version = ?
       WHERE key = ?`,
    ),
    tombstone: prepare(`UPDATE elastic_sessions SET ${TOMBSTONE} WHERE key = ? AND ${LIVE}`),
    tombstoneUser: prepare(`UPDATE elastic_sessions SET ${TOMBSTONE} WHERE user_id = ? AND ${LIVE} RETURNING key`).pluck(),
    userMeta: prepare(`SELECT key, ${META_COLUMNS} FROM elastic_sessions WHERE user_id = ? AND ${LIVE}`).raw(),
    /** A merged tombstone; one from another replica may arrive for a key with no row: it has no record behind it. */
    putTombstone: prepare(
      `INSERT INTO elastic_sessions (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, version, tombstone_until, tombstone_stamp)
       VALUES (?, 0, 0, 0, 0, 0, NULL, 0, ?, ?)
       ON CONFLICT (key) DO UPDATE SET tombstone_until = excluded.tombstone_until, tombstone_stamp = excluded.tombstone_stamp, user_id = NULL`,
    ),
    listByUser: prepare(`SELECT key, created_at, last_seen_at, expires_at FROM elastic_sessions WHERE user_id = ? AND ${LIVE} ORDER BY created_at`).raw(),
    dead: prepare('SELECT key FROM elastic_sessions WHERE coalesce(tombstone_until, expires_at) <= ? ORDER BY coalesce(tombstone_until, expires_at) LIMIT ?').pluck(),
    scan: prepare(`SELECT key FROM elastic_sessions WHERE key > ? AND ${LIVE} ORDER BY key LIMIT ?`).pluck(),
    deleteSession: prepare('DELETE FROM elastic_sessions WHERE key = ?'),
    deleteFields: prepare('DELETE FROM elastic_session_fields WHERE key = ?'),
    watermark: prepare('SELECT stamp, until FROM elastic_session_watermarks WHERE user_id = ? AND until > ?').raw(),
    putWatermark: prepare(
      `INSERT INTO elastic_session_watermarks (user_id, stamp, until) VALUES (?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET stamp = excluded.stamp, until = excluded.until`,
    ),
    deadWatermarks: prepare(
      `DELETE FROM elastic_session_watermarks WHERE user_id IN
       (SELECT user_id FROM elastic_session_watermarks WHERE until <= ? ORDER BY until LIMIT ?)`,
    ),
  };
}
