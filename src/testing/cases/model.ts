import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { formatStamp } from '../../core/hlc.js';
import { mergeRecords, settle } from '../../core/record.js';
import type { KeyState, LiveState, SessionStore, StoredField, StoredSession, TombstoneState } from '../../core/types.js';
import { TOMBSTONE_GRACE_MS } from '../../core/types.js';
import type { SuiteContext } from '../context.js';
import { HOUR } from '../context.js';
import { storeKey } from '../fixtures.js';
import { ModelStore } from '../model.js';

/**
 * Model-based conformance: random operations from several clients drive the store and, beside
 * it, the pure model (`ModelStore` over `src/core/record.ts`); answers and every key's state must
 * be equal after every step. fast-check prints the seed and the shrunk sequence on failure.
 */

const KEYS = 3;
const USERS = 2;
const FIELD_NAMES = ['a', 'b', 'c'] as const;
const NODE = 'a1b2c3d4';
const MINUTE = 60_000;

interface FieldSpec {
  name: (typeof FIELD_NAMES)[number];
  value: number | null;
  at: number;
}
interface LiveSpec {
  kind: 'live';
  fields: FieldSpec[];
  user: number | null;
  userAt: number;
  created: number;
  seen: number;
  idle: number;
  absolute: number;
}
interface TombSpec {
  kind: 'tombstone';
  at: number;
  until: number;
}
type Op =
  | { op: 'create'; key: number; client: number; record: LiveSpec }
  | { op: 'apply'; key: number; client: number; fields: FieldSpec[]; seen: number | null; user: { id: number | null; at: number } | null }
  | { op: 'destroy'; key: number; client: number; at: number }
  | { op: 'merge'; key: number; client: number; state: LiveSpec | TombSpec }
  | { op: 'watermark'; user: number; client: number; at: number }
  | { op: 'revokeAll'; user: number; client: number; at: number }
  | { op: 'advance'; ms: number };

const at = fc.integer({ min: 0, max: 60 });
const fieldSpec: fc.Arbitrary<FieldSpec> = fc.record({ name: fc.constantFrom(...FIELD_NAMES), value: fc.option(fc.integer({ min: -5, max: 5 }), { nil: null }), at });
const fieldSpecs = fc.uniqueArray(fieldSpec, { maxLength: 3, selector: (field) => field.name });
const liveSpec: fc.Arbitrary<LiveSpec> = fc.record({
  kind: fc.constant('live' as const),
  fields: fieldSpecs,
  user: fc.option(fc.nat(USERS - 1), { nil: null }),
  userAt: at,
  created: at,
  seen: fc.integer({ min: 0, max: 5 * MINUTE }),
  idle: fc.constantFrom(10 * MINUTE, HOUR),
  absolute: fc.constantFrom(30 * MINUTE, 2 * HOUR),
});
const tombSpec: fc.Arbitrary<TombSpec> = fc.record({ kind: fc.constant('tombstone' as const), at, until: fc.constantFrom(HOUR, 3 * HOUR) });
const key = fc.nat(KEYS - 1);
const client = fc.nat(3);

function operations(userIndex: boolean, fakeClock: boolean): fc.Arbitrary<Op[]> {
  const ops: fc.Arbitrary<Op>[] = [
    fc.record({ op: fc.constant('create' as const), key, client, record: liveSpec }),
    fc.record({
      op: fc.constant('apply' as const),
      key,
      client,
      fields: fieldSpecs,
      seen: fc.option(fc.integer({ min: 0, max: 10 * MINUTE }), { nil: null }),
      user: fc.option(fc.record({ id: fc.option(fc.nat(USERS - 1), { nil: null }), at }), { nil: null }),
    }),
    fc.record({ op: fc.constant('destroy' as const), key, client, at }),
    fc.record({ op: fc.constant('merge' as const), key, client, state: fc.oneof({ weight: 4, arbitrary: liveSpec }, { weight: 1, arbitrary: tombSpec }) }),
    fc.record({ op: fc.constant('watermark' as const), user: fc.nat(USERS - 1), client, at }),
  ];
  if (userIndex) ops.push(fc.record({ op: fc.constant('revokeAll' as const), user: fc.nat(USERS - 1), client, at }));
  if (fakeClock) ops.push(fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(MINUTE, 15 * MINUTE, 3 * HOUR) }));
  return fc.array(fc.oneof(...ops), { minLength: 1, maxLength: 25 });
}

/** One run's concrete values: fresh keys and users, and stamps that never tie (a sequence number in the counter part). */
class Run {
  readonly keys = Array.from({ length: KEYS }, () => storeKey());
  readonly users = Array.from({ length: USERS }, (_, i) => `model-${randomBytes(4).toString('hex')}-${i}`);
  readonly base: number;
  #sequence = 0;

  constructor(base: number) {
    this.base = base;
  }

  stamp(offset: number): string {
    this.#sequence += 1;
    return formatStamp(this.base + offset, this.#sequence, NODE);
  }

  /**
   * The creation-time fields of a key are fixed at its creation, as they are for real replicas:
   * the first spec seen for a key decides them (the pure merge of disagreeing ones is proven in
   * test/record.test.ts; a store may treat such a record as corrupt).
   */
  #creation = new Map<string, Pick<LiveSpec, 'created' | 'idle' | 'absolute'>>();

  fields(specs: FieldSpec[]): Record<string, StoredField> {
    const fields = Object.create(null) as Record<string, StoredField>;
    for (const spec of specs) fields[spec.name] = { value: spec.value === null ? null : JSON.stringify(spec.value), stamp: this.stamp(spec.at) };
    return fields;
  }

  record(key: string, spec: LiveSpec): StoredSession {
    const creation = this.#creation.get(key) ?? spec;
    this.#creation.set(key, creation);
    return {
      createdAt: this.base + creation.created,
      lastSeenAt: this.base + creation.created + spec.seen,
      idleTimeout: creation.idle,
      absoluteExpiresAt: this.base + creation.absolute,
      userId: spec.user === null ? null : (this.users[spec.user] as string),
      userStamp: this.stamp(spec.userAt),
      version: 1,
      fields: this.fields(spec.fields),
    };
  }

  state(key: string, spec: LiveSpec | TombSpec): LiveState | TombstoneState {
    return spec.kind === 'live' ? { kind: 'live', record: this.record(key, spec) } : { kind: 'tombstone', stamp: this.stamp(spec.at), until: this.base + spec.until };
  }
}

/** A state as plain, ordered data, so a difference reads well in the assertion message. */
function plain(state: KeyState): unknown {
  if (state === null || state.kind === 'tombstone') return state;
  const { version: _version, fields, ...meta } = state.record;
  return { kind: 'live', ...meta, fields: Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : 1))) };
}

export function modelCases({ t, options, when, store, connect, clock, advance }: SuiteContext): void {
  const reason = 'needs the replica capability';
  const runs = options.modelRuns ?? 25;
  const { userIndex } = options.capabilities;

  const clients = async (): Promise<SessionStore[]> => (options.multiClient ? [store(), await connect(), await connect()] : [store()]);

  t.describe('model-based: the store equals the pure record model', () => {
    when(
      options.capabilities.replica,
      reason,
      'random operations from several clients leave every answer and every key as the model has them, after every step',
      async () => {
        const on = await clients();
        await fc.assert(
          fc.asyncProperty(operations(userIndex, options.fakeClock), async (ops) => {
            const run = new Run(clock());
            const model = new ModelStore(clock, { userIndex });
            for (const [step, op] of ops.entries()) {
              const label = `step ${step + 1} (${op.op})`;
              if (op.op === 'advance') {
                await advance(op.ms);
              } else {
                const target = on[op.client % on.length] as SessionStore;
                await perform(target, model, run, op, label);
              }
              for (const [index, k] of run.keys.entries()) {
                assert.deepEqual(plain(await store().readState?.(k) ?? null), plain(model.readState(k)), `${label}: key ${index} differs from the model`);
              }
              for (const [index, user] of run.users.entries()) {
                assert.deepEqual(await store().readWatermark?.(user), model.readWatermark(user), `${label}: the watermark of user ${index} differs from the model`);
              }
            }
          }),
          { numRuns: runs },
        );
      },
      240_000,
    );

    when(
      options.capabilities.replica,
      reason,
      'merges arriving in shuffled and duplicated order, concurrently from several clients, end as the pure merge of them all',
      async () => {
        const on = await clients();
        const states = fc.array(fc.oneof({ weight: 6, arbitrary: liveSpec }, { weight: 1, arbitrary: tombSpec }), { minLength: 1, maxLength: 6 });
        await fc.assert(
          fc.asyncProperty(fc.option(liveSpec, { nil: null }), states, fc.array(fc.nat(), { maxLength: 6 }), fc.array(fc.double({ noNaN: true })), async (initial, specs, extra, shuffle) => {
            const run = new Run(clock());
            const k = run.keys[0] as string;
            let expected: KeyState = null;
            if (initial !== null) {
              const record = run.record(k, initial);
              assert.equal(await store().create(k, record), true);
              expected = { kind: 'live', record };
            }
            const foreign = specs.map((spec) => run.state(k, spec));
            for (const state of foreign) expected = mergeRecords(expected, state);
            const order = [...foreign.keys(), ...extra.map((n) => n % foreign.length)]
              .map((index, position) => ({ index, rank: shuffle[position] ?? position }))
              .sort((a, b) => a.rank - b.rank)
              .map(({ index }) => index);
            await Promise.all(order.map((index, position) => (on[position % on.length] as SessionStore).mergeState?.(k, foreign[index] as LiveState | TombstoneState)));
            assert.deepEqual(plain(await store().readState?.(k) ?? null), plain(settle(expected, null, clock())));
          }),
          { numRuns: runs },
        );
      },
      240_000,
    );
  });
}

async function perform(target: SessionStore, model: ModelStore, run: Run, op: Exclude<Op, { op: 'advance' }>, label: string): Promise<void> {
  switch (op.op) {
    case 'create': {
      const k = run.keys[op.key] as string;
      const record = run.record(k, op.record);
      assert.equal(await target.create(k, record), model.create(k, record), `${label}: create() answered unlike the model`);
      return;
    }
    case 'apply': {
      const k = run.keys[op.key] as string;
      const delta = {
        fields: run.fields(op.fields),
        ...(op.seen === null ? {} : { lastSeenAt: run.base + op.seen }),
        ...(op.user === null ? {} : { userId: op.user.id === null ? null : (run.users[op.user.id] as string), userStamp: run.stamp(op.user.at) }),
      };
      assert.equal((await target.apply(k, delta)).status, model.apply(k, delta), `${label}: apply() answered unlike the model`);
      return;
    }
    case 'destroy': {
      const k = run.keys[op.key] as string;
      const stamp = run.stamp(op.at);
      assert.equal(await target.destroy(k, TOMBSTONE_GRACE_MS, stamp), model.destroy(k, TOMBSTONE_GRACE_MS, stamp), `${label}: destroy() answered unlike the model`);
      return;
    }
    case 'merge': {
      const k = run.keys[op.key] as string;
      const state = run.state(k, op.state);
      assert.deepEqual(await target.mergeState?.(k, state), model.mergeState(k, state), `${label}: mergeState() answered unlike the model`);
      return;
    }
    case 'watermark': {
      const user = run.users[op.user] as string;
      const stamp = run.stamp(op.at);
      assert.equal(await target.mergeWatermark?.(user, stamp), model.mergeWatermark(user, stamp), `${label}: mergeWatermark() answered unlike the model`);
      return;
    }
    case 'revokeAll': {
      const user = run.users[op.user] as string;
      const stamp = run.stamp(op.at);
      assert.equal(await target.destroyByUser(user, TOMBSTONE_GRACE_MS, stamp), model.destroyByUser(user, TOMBSTONE_GRACE_MS, stamp), `${label}: destroyByUser() answered unlike the model`);
      return;
    }
  }
}
