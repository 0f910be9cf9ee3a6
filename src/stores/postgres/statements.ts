import type { Names } from './schema.js';

/** The columns `readSession` reads, and (for a key's whole state) the tombstone's. */
const SESSION = 'created_at, last_seen_at, idle_timeout, absolute_expires_at, user_id, user_stamp, version, fields::text AS fields';
const STATE = `${SESSION}, tombstone, tombstone_stamp, expires_at`;
/** A record without its fields, for decisions that need only its metadata. */
const META = `created_at, last_seen_at, idle_timeout, absolute_expires_at, user_id, user_stamp, version, '{}' AS fields`;

/**
 * Every statement of the store. Stamps are compared with COLLATE "C" (the columns are declared
 * so, and parameters are cast to it): bytewise, as the core orders them, whatever the
 * database's locale.
 */
export function statements(t: Names) {
  const live = 'NOT tombstone AND expires_at > $2::bigint';
  // A tombstone keeps the destroy's stamp, and `expires_at` is the until it guards.
  const tombstone = (stamp: string, until: string) =>
    `tombstone = true, tombstone_stamp = ${stamp}, expires_at = ${until}, fields = '{}', user_id = NULL, user_stamp = '', version = version + 1`;
  return {
    load: `SELECT ${SESSION} FROM ${t.table} WHERE key = $1 AND ${live}`,
    readState: `SELECT ${STATE} FROM ${t.table} WHERE key = $1 AND expires_at > $2::bigint`,
    // Insert, or take over a dead row (expired, or a tombstone past its time); a live row or
    // live tombstone keeps the key and nothing is returned.
    create: `INSERT INTO ${t.table} AS s (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, user_id, user_stamp, version, fields)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
             ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at, last_seen_at = excluded.last_seen_at,
               idle_timeout = excluded.idle_timeout, absolute_expires_at = excluded.absolute_expires_at, expires_at = excluded.expires_at,
               user_id = excluded.user_id, user_stamp = excluded.user_stamp, version = excluded.version,
               tombstone = false, tombstone_stamp = '', fields = excluded.fields
             WHERE s.expires_at <= $11::bigint
             RETURNING 1`,
    // One statement: lock the live row and read its version (so "gone" and "conflict" need no
    // second query; a row that a concurrent destroy turned into a tombstone is re-checked after
    // the lock wait and drops out; dead rows are never locked, so a sweep never blocks this),
    // then merge. For each delta field the stored entry is kept when its stamp is not
    // older. When no field wins (a touch), `fields` stays the very same value, so PostgreSQL
    // does not rewrite it. The principal moves only with a strictly newer userStamp ($8).
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
                user_id = CASE WHEN $5::boolean AND $8::text COLLATE "C" > s.user_stamp THEN $6::text ELSE s.user_id END,
                user_stamp = CASE WHEN $5::boolean AND $8::text COLLATE "C" > s.user_stamp THEN $8::text ELSE s.user_stamp END,
                version = s.version + 1
              FROM cur
              WHERE s.key = cur.key AND ($7::bigint IS NULL OR cur.version = $7::bigint)
              RETURNING s.version
            )
            SELECT cur.version AS current, upd.version AS applied FROM cur LEFT JOIN upd ON true`,
    destroy: `UPDATE ${t.table} SET ${tombstone('$4::text', 'absolute_expires_at + $3::bigint')} WHERE key = $1 AND ${live} RETURNING 1`,
    destroyByUser: `UPDATE ${t.table} SET ${tombstone('$4::text', 'absolute_expires_at + $3::bigint')} WHERE user_id = $1 AND ${live} RETURNING 1`,
    // A revoke walk: the user's live sessions, locked, without their fields (the core decides
    // which the watermark covers from the metadata); then the covered ones become the tombstones
    // the core gives, all in one statement.
    userSessions: `SELECT key, ${META} FROM ${t.table} WHERE user_id = $1 AND ${live} FOR UPDATE`,
    keySession: `SELECT key, ${META} FROM ${t.table} WHERE user_id = $1 AND ${live} AND key = $3 FOR UPDATE`,
    revoke: `UPDATE ${t.table} SET ${tombstone('v.stamp', 'v.until')}
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(key, stamp, until) WHERE ${t.table}.key = v.key`,
    listByUser: `SELECT key, created_at, last_seen_at, expires_at FROM ${t.table} WHERE user_id = $1 AND ${live} ORDER BY created_at`,
    // Keyset pagination on the primary key ('' sorts before every key): an index range scan.
    scan: `SELECT key FROM ${t.table} WHERE key > $1::text AND ${live} ORDER BY key LIMIT $3`,
    // The lock is taken (or not) once, before the scan; it is released when this statement's
    // transaction ends. SKIP LOCKED: rows that a writer holds are left for the next batch.
    // Victims are deleted by ctid (stable while we hold their row locks): a TID scan, where a
    // join on key let the planner hash the whole table for every batch. Watermarks past their
    // time go in the same statement (up to `limit` too) and are not counted: they are not sessions.
    sweep: `WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($3::bigint) AS held),
            victims AS (
              SELECT ctid FROM ${t.table} WHERE (SELECT held FROM lock) AND expires_at <= $1::bigint
              ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
            ),
            removed AS (DELETE FROM ${t.table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM victims)) RETURNING 1),
            dead_watermarks AS (
              SELECT ctid FROM ${t.watermarks} WHERE (SELECT held FROM lock) AND until <= $1::bigint
              ORDER BY until LIMIT $2 FOR UPDATE SKIP LOCKED
            ),
            removed_watermarks AS (DELETE FROM ${t.watermarks} WHERE ctid = ANY (ARRAY(SELECT ctid FROM dead_watermarks)) RETURNING 1)
            SELECT (SELECT held FROM lock) AS held, (SELECT count(*) FROM removed) AS removed, (SELECT count(*) FROM removed_watermarks) AS watermarks`,

    // mergeState, in one transaction: make sure a row exists to lock (a dead one reads as
    // nothing), lock it, and write what the merge gives.
    placeholder: `INSERT INTO ${t.table} (key, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, version, tombstone)
                  VALUES ($1, 0, 0, 0, 0, 0, 0, true) ON CONFLICT (key) DO NOTHING`,
    lock: `SELECT ${STATE} FROM ${t.table} WHERE key = $1 FOR UPDATE`,
    writeLive: `UPDATE ${t.table} SET created_at = $2, last_seen_at = $3, idle_timeout = $4, absolute_expires_at = $5, expires_at = $6,
                  user_id = $7, user_stamp = $8, version = $9, fields = $10::jsonb, tombstone = false, tombstone_stamp = ''
                WHERE key = $1`,
    writeTombstone: `UPDATE ${t.table} SET ${tombstone('$2::text', '$3::bigint')} WHERE key = $1`,
    deleteKey: `DELETE FROM ${t.table} WHERE key = $1`,

    readWatermark: `SELECT stamp, until FROM ${t.watermarks} WHERE user_id = $1 AND until > $2::bigint`,
    // FOR SHARE: a mergeWatermark of this user (FOR UPDATE) waits for this transaction, or this
    // read waits for it and sees the raised watermark.
    shareWatermark: `SELECT stamp, until FROM ${t.watermarks} WHERE user_id = $1 FOR SHARE`,
    insertWatermark: `INSERT INTO ${t.watermarks} (user_id, stamp, until) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING RETURNING 1`,
    lockWatermark: `SELECT stamp, until FROM ${t.watermarks} WHERE user_id = $1 FOR UPDATE`,
    writeWatermark: `UPDATE ${t.watermarks} SET stamp = $2, until = $3 WHERE user_id = $1`,
  };
}

export type Statements = ReturnType<typeof statements>;
