import { copyState, mergeRecords, sameState, settle } from '../../core/record.js';
import type { KeyState, LiveState, MergeOutcome, TombstoneState, Watermark } from '../../core/types.js';

/**
 * `mergeState` for stores that merge in the client (SQL in a locked transaction, key-value
 * stores in a compare-and-swap loop): the current state (as `readState` returns it) merged with
 * the foreign one, settled at `now` under the watermark of the merged record's user, and what the
 * store must write, its version included (the current one + 1 when changed, 1 when created).
 */
export interface ForeignMerge {
  next: KeyState;
  outcome: MergeOutcome;
}

export async function mergeForeign(
  current: KeyState,
  foreign: LiveState | TombstoneState,
  watermarkOf: (userId: string) => Promise<Watermark | null>,
  now: number,
): Promise<ForeignMerge> {
  const merged = mergeRecords(current, copyState(foreign));
  const user = userOf(merged);
  return finish(current, merged, user === null ? null : await watermarkOf(user), now);
}

/** The same for backends whose transactions are synchronous (better-sqlite3). */
export function mergeForeignSync(current: KeyState, foreign: LiveState | TombstoneState, watermarkOf: (userId: string) => Watermark | null, now: number): ForeignMerge {
  const merged = mergeRecords(current, copyState(foreign));
  const user = userOf(merged);
  return finish(current, merged, user === null ? null : watermarkOf(user), now);
}

function userOf(state: KeyState): string | null {
  return state?.kind === 'live' ? state.record.userId : null;
}

function finish(current: KeyState, merged: KeyState, watermark: Watermark | null, now: number): ForeignMerge {
  const next = settle(merged, watermark, now);
  const changed = !sameState(current, next);
  if (next?.kind === 'live') next.record.version = current?.kind === 'live' ? current.record.version + (changed ? 1 : 0) : 1;
  return { next, outcome: { state: next === null ? 'absent' : next.kind, changed } };
}
