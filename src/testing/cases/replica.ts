import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { LiveState, SessionStore } from '../../core/types.js';
import { TOMBSTONE_GRACE_MS } from '../../core/types.js';
import type { SuiteContext } from '../context.js';
import { wallOf } from '../../core/hlc.js';
import { stampAt, storeKey as key, fieldValue as valueOf } from '../fixtures.js';

export function replicaCases({ t, options, when, store, record, stamp, clock, advance }: SuiteContext): void {
  const replica = options.capabilities.replica;
  const reason = 'needs the replica capability';
  const user = () => `u-${randomBytes(6).toString('hex')}`;
  const powers = (): Required<Pick<SessionStore, 'readState' | 'mergeState' | 'readWatermark' | 'mergeWatermark'>> => {
    const { readState, mergeState, readWatermark, mergeWatermark } = store();
    assert.ok(readState && mergeState && readWatermark && mergeWatermark, 'a replica store has all four powers');
    const on = store();
    return { readState: readState.bind(on), mergeState: mergeState.bind(on), readWatermark: readWatermark.bind(on), mergeWatermark: mergeWatermark.bind(on) };
  };
  const live = (r = record()): LiveState => ({ kind: 'live', record: r });

  t.describe('replica powers', () => {
    when(replica, reason, 'readState() shows nothing, a live record with every stamp, or a tombstone with its stamp and guard', async () => {
      const { readState } = powers();
      assert.equal(await readState(key()), null);
      const k = key();
      const r = record({ a: 1 }, { userId: 'alice' });
      await store().create(k, r);
      const state = await readState(k);
      assert.equal(state?.kind, 'live');
      if (state?.kind === 'live') {
        assert.equal(state.record.userStamp, r.userStamp);
        assert.equal(state.record.fields.a?.stamp, r.fields.a?.stamp);
        assert.equal(state.record.absoluteExpiresAt, r.absoluteExpiresAt);
      }
      const destroyedAt = stamp(1);
      await store().destroy(k, TOMBSTONE_GRACE_MS, destroyedAt);
      assert.deepEqual(await readState(k), { kind: 'tombstone', stamp: destroyedAt, until: r.absoluteExpiresAt + TOMBSTONE_GRACE_MS });
    });

    when(replica, reason, 'readState() of an expired record is nothing', async () => {
      const { readState } = powers();
      const short = options.fakeClock ? 60_000 : 1_000;
      const k = key();
      await store().create(k, record({}, { idleTimeout: short }));
      await advance(short * 1.5);
      assert.equal(await readState(k), null);
    }, 20_000);

    when(replica, reason, 'mergeState() creates a record on a free key, and merging it again changes nothing', async () => {
      const { mergeState, readState } = powers();
      const k = key();
      const r = record({ a: 1 }, { userId: 'alice' });
      r.fields.gone = { value: null, stamp: stamp() };
      assert.deepEqual(await mergeState(k, live(r)), { state: 'live', changed: true });
      const loaded = await store().load(k);
      assert.equal(valueOf(loaded, 'a'), 1);
      assert.equal(loaded?.fields.gone?.value, null, 'a deletion marker travels with its stamp');
      assert.equal(loaded?.userId, 'alice');
      assert.deepEqual(await mergeState(k, live(r)), { state: 'live', changed: false });
      assert.equal((await readState(k))?.kind, 'live');
    });

    when(replica, reason, 'mergeState() merges fields by stamp, the principal by its stamp, and keeps the latest lastSeenAt', async () => {
      const { mergeState } = powers();
      const k = key();
      const mine = record({ a: 'mine', b: 'mine' }, { userId: 'alice' });
      await store().create(k, mine);
      // Relative to mine's own stamps: on a real clock, stamps taken now may already be later.
      const t0 = wallOf(mine.userStamp);
      const theirs = record({}, { userId: 'bob', userStamp: stampAt(t0 + 10), lastSeenAt: mine.lastSeenAt + 5_000 });
      theirs.fields = { a: { value: '"theirs"', stamp: stampAt(t0 + 10) }, b: { value: '"old"', stamp: stampAt(t0 - 10) }, c: { value: '"new"', stamp: stampAt(t0 + 10) } };
      assert.deepEqual(await mergeState(k, live(theirs)), { state: 'live', changed: true });
      const merged = await store().load(k);
      assert.equal(valueOf(merged, 'a'), 'theirs');
      assert.equal(valueOf(merged, 'b'), 'mine');
      assert.equal(valueOf(merged, 'c'), 'new');
      assert.equal(merged?.userId, 'bob');
      assert.equal(merged?.lastSeenAt, mine.lastSeenAt + 5_000);
      assert.ok((merged?.version ?? 0) > mine.version, 'the local version rises');
    });

    when(replica, reason, 'destroy wins: a live state never revives a tombstone, and a tombstone ends a live record', async () => {
      const { mergeState, readState } = powers();
      const dead = key();
      await store().create(dead, record({ a: 1 }));
      await store().destroy(dead, TOMBSTONE_GRACE_MS, stamp());
      const later = record({ a: 2 }, { userStamp: stamp(1_000) });
      assert.equal((await mergeState(dead, live(later))).state, 'tombstone');
      assert.equal(await store().load(dead), null);

      const alive = key();
      const r = record({ a: 1 });
      await store().create(alive, r);
      const tombstone = { kind: 'tombstone' as const, stamp: stamp(-1_000), until: r.absoluteExpiresAt + TOMBSTONE_GRACE_MS };
      assert.deepEqual(await mergeState(alive, tombstone), { state: 'tombstone', changed: true });
      assert.equal(await store().load(alive), null);
      assert.equal((await store().apply(alive, { fields: { a: { value: '3', stamp: stamp(2_000) } } })).status, 'gone');
      assert.equal(await store().create(alive, record()), false, 'the merged tombstone holds the key');
      assert.deepEqual(await readState(alive), tombstone);
    });

    when(replica, reason, 'mergeState() refuses a malformed foreign state with a typed error', async () => {
      const { mergeState } = powers();
      await assert.rejects(mergeState(key(), { kind: 'tombstone', stamp: 'soon', until: clock() }), { code: 'ESESS_INVALID_INPUT' });
      await assert.rejects(mergeState(key(), live(record({}, { userStamp: 'x' }))), { code: 'ESESS_INVALID_INPUT' });
      await assert.rejects(mergeState(key(), { kind: 'alive' } as unknown as LiveState), { code: 'ESESS_INVALID_INPUT' });
    });

    when(replica, reason, 'a revoke watermark kills the sessions of the user created before it, now and whenever they arrive, and spares later ones', async () => {
      const { mergeState, mergeWatermark, readWatermark } = powers();
      const u = user();
      const t0 = clock();
      const before = key();
      await store().create(before, record({}, { userId: u, createdAt: t0 - 10 }));
      // At t0 exactly: a store call may take longer than the margins below.
      const watermark = stampAt(t0);
      const killed = await mergeWatermark(u, watermark);
      assert.equal(killed, options.capabilities.userIndex ? 1 : 0);
      if (options.capabilities.userIndex) assert.equal(await store().load(before), null);
      assert.equal((await readWatermark(u))?.stamp, watermark);
      assert.equal(await mergeWatermark(u, stampAt(t0 - 100)), 0, 'an older watermark changes nothing');
      assert.equal((await readWatermark(u))?.stamp, watermark, 'a watermark never goes down');

      const lateArrival = key();
      assert.deepEqual(await mergeState(lateArrival, live(record({ a: 1 }, { userId: u, createdAt: t0 - 5, userStamp: stampAt(t0 + 100) }))), { state: 'tombstone', changed: true });
      assert.equal(await store().load(lateArrival), null);

      const after = key();
      assert.equal((await mergeState(after, live(record({ a: 1 }, { userId: u, createdAt: t0 + 10 })))).state, 'live');
      assert.ok(await store().load(after), 'a session created after the revoke lives');
    });

    when(replica && options.capabilities.userIndex, 'needs the replica and userIndex capabilities', 'destroyByUser() with a stamp also raises the watermark', async () => {
      const { mergeState, readWatermark } = powers();
      const u = user();
      await store().create(key(), record({}, { userId: u }));
      const t0 = clock();
      const at = stampAt(t0 + 1);
      assert.equal(await store().destroyByUser(u, TOMBSTONE_GRACE_MS, at), 1);
      assert.equal((await readWatermark(u))?.stamp, at);
      assert.equal((await mergeState(key(), live(record({}, { userId: u, createdAt: t0 - 10 })))).state, 'tombstone');
    });
  });
}
