import { copyRecord, copyState, covers, mergeDelta, mergeWatermarks, revokedTombstone, settle, tombstoneOf, watermarkAt } from '../core/record.js';
import { mergeForeignSync } from '../stores/kit/replica.js';
import type { ApplyResult, Clock, KeyState, LiveState, MergeOutcome, SessionDelta, StoredSession, TombstoneState, Watermark } from '../core/types.js';

/**
 * The store contract as a pure model: one map of key states and one of watermarks, changed only
 * through the functions of `src/core/record.ts`. The model-based conformance cases drive a real
 * store and this model with the same operations and require the same answers and states.
 */
export class ModelStore {
  readonly #keys = new Map<string, KeyState>();
  readonly #watermarks = new Map<string, Watermark>();
  readonly #clock: Clock;
  readonly #userIndex: boolean;

  constructor(clock: Clock, options: { userIndex: boolean }) {
    this.#clock = clock;
    this.#userIndex = options.userIndex;
  }

  readState(key: string): KeyState {
    const state = settle(this.#keys.get(key) ?? null, null, this.#clock());
    return copyState(state);
  }

  readWatermark(userId: string): Watermark | null {
    const watermark = this.#watermarks.get(userId) ?? null;
    return watermark !== null && watermark.until > this.#clock() ? { ...watermark } : null;
  }

  create(key: string, record: StoredSession): boolean {
    if (this.readState(key) !== null) return false;
    this.#keys.set(key, { kind: 'live', record: copyRecord(record) });
    return true;
  }

  apply(key: string, delta: SessionDelta): ApplyResult['status'] {
    const state = this.readState(key);
    if (state?.kind !== 'live') return 'gone';
    mergeDelta(state.record, delta);
    this.#keys.set(key, state);
    return 'ok';
  }

  destroy(key: string, graceMs: number, stamp: string): boolean {
    const state = this.readState(key);
    if (state?.kind !== 'live') return false;
    this.#keys.set(key, tombstoneOf(state.record, stamp, graceMs));
    return true;
  }

  destroyByUser(userId: string, graceMs: number, stamp: string): number {
    this.#raise(userId, stamp);
    return this.#killWhere(userId, () => true, (record) => tombstoneOf(record, stamp, graceMs));
  }

  mergeState(key: string, foreign: LiveState | TombstoneState): MergeOutcome {
    const { next, outcome } = mergeForeignSync(this.readState(key), foreign, (user) => this.readWatermark(user), this.#clock());
    if (outcome.changed) this.#keys.set(key, next);
    return outcome;
  }

  mergeWatermark(userId: string, stamp: string): number {
    const watermark = this.#raise(userId, stamp);
    if (!this.#userIndex) return 0;
    return this.#killWhere(userId, (record) => covers(watermark, record), revokedTombstone);
  }

  #raise(userId: string, stamp: string): Watermark {
    const watermark = mergeWatermarks(this.readWatermark(userId), watermarkAt(stamp)) as Watermark;
    this.#watermarks.set(userId, watermark);
    return watermark;
  }

  #killWhere(userId: string, kills: (record: StoredSession) => boolean, tombstone: (record: StoredSession) => TombstoneState): number {
    let count = 0;
    for (const key of this.#keys.keys()) {
      const state = this.readState(key);
      if (state?.kind === 'live' && state.record.userId === userId && kills(state.record)) {
        this.#keys.set(key, tombstone(state.record));
        count++;
      }
    }
    return count;
  }
}
