/**
 * The store kit: what a store needs besides its backend. A third-party store built on it is a
 * thin backend (read, write conditionally, delete) and gets the contract's checks, lifecycle,
 * compare-and-swap loop, record codec and replica merge from here, as the bundled stores do.
 * See docs/writing-a-store.md.
 */
export { casLoop, backoff, RETRY } from './stores/kit/cas.js';
export { checkDelta, checkForeignState, checkGrace, checkLimit, checkRecord, checkStamp, checkSweepLimit, invalidInput } from './stores/kit/checks.js';
export { decodeFields, encodeFields, readSession, toInteger } from './stores/kit/record-codec.js';
export type { RecordRow } from './stores/kit/record-codec.js';
export { mergeForeign, mergeForeignSync } from './stores/kit/replica.js';
export type { ForeignMerge } from './stores/kit/replica.js';
export { once, StoreShell, withTimeout } from './stores/kit/shell.js';
export { importDriver } from './stores/kit/driver.js';
export { copyRecord, copyState, covers, mergeDelta, mergeRecords, mergeWatermarks, newer, revokedTombstone, sameState, settle, tombstoneOf, watermarkAt } from './core/record.js';
export { formatStamp, wallOf, STAMP_PATTERN } from './core/hlc.js';
export { publishCorrupt, publishConflict } from './core/telemetry.js';
