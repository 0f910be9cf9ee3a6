import { randomBytes } from 'node:crypto';
import { publishAppended, publishExpired } from '../../changelog/telemetry.js';
import type { RedisContext } from './context.js';
import type { RedisScript } from './scripts.js';
import { LOGGED_SCRIPTS, loggedOf } from './scripts.js';

/**
 * Writing scripts with or without the change log. With it, the script's logged variant runs in
 * the same single call (one round trip, one atomic step), with the log's keys and arguments in
 * front; the reply is unwrapped so callers see what the plain script answers.
 */

/** Base of the IDs of the entries one call writes (`<base>.<n>`): 96 random bits. */
function entryIdBase(): string {
  return randomBytes(12).toString('base64url');
}

/**
 * Runs a writing script. `hint` is the new key when a destroy belongs to a regenerate (the old
 * key's entry then says `regenerate` and names it).
 */
export async function writeScript(
  ctx: RedisContext,
  plain: RedisScript,
  keys: string | readonly string[],
  args: readonly string[],
  wrote: (reply: unknown) => boolean,
  hint = '',
): Promise<unknown> {
  const log = ctx.changeLog;
  const logged = log === null ? undefined : loggedOf(plain);
  if (log === null || logged === undefined) return ctx.transport.write(plain, keys, args, wrote);
  const declared = typeof keys === 'string' ? [keys] : keys;
  const reply = (await ctx.transport.write(logged, [...declared, ...log.keys], [...args, entryIdBase(), log.region ?? '', hint], (r) => wrote(unwrap(r)[1]))) as unknown;
  const [count, inner] = unwrap(reply);
  publishAppended('redis-streams', count);
  return inner;
}

function unwrap(reply: unknown): [number, unknown] {
  const [count, inner] = Array.isArray(reply) ? reply : [0, reply];
  return [Number(count) || 0, inner];
}

/**
 * One round of the expiry reconciler: trims the stream by age, then up to `limit` sessions whose
 * deadline passed and that Redis no longer holds get an `expire` entry. Returns how many.
 */
export async function reconcileExpirations(ctx: RedisContext, limit: number): Promise<number> {
  const log = ctx.changeLog;
  if (log === null) return 0;
  const reply = await ctx.transport.write(LOGGED_SCRIPTS.expire, log.keys, [String(limit), String(log.maxAgeMs), entryIdBase(), log.region ?? '', ''], (r) => unwrap(r)[0] > 0);
  const [count, expired] = unwrap(reply);
  publishAppended('redis-streams', count);
  publishExpired('redis-streams', Number(expired));
  return Number(expired);
}
