import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatStamp, wallOf } from '../src/core/hlc.js';
import { covers, mergeDelta, mergeRecords, mergeWatermarks, settle, watermarkAt } from '../src/core/record.js';
import type { KeyState, LiveState, StoredField, StoredSession, TombstoneState } from '../src/core/types.js';
import { ModelStore } from '../src/testing/model.js';

const BASE = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;

// Small pools, so that states overlap: equal stamps with different values, the same field written twice.
const stamp = fc.tuple(fc.integer({ min: 0, max: 6 }), fc.constantFrom('00000001', '00000002')).map(([wall, node]) => formatStamp(BASE + wall, 0, node));
const value = fc.option(fc.constantFrom('1', '2', '"x"'), { nil: null });
const fields = fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.record({ value, stamp }), { maxKeys: 3 }).map((entries) => {
  const out = Object.create(null) as Record<string, StoredField>;
  for (const [name, field] of Object.entries(entries)) out[name] = field;
  return out;
});
const record = (users: fc.Arbitrary<string | null>): fc.Arbitrary<StoredSession> =>
  fc.record({
    createdAt: fc.integer({ min: BASE, max: BASE + 6 }),
    lastSeenAt: fc.integer({ min: BASE, max: BASE + 10 }),
    idleTimeout: fc.constantFrom(HOUR, 2 * HOUR),
    absoluteExpiresAt: fc.constantFrom(BASE + 3 * HOUR, BASE + 4 * HOUR),
    userId: users,
    userStamp: stamp,
    version: fc.integer({ min: 1, max: 5 }),
    fields,
  });
const live = (users: fc.Arbitrary<string | null> = fc.constantFrom(null, 'alice', 'bob')): fc.Arbitrary<LiveState> => record(users).map((r) => ({ kind: 'live' as const, record: r }));
const tombstone: fc.Arbitrary<TombstoneState> = fc.record({ kind: fc.constant('tombstone' as const), stamp, until: fc.constantFrom(BASE + 3 * HOUR, BASE + 5 * HOUR) });
const state: fc.Arbitrary<KeyState> = fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 5, arbitrary: live() }, { weight: 2, arbitrary: tombstone });

/** States as plain data with sorted fields: deep equality then means the same state, version included. */
const plain = (s: KeyState): unknown =>
  s?.kind === 'live'
    ? { ...s, record: { ...s.record, fields: Object.fromEntries(Object.entries(s.record.fields).sort(([x], [y]) => (x < y ? -1 : 1)).map(([name, f]) => [name, { value: f.value, stamp: f.stamp }])) } }
    : s;

describe('mergeRecords', () => {
  it('is commutative', () => {
    fc.assert(fc.property(state, state, (a, b) => {
      expect(plain(mergeRecords(a, b))).toEqual(plain(mergeRecords(b, a)));
    }));
  });

  it('is associative', () => {
    fc.assert(fc.property(state, state, state, (a, b, c) => {
      expect(plain(mergeRecords(mergeRecords(a, b), c))).toEqual(plain(mergeRecords(a, mergeRecords(b, c))));
    }));
  });

  it('is idempotent', () => {
    fc.assert(fc.property(state, (a) => {
      expect(plain(mergeRecords(a, a))).toEqual(plain(a));
    }));
  });

  it('never mutates its arguments', () => {
    fc.assert(
      fc.property(state, state, (a, b) => {
        const before = JSON.stringify([plain(a), plain(b)]);
        mergeRecords(a, b);
        expect(JSON.stringify([plain(a), plain(b)])).toBe(before);
      }),
    );
  });

  it('destroy wins: a tombstone merged with anything is a tombstone, whatever the stamps', () => {
    fc.assert(fc.property(tombstone, state, (t, other) => {
      expect(mergeRecords(t, other)?.kind).toBe('tombstone');
    }));
  });

  it('keeps the latest lastSeenAt and the newest write of every field and of the principal', () => {
    fc.assert(
      fc.property(live(), live(), (a, b) => {
        const merged = mergeRecords(a, b) as LiveState;
        expect(merged.record.lastSeenAt).toBe(Math.max(a.record.lastSeenAt, b.record.lastSeenAt));
        for (const name of new Set([...Object.keys(a.record.fields), ...Object.keys(b.record.fields)])) {
          const stamps = [a.record.fields[name]?.stamp, b.record.fields[name]?.stamp].filter((s): s is string => s !== undefined);
          expect(merged.record.fields[name]?.stamp).toBe(stamps.sort().at(-1));
        }
        expect(merged.record.userStamp).toBe([a.record.userStamp, b.record.userStamp].sort().at(-1));
      }),
    );
  });

  it('any order and any repetition of the same states converges to one state', () => {
    fc.assert(
      fc.property(fc.array(state, { minLength: 1, maxLength: 6 }), fc.array(fc.nat()), (states, picks) => {
        const shuffled = [...states, ...picks.map((n) => states[n % states.length] as KeyState)].reverse();
        const fold = (list: KeyState[]) => list.reduce<KeyState>((acc, s) => mergeRecords(acc, s), null);
        expect(plain(fold(shuffled))).toEqual(plain(fold(states)));
      }),
    );
  });
});

describe('revoke watermarks and settle', () => {
  it('mergeWatermarks is a join (commutative, associative, idempotent) that never goes down', () => {
    const watermark = fc.option(stamp.map(watermarkAt), { nil: null });
    fc.assert(
      fc.property(watermark, watermark, watermark, (a, b, c) => {
        expect(mergeWatermarks(a, b)).toEqual(mergeWatermarks(b, a));
        expect(mergeWatermarks(mergeWatermarks(a, b), c)).toEqual(mergeWatermarks(a, mergeWatermarks(b, c)));
        expect(mergeWatermarks(a, a)).toEqual(a);
        if (a && b) expect(mergeWatermarks(a, b)?.stamp).toBe([a.stamp, b.stamp].sort().at(-1));
      }),
    );
  });

  it('covers a session of the user created at or before the watermark, never one created after or of nobody', () => {
    const watermark = watermarkAt(formatStamp(BASE + 3, 0, '00000001'));
    const at = (created: number, userId: string | null) => ({ userId, createdAt: BASE + created, userStamp: formatStamp(BASE + 9, 0, '00000001') }) as StoredSession;
    expect(covers(watermark, at(2, 'alice'))).toBe(true);
    expect(covers(watermark, at(3, 'alice')), 'the same millisecond: the safe side').toBe(true);
    expect(covers(watermark, at(4, 'alice'))).toBe(false);
    expect(covers(watermark, at(2, null))).toBe(false);
    expect(covers(null, at(2, 'alice'))).toBe(false);
  });

  it('settle() turns a covered record into an unstamped tombstone guarding its absolute expiry, and a dead state into nothing', () => {
    fc.assert(
      fc.property(live(fc.constant('alice')), stamp, (s, at) => {
        const watermark = watermarkAt(at);
        const settled = settle(s, watermark, BASE);
        if (s.record.createdAt <= wallOf(at)) expect(settled).toEqual({ kind: 'tombstone', stamp: '', until: s.record.absoluteExpiresAt + 5 * 60_000 });
        else expect(settled).toBe(s);
        expect(settle(s, null, BASE + 10 * HOUR)).toBeNull();
      }),
    );
    expect(settle({ kind: 'tombstone', stamp: '', until: BASE }, null, BASE)).toBeNull();
  });

  it('replicas that receive the same states and revoke-alls in any order converge, for sessions that never leave their user', () => {
    // A session's principal moves from nobody to one user (login); a revoke-all of that user must
    // end it on every replica, whatever arrived first. (A principal moved from the user to another
    // or to none, concurrently with a revoke-all, is the documented exception: see `covers`.)
    type Message = { key: number; state: LiveState | TombstoneState } | { user: 'alice'; stamp: string };
    const message: fc.Arbitrary<Message> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ key: fc.nat(1), state: fc.oneof({ weight: 5, arbitrary: live(fc.constantFrom(null, 'alice')).map(anonymousFirst) }, { weight: 1, arbitrary: tombstone }) }) },
      { weight: 1, arbitrary: fc.record({ user: fc.constant('alice' as const), stamp }) },
    );
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 8 }), fc.array(fc.double({ noNaN: true }), { minLength: 8, maxLength: 8 }), (messages, ranks) => {
        const deliver = (order: Message[]) => {
          const replica = new ModelStore(() => BASE, { userIndex: true });
          for (const m of order) {
            if ('user' in m) replica.mergeWatermark(m.user, m.stamp);
            else replica.mergeState(`k${m.key}`, m.state);
          }
          return [replica.readState('k0'), replica.readState('k1')].map(plainIgnoringVersion);
        };
        const reordered = messages.map((m, i) => ({ m, rank: ranks[i] ?? i })).sort((a, b) => a.rank - b.rank).map(({ m }) => m);
        expect(deliver(reordered)).toEqual(deliver(messages));
      }),
      { numRuns: 500 },
    );
  });
});

describe('mergeDelta', () => {
  it('changes the principal only for a newer principal stamp', () => {
    const r: StoredSession = { createdAt: BASE, lastSeenAt: BASE, idleTimeout: HOUR, absoluteExpiresAt: BASE + HOUR, userId: 'alice', userStamp: formatStamp(BASE + 5, 0, '00000001'), version: 1, fields: {} };
    mergeDelta(r, { fields: {}, userId: 'mallory', userStamp: formatStamp(BASE + 4, 0, '00000001') });
    expect(r.userId).toBe('alice');
    mergeDelta(r, { fields: {}, userId: null, userStamp: formatStamp(BASE + 6, 0, '00000001') });
    expect(r.userId).toBeNull();
    expect(r.version).toBe(3);
  });
});

/** Before login a session is nobody's: its principal stamp orders before any login's, so it never returns to nobody. */
function anonymousFirst(s: LiveState): LiveState {
  return s.record.userId === null ? { ...s, record: { ...s.record, userStamp: formatStamp(BASE, 0, '00000000') } } : s;
}

function plainIgnoringVersion(s: KeyState): unknown {
  return s?.kind === 'live' ? plain({ ...s, record: { ...s.record, version: 0 } }) : s;
}
