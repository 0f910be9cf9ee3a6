import type { KeyState, StoredSession, Watermark } from '../../core/types.js';
import type { RecordRow } from '../kit/record-codec.js';
import { sessionOfRow, stateOfRow, watermarkOfRow } from '../kit/sql-rows.js';
import { STORE } from './errors.js';

export type Row = RecordRow;

/** The columns `readSession` reads, and (for a key's whole state) the tombstone's. */
export const SESSION_COLUMNS = 'created_at, last_seen_at, idle_timeout, absolute_expires_at, user_id, user_stamp, version, CAST(fields AS CHAR) AS fields';
export const STATE_COLUMNS = `${SESSION_COLUMNS}, tombstone, tombstone_stamp, expires_at`;
/** A record without its fields, for decisions that need only its metadata. */
export const META_COLUMNS = "created_at, last_seen_at, idle_timeout, absolute_expires_at, user_id, user_stamp, version, '{}' AS fields";

export const stateOf = (row: Row | undefined, now: number): KeyState => stateOfRow(STORE, row, now);
export const sessionOf = (row: Row): StoredSession | null => sessionOfRow(STORE, row);
export const watermarkOf = (row: Row | undefined, now: number): Watermark | null => watermarkOfRow(row, now);
