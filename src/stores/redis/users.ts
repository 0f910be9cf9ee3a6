import { wallOf } from '../../core/hlc.js';
import { watermarkAt } from '../../core/record.js';
import { publishCorrupt } from '../../core/telemetry.js';
import type { StoredSummary, Watermark } from '../../core/types.js';
import { TOMBSTONE_GRACE_MS } from '../../core/types.js';
import { META, num, operationId, summary } from './codec.js';
import type { RedisContext } from './context.js';
import { writeScript } from './log.js';
import { PROVISIONAL_MS, SCRIPTS } from './scripts.js';
import { isWrongType } from './transport.js';

/**
 * A user's sessions and revoke watermark. Standalone and Sentinel: one script each, exact.
 * Cluster: the user's index and watermark share a slot, the sessions are spread over others,
 * so a script on the user's slot, then one per session in parallel (see docs/redis.md).
 */

export async function listByUser(ctx: RedisContext, userId: string): Promise<StoredSummary[]> {
  const index = ctx.keys.index(userId);
  if (!ctx.cluster) {
    const flat = (await ctx.transport.read(SCRIPTS.userSessions, index, [ctx.keys.prefix, userId, 'list', '0', '', '', '', ''])) as string[];
    const summaries: StoredSummary[] = [];
    for (let i = 0; i + 4 < flat.length; i += 5) summaries.push(summary(flat[i] as string, flat[i + 1], flat[i + 2], flat[i + 3], flat[i + 4]));
    return summaries;
  }
  const [, ...members] = (await ctx.transport.read(SCRIPTS.indexMembers, index, [])) as string[];
  const metas = await Promise.all(members.map((member) => meta(ctx, member)));
  const summaries: StoredSummary[] = [];
  const prune: string[] = [];
  members.forEach((member, i) => {
    const found = metas[i];
    // Tombstoned and unreadable records never come back. An absent record may be one whose
    // create is still in flight, and a record of another user may move back: those stay
    // until their absolute expiry prunes them.
    if (found === 'corrupt' || found?.[6] != null) prune.push(member);
    else if (found?.[0] != null && found[5] === userId) summaries.push(summary(member, found[1], found[2], found[3], found[4]));
  });
  if (prune.length > 0) await ctx.client.zrem(index, ...prune);
  return summaries;
}

/**
 * Destroys every live session of the user; with `stamp`, first raises the user's watermark to
 * it, and the tombstones carry it.
 */
export async function destroyByUser(ctx: RedisContext, userId: string, graceMs: number, stamp: string | undefined): Promise<number> {
  const grace = num(graceMs, 'tombstoneGraceMs');
  const raise = stamp === undefined ? ['', ''] : [stamp, String(watermarkAt(stamp).until)];
  if (!ctx.cluster) {
    const args = [ctx.keys.prefix, userId, 'destroy', grace, operationId(), stamp ?? '', ...raise];
    return Number(await writeScript(ctx, SCRIPTS.userSessions, ctx.keys.index(userId), args, (r) => stamp !== undefined || Number(r) > 0));
  }
  const members = await clusterMembers(ctx, userId, raise);
  return fanOut(ctx, userId, members, (member) => ['', member, grace, '1', userId, operationId(), stamp ?? '', '']);
}

/**
 * Raises the user's watermark to `stamp` and destroys the user's live sessions it covers
 * (created at or before its wall time), each leaving its `revokedTombstone` (unstamped).
 */
export async function mergeWatermark(ctx: RedisContext, userId: string, stamp: string): Promise<number> {
  const raise = [stamp, String(watermarkAt(stamp).until)];
  const grace = String(TOMBSTONE_GRACE_MS);
  if (!ctx.cluster) {
    const args = [ctx.keys.prefix, userId, 'cover', grace, operationId(), '', ...raise];
    return Number(await writeScript(ctx, SCRIPTS.userSessions, ctx.keys.index(userId), args, () => true));
  }
  const [watermark, ...members] = await clusterMembersWithStamp(ctx, userId, raise);
  const wall = String(wallOf(watermark as string));
  return fanOut(ctx, userId, members, (member) => ['', member, grace, '1', userId, operationId(), '', wall]);
}

export async function readWatermark(ctx: RedisContext, userId: string): Promise<Watermark | null> {
  const [stamp, until] = await ctx.client.hmget(ctx.keys.watermark(userId), 's', 'u');
  if (stamp == null) return null;
  const watermark = { stamp, until: Number(until) };
  if (!Number.isSafeInteger(watermark.until)) {
    publishCorrupt(ctx.name);
    return null;
  }
  return watermark;
}

/**
 * Cluster: the user's watermark, read in the slot of the user's index while the index entry of
 * `member` is ensured (with a provisional score, before the record can be live under the user)
 * or given its exact score (after).
 */
export async function prepareUser(ctx: RedisContext, userId: string, member: string, exactScore: string | null): Promise<Watermark | null> {
  const args = exactScore === null ? ['NX', member, '', String(PROVISIONAL_MS)] : ['XX', member, exactScore, ''];
  const [stamp, until] = (await ctx.transport.write(SCRIPTS.indexSet, [ctx.keys.index(userId), ctx.keys.watermark(userId)], args, () => true)) as (string | null)[];
  // Redis expires a watermark at its `until`: one it returns still guards.
  return stamp == null || !Number.isSafeInteger(Number(until)) ? null : { stamp, until: Number(until) };
}

async function clusterMembers(ctx: RedisContext, userId: string, raise: string[]): Promise<string[]> {
  const [, ...members] = await clusterMembersWithStamp(ctx, userId, raise);
  return members;
}

/** {merged watermark stamp ("" when not raised), member, ...}: raises the watermark in the index's slot. */
async function clusterMembersWithStamp(ctx: RedisContext, userId: string, raise: string[]): Promise<string[]> {
  const keys = [ctx.keys.index(userId), ctx.keys.watermark(userId)];
  if (raise[0] === '') return (await ctx.transport.read(SCRIPTS.indexMembers, keys, [])) as string[];
  return (await ctx.transport.write(SCRIPTS.indexMembers, keys, raise, () => true)) as string[];
}

/** Cluster: the destroy script per member, in parallel; prunes what cannot come back. */
async function fanOut(ctx: RedisContext, userId: string, members: string[], args: (member: string) => string[]): Promise<number> {
  const index = ctx.keys.index(userId);
  const results = await Promise.allSettled(members.map((member) => ctx.transport.write(SCRIPTS.destroy, ctx.keys.session(member), args(member), (r) => r === 1)));
  let count = 0;
  const prune: string[] = [];
  let failure: unknown;
  results.forEach((result, i) => {
    if (result.status === 'rejected') {
      failure ??= result.reason;
      return;
    }
    if (result.value === 1) count++;
    if (result.value === -1) publishCorrupt(ctx.name);
    if (result.value === 1 || result.value === 2 || result.value === -1) prune.push(members[i] as string);
  });
  if (prune.length > 0) await ctx.client.zrem(index, ...prune);
  // "Log out everywhere" that missed a session must not look like success.
  if (failure !== undefined) throw failure;
  return count;
}

/** Session metadata by index member, or 'corrupt' when the key holds another type. */
async function meta(ctx: RedisContext, member: string): Promise<(string | null)[] | 'corrupt'> {
  try {
    return await ctx.client.hmget(ctx.keys.session(member), ...META);
  } catch (error) {
    if (!isWrongType(error)) throw error;
    publishCorrupt(ctx.name);
    return 'corrupt';
  }
}
