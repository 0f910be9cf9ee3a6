import type { KeyState, StoredSession, Watermark } from '../../core/types.js';
import type { RecordRow } from '../kit/record-codec.js';
import { sessionOfRow, stateOfRow, watermarkOfRow } from '../kit/sql-rows.js';
import { STORE } from './errors.js';

export type Row = RecordRow;

export const stateOf = (row: Row | undefined, now: number): KeyState => stateOfRow(STORE, row, now);
export const sessionOf = (row: Row): StoredSession | null => sessionOfRow(STORE, row);
export const watermarkOf = (row: Row | undefined, now: number): Watermark | null => watermarkOfRow(row, now);
