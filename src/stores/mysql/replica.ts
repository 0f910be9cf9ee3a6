import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { covers, mergeWatermarks, revokedTombstone, watermarkAt } from '../../core/record.js';
import type { LiveState, TombstoneState, Watermark } from '../../core/types.js';
import { expiresAt } from '../../core/types.js';
import { encodeFields } from '../kit/record-codec.js';
import { mergeForeign } from '../kit/replica.js';
import type { ForeignMerge } from '../kit/replica.js';
import { META_COLUMNS, sessionOf, STATE_COLUMNS, stateOf, watermarkOf } from './rows.js';

/**
 * The replica powers' transaction bodies (each runs inside `MysqlStore`'s transaction): the
 * rows are locked, the core's rules decide, and only the result is written.
 */

/** Quoted table names. */
export interface Tables {
  sessions: string;
  watermarks: string;
}

export const LIVE = 'tombstone = 0 AND expires_at > ?';
/** A tombstone keeps its stamp, and `expires_at` is the until it guards (parameters: stamp, until). */
export const TOMBSTONE = "tombstone = 1, tombstone_stamp = ?, expires_at = ?, fields = '{}', user_id = NULL, user_stamp = '', version = version + 1";

/**
 * mergeState: a dead placeholder row is inserted if the key has none, so there is always a row
 * to lock (`ON DUPLICATE KEY UPDATE` that changes nothing rather than `INSERT IGNORE`, which
 * would also turn a key too long for the column into a truncated one); the row is locked and
 * merged; the watermark of the merged record's user is read LOCK IN SHARE MODE. `unguarded`:
 * the user had no watermark row, so nothing was locked (see `MysqlStore.mergeState`).
 */
export async function mergeLocked(
  conn: PoolConnection,
  t: Tables,
  key: string,
  foreign: LiveState | TombstoneState,
  now: number,
): Promise<ForeignMerge & { unguarded: boolean }> {
  await conn.query(
    `INSERT INTO ${t.sessions} (\`key\`, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, version, tombstone, fields)
     VALUES (?, 0, 0, 0, 0, 0, 0, 1, '{}') ON DUPLICATE KEY UPDATE \`key\` = \`key\``,
    [key],
  );
  const [rows] = await conn.query<RowDataPacket[]>(`SELECT ${STATE_COLUMNS} FROM ${t.sessions} WHERE \`key\` = ? FOR UPDATE`, [key]);
  const current = stateOf(rows[0], now);
  let unguarded = false;
  const merged = await mergeForeign(
    current,
    foreign,
    async (user) => {
      const [found] = await conn.query<RowDataPacket[]>(`SELECT stamp, \`until\` FROM ${t.watermarks} WHERE user_id = ? LOCK IN SHARE MODE`, [user]);
      unguarded = found[0] === undefined;
      return watermarkOf(found[0], now);
    },
    now,
  );
  const { next, outcome } = merged;
  if (next === null) {
    await conn.query(`DELETE FROM ${t.sessions} WHERE \`key\` = ?`, [key]);
  } else if (!outcome.changed) {
    // Nothing to write.
  } else if (next.kind === 'tombstone') {
    await conn.query(`UPDATE ${t.sessions} SET ${TOMBSTONE} WHERE \`key\` = ?`, [next.stamp, next.until, key]);
  } else {
    const r = next.record;
    await conn.query(
      `UPDATE ${t.sessions} SET created_at = ?, last_seen_at = ?, idle_timeout = ?, absolute_expires_at = ?, expires_at = ?, user_id = ?, user_stamp = ?, version = ?, fields = ?,
         tombstone = 0, tombstone_stamp = '' WHERE \`key\` = ?`,
      [r.createdAt, r.lastSeenAt, r.idleTimeout, r.absoluteExpiresAt, expiresAt(r), r.userId, r.userStamp, r.version, encodeFields(r.fields), key],
    );
  }
  return { ...merged, unguarded };
}

/**
 * mergeWatermarks(stored, watermarkAt(stamp)) with the watermark row locked. The insert creates
 * the row or locks the one there (a no-op update), so the read sees it and a sweep cannot delete
 * it meanwhile. Which of the two happened is not told apart by the affected-rows count (mysql2
 * sets CLIENT_FOUND_ROWS); it need not be: a row just inserted reads back as the raised one.
 */
export async function raiseWatermark(conn: PoolConnection, t: Tables, userId: string, stamp: string, now: number): Promise<Watermark> {
  const raised = watermarkAt(stamp);
  await conn.query(`INSERT INTO ${t.watermarks} (user_id, stamp, \`until\`) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE user_id = user_id`, [userId, raised.stamp, raised.until]);
  const [rows] = await conn.query<RowDataPacket[]>(`SELECT stamp, \`until\` FROM ${t.watermarks} WHERE user_id = ? FOR UPDATE`, [userId]);
  const stored = watermarkOf(rows[0], now);
  const next = mergeWatermarks(stored, raised) ?? raised;
  if (stored === null || next.stamp !== stored.stamp || next.until !== stored.until) {
    await conn.query(`UPDATE ${t.watermarks} SET stamp = ?, \`until\` = ? WHERE user_id = ?`, [next.stamp, next.until, userId]);
  }
  return next;
}

/**
 * The live sessions of the user (or only `key`) that the watermark covers become their revoked
 * tombstones: the rows are locked and read without their fields, the core's `covers` decides.
 * Returns how many.
 */
export async function revokeCovered(conn: PoolConnection, t: Tables, userId: string, watermark: Watermark, now: number, key?: string): Promise<number> {
  const [rows] = await conn.query<RowDataPacket[]>(
    `SELECT \`key\`, ${META_COLUMNS} FROM ${t.sessions} WHERE user_id = ? AND ${LIVE}${key === undefined ? '' : ' AND `key` = ?'} FOR UPDATE`,
    key === undefined ? [userId, now] : [userId, now, key],
  );
  let count = 0;
  for (const row of rows) {
    const record = sessionOf(row);
    if (record === null || typeof row.key !== 'string' || !covers(watermark, record)) continue;
    const tombstone = revokedTombstone(record);
    await conn.query(`UPDATE ${t.sessions} SET ${TOMBSTONE} WHERE \`key\` = ?`, [tombstone.stamp, tombstone.until, row.key]);
    count++;
  }
  return count;
}
