import { SessionError } from '../../core/errors.js';
import { wallOf } from '../../core/hlc.js';
import { publishCorrupt } from '../../core/telemetry.js';
import type { KeyState, LiveState, MergeOutcome, TombstoneState } from '../../core/types.js';
import { TOMBSTONE_GRACE_MS } from '../../core/types.js';
import { checkKey, decodeState, fieldArgs, num, operationId, recordArgs } from './codec.js';
import type { RedisContext } from './context.js';
import { writeScript } from './log.js';
import { SCRIPTS } from './scripts.js';
import { prepareUser } from './users.js';

/**
 * The replica powers on a session key: its raw state, and a foreign state merged into it by
 * one atomic script (`merge-script.ts`).
 */

/** Attempts of a Cluster merge while the merged principal keeps changing under it. */
const MERGE_ATTEMPTS = 4;

const STATES = ['absent', 'live', 'tombstone'] as const;

type MergeReply = [0, 0 | 1 | 2, 0 | 1, string | null, string, string] | [1, string] | [-1];

export async function readState(ctx: RedisContext, key: string): Promise<KeyState> {
  const reply = (await ctx.transport.read(SCRIPTS.readState, ctx.keys.session(key), [])) as [number, string[]] | -1;
  const state = reply === -1 ? 'corrupt' : decodeState(reply[1], Number(reply[0]));
  if (state !== 'corrupt') return state;
  publishCorrupt(ctx.name);
  return null;
}

/**
 * Standalone and Sentinel: one script, which reads the watermark of the merged record's user
 * itself. Cluster: the watermark lives in the user's slot, so it is read before the script
 * (together with the index entry the record needs), passed in, and read again after a write
 * that left the record live: a watermark raised meanwhile by `mergeWatermark` (which walked the
 * index before this record was in it) then destroys the record here.
 */
export async function mergeState(ctx: RedisContext, key: string, foreign: LiveState | TombstoneState): Promise<MergeOutcome> {
  const member = checkKey(key);
  const target = ctx.keys.session(key);
  const op = operationId();
  const grace = String(TOMBSTONE_GRACE_MS);
  const state = foreign.kind === 'tombstone' ? ['tombstone', foreign.stamp, num(foreign.until, 'until')] : ['live', ...recordArgs(foreign.record), ...fieldArgs(foreign.record.fields)];
  const merge = async (watermark: string[]): Promise<MergeReply> =>
    (await writeScript(ctx, SCRIPTS.merge, target, [ctx.cluster ? '' : ctx.keys.prefix, member, op, grace, ...watermark, ...state], (r) => Array.isArray(r) && r[0] === 0 && r[2] === 1)) as MergeReply;

  if (!ctx.cluster) return outcome(ctx, await merge(['0', '', '', '']));
  let user = foreign.kind === 'live' ? foreign.record.userId : null;
  for (let attempt = 1; attempt <= MERGE_ATTEMPTS; attempt++) {
    const watermark = user === null ? null : await prepareUser(ctx, user, member, null);
    const reply = await merge(user === null ? ['0', '', '', ''] : ['1', user, watermark?.stamp ?? '', watermark === null ? '' : String(watermark.until)]);
    if (reply[0] === 1) {
      // The merged record's principal is another user's (the stored one won): merge again with theirs.
      user = reply[1];
      continue;
    }
    const result = outcome(ctx, reply);
    if (reply[0] !== 0 || !result.changed || result.state !== 'live' || reply[3] === null) return result;
    const [, , , owner, abs, created] = reply;
    const after = await prepareUser(ctx, owner, member, abs);
    if (after === null || Number(created) > wallOf(after.stamp)) return result;
    // Its `revokedTombstone`, as settle would have made it had the watermark been there first.
    const killed = await ctx.transport.write(SCRIPTS.destroy, target, ['', member, grace, '1', owner, operationId(), '', String(wallOf(after.stamp))], (r) => r === 1);
    return killed === 1 ? { state: 'tombstone', changed: true } : result;
  }
  throw new SessionError('ESESS_CONFLICT', { context: { store: ctx.name, operation: 'mergeState', attempts: MERGE_ATTEMPTS } });
}

function outcome(ctx: RedisContext, reply: MergeReply): MergeOutcome {
  if (reply[0] === 0) return { state: STATES[reply[1]], changed: reply[2] === 1 };
  // An unreadable record is left alone, as `readState` reports it: absent.
  publishCorrupt(ctx.name);
  return { state: 'absent', changed: false };
}
