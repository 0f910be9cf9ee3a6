import type { RedisScript } from './lua.js';
import { loggedScript, script } from './lua.js';
import { EXPIRE } from './log-lua.js';
import { MERGE, READ_STATE } from './merge-script.js';

export type { RedisScript } from './lua.js';

/**
 * Server-side scripts of the Redis store. Each runs atomically on the node that owns its
 * declared keys (the session hash, or a user's index and watermark, which share a hash tag),
 * so every one is valid in Redis Cluster.
 *
 * Session hash fields:
 *   m:c created, m:l lastSeen, m:i idle, m:a absolute expiry, m:v version, m:u user (absent: none)
 *   m:s  stamp of the last write of m:u (absent in records of the previous release: "")
 *   f:<name>  "<stamp>|<JSON text>", or "<stamp>" alone for a deleted field
 *   m:r  id of the last operation that wrote the record: ioredis resends a command whose reply
 *        was lost to a dropped connection, and a replay must not apply twice (or report a
 *        compare-and-swap conflict against its own first run)
 * Tombstone: a hash of m:t = "1", m:T = until (ms), m:S = the destroy's stamp, and m:r;
 * PEXPIREAT until. The previous release wrote only m:t and m:r: until is then the key's expiry
 * and the stamp "".
 * User index: a sorted set `<prefix>u:{sha1hex(userId)}`, members are store keys, scores are the
 * sessions' absolute expiry (an upper bound of their life), key TTL = the highest score.
 * Revoke watermark: a hash `<prefix>w:{sha1hex(userId)}` of s = stamp, u = until; PEXPIREAT until.
 *
 * `indexPrefix` (ARGV[1] where present) is the store prefix when the script may maintain the
 * user index itself (standalone and Sentinel: the index key is derived in the script) and ""
 * in Cluster, where the index lives in another slot and the store maintains it separately.
 *
 * With a change log, the writing scripts run as their logged variants (`LOGGED_SCRIPTS`): the
 * same bodies with three log keys and three log arguments after their own, appending the entry
 * in the same atomic step (`log-lua.ts`). Bodies therefore read variable-length arguments up to
 * NARGV, not #ARGV, and answer through `done()`.
 */

/**
 * KEYS[1] session. ARGV: indexPrefix, member, created, lastSeen, idle, abs, version,
 * hasUser ("0"|"1"), user, op, userStamp, then pairs of hash field and encoded value.
 * Returns 1 when created, 0 when a record or tombstone holds the key.
 */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.pcall('HGET', KEYS[1], 'm:r') == ARGV[10] then return done(1) end
  return done(0)
end
local abs = tonumber(ARGV[6])
local deadline = math.min(tonumber(ARGV[4]) + tonumber(ARGV[5]), abs)
local meta = {'m:c', ARGV[3], 'm:l', ARGV[4], 'm:i', ARGV[5], 'm:a', ARGV[6], 'm:v', ARGV[7], 'm:s', ARGV[11], 'm:r', ARGV[10]}
if ARGV[8] == '1' then
  meta[#meta + 1] = 'm:u'
  meta[#meta + 1] = ARGV[9]
end
redis.call('HSET', KEYS[1], unpack(meta))
hsetMany(KEYS[1], ARGV, 12, NARGV)
redis.call('PEXPIREAT', KEYS[1], int(deadline))
if ARGV[1] ~= '' and ARGV[8] == '1' then
  local ikey = indexKey(ARGV[1], ARGV[9])
  redis.call('ZADD', ikey, int(abs), ARGV[2])
  indexTtl(ikey)
end
if LOG then
  local user = ARGV[8] == '1' and ARGV[9]
  local entry = {'op', 'create', 'key', ARGV[2]}
  if user then
    entry[5] = 'user'
    entry[6] = user
  end
  logAppend(entry, 'live', meta, ARGV, 12, NARGV)
  logDeadline(KEYS[1], deadline)
  logOwner(KEYS[1], abs, user)
end
return done(1)
`;

/**
 * KEYS[1] session. ARGV: indexPrefix, member, expectVersion ("" none), lastSeen ("" none),
 * userOp ("" keep, "0" clear, "1" set), user, op, userStamp, then pairs of hash field and
 * encoded value. The principal changes only when userStamp is newer than the stored m:s.
 * Returns {0} gone, {1, version, abs} applied, {2, version, abs} conflict, {3} unreadable record.
 */
const APPLY = `
local m = redis.pcall('HMGET', KEYS[1], 'm:v', 'm:l', 'm:i', 'm:a', 'm:u', 'm:r', 'm:s', 'm:c')
if m.err then return done({3}) end
if not m[1] then return done({0}) end
local version, last, idle, abs = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), tonumber(m[4])
if not (version and last and idle and abs) then return done({3}) end
if m[6] == ARGV[7] then return done({1, version, math.floor(abs)}) end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then return done({2, version, math.floor(abs)}) end
local writes = {'m:r', ARGV[7]}
local changed = {}
for i = 9, NARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current or newer(stampOf(ARGV[i + 1]), stampOf(current)) then
    writes[#writes + 1] = ARGV[i]
    writes[#writes + 1] = ARGV[i + 1]
    changed[#changed + 1] = i
  end
end
local moved, principal = false, false
if ARGV[4] ~= '' and tonumber(ARGV[4]) > last then
  last = tonumber(ARGV[4])
  moved = true
  writes[#writes + 1] = 'm:l'
  writes[#writes + 1] = ARGV[4]
end
if ARGV[5] ~= '' and newer(ARGV[8], m[7] or '') then
  principal = true
  local old = m[5]
  local new = false
  if ARGV[5] == '1' then new = ARGV[6] end
  writes[#writes + 1] = 'm:s'
  writes[#writes + 1] = ARGV[8]
  if new then
    writes[#writes + 1] = 'm:u'
    writes[#writes + 1] = new
  elseif old then
    redis.call('HDEL', KEYS[1], 'm:u')
  end
  if old ~= new and ARGV[1] ~= '' then
    if old then redis.call('ZREM', indexKey(ARGV[1], old), ARGV[2]) end
    if new then
      local ikey = indexKey(ARGV[1], new)
      redis.call('ZADD', ikey, int(abs), ARGV[2])
      indexTtl(ikey)
    end
  end
end
version = version + 1
writes[#writes + 1] = 'm:v'
writes[#writes + 1] = int(version)
hsetMany(KEYS[1], writes, 1)
redis.call('PEXPIREAT', KEYS[1], int(math.min(last + idle, abs)))
-- A delta that changed nothing (every field older, no later lastSeenAt) replicates nothing.
-- The entry's state: the record's metadata after the write and the fields it changed.
if LOG and (#changed > 0 or moved or principal) then
  local user, ustamp = m[5], m[7] or ''
  if principal then user, ustamp = ARGV[5] == '1' and ARGV[6], ARGV[8] end
  local entry = {'op', 'touch', 'key', ARGV[2], 'partial', '1'}
  local state = {'m:c', m[8], 'm:l', int(last), 'm:i', m[3], 'm:a', m[4], 'm:v', int(version), 'm:s', ustamp}
  local names = {}
  for _, i in ipairs(changed) do
    state[#state + 1] = ARGV[i]
    state[#state + 1] = ARGV[i + 1]
    names[#names + 1] = ARGV[i]
  end
  if #changed > 0 or principal then entry[2] = 'update' end
  if #changed > 0 then
    entry[#entry + 1] = 'changed'
    entry[#entry + 1] = logNames(names)
  end
  if principal then
    entry[#entry + 1] = 'principal'
    entry[#entry + 1] = '1'
  end
  if user then
    entry[#entry + 1] = 'user'
    entry[#entry + 1] = user
    state[#state + 1] = 'm:u'
    state[#state + 1] = user
  end
  logAppend(entry, 'live', state)
  -- The deadline moves only with lastSeenAt, the owner only with the principal.
  if moved then logDeadline(KEYS[1], math.min(last + idle, abs)) end
  if principal then logOwner(KEYS[1], abs, user) end
end
return done({1, version, math.floor(abs)})
`;

/**
 * KEYS[1] session. ARGV: indexPrefix, member, graceMs, requireUser ("0"|"1"), user, op, stamp
 * (kept on the tombstone), coverWall ("" or ms: only a record created at or before it, the
 * revoke of a watermark). Returns 1 destroyed, 0 absent, 2 already a tombstone, 3 belongs to
 * another user, 4 created after coverWall, -1 unreadable.
 */
const DESTROY = `
local m = redis.pcall('HMGET', KEYS[1], 'm:v', 'm:a', 'm:u', 'm:t', 'm:r', 'm:c')
if m.err then return done(-1) end
if not m[1] then
  if m[4] and m[5] == ARGV[6] then return done(1) end
  if m[4] then return done(2) end
  return done(0)
end
if ARGV[4] == '1' and m[3] ~= ARGV[5] then return done(3) end
local abs = tonumber(m[2])
if not abs then return done(-1) end
if ARGV[8] ~= '' and not (tonumber(m[6]) and tonumber(m[6]) <= tonumber(ARGV[8])) then return done(4) end
tombstone(KEYS[1], abs + tonumber(ARGV[3]), ARGV[7], ARGV[6])
if ARGV[1] ~= '' and m[3] then redis.call('ZREM', indexKey(ARGV[1], m[3]), ARGV[2]) end
if LOG then
  local op, reason = 'destroy', false
  if ARGV[8] ~= '' then
    op, reason = 'revoke', 'watermark'
  elseif ARGV[4] == '1' then
    op, reason = 'revoke', 'revoke-all'
  elseif LOG.hint ~= '' then
    op = 'regenerate'
  end
  local entry = {'op', op, 'key', ARGV[2]}
  if m[3] then
    entry[#entry + 1] = 'user'
    entry[#entry + 1] = m[3]
  end
  if reason then
    entry[#entry + 1] = 'reason'
    entry[#entry + 1] = reason
  end
  if op == 'regenerate' then
    entry[#entry + 1] = 'next'
    entry[#entry + 1] = LOG.hint
  end
  logTombstone(entry, ARGV[7], abs + tonumber(ARGV[3]))
  logForget(KEYS[1])
end
return done(1)
`;

/**
 * Standalone only (reads the session hashes named by the index). KEYS[1] user index.
 * ARGV: prefix, user, mode ("list"|"destroy"|"cover"), graceMs, op, stamp (kept on the
 * tombstones of "destroy"), watermark stamp and until ("" for none: raise the user's watermark
 * to them first). Prunes dead, destroyed, moved and unreadable members. "list" returns flat
 * {member, created, lastSeen, idle, abs, ...}; "destroy" tombstones every live session of the
 * user, "cover" those created at or before the watermark's wall time (their tombstones
 * unstamped: `revokedTombstone`); both return how many.
 */
const USER_SESSIONS = `
local function logRevoke(key, member, user, stamp, untilMs, reason)
  if not LOG then return end
  logTombstone({'op', 'revoke', 'key', member, 'user', user, 'reason', reason}, stamp, untilMs)
  logForget(key)
end
local mode = ARGV[3]
local cover = ''
if ARGV[7] ~= '' then
  cover = raiseWatermark(watermarkKey(ARGV[1], ARGV[2]), ARGV[7], tonumber(ARGV[8]))
  logAppend({'op', 'watermark', 'user', ARGV[2], 'watermark', cover})
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(nowMs()))
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
local count = 0
for _, member in ipairs(members) do
  local key = ARGV[1] .. '{' .. member .. '}'
  local m = redis.pcall('HMGET', key, 'm:v', 'm:c', 'm:l', 'm:i', 'm:a', 'm:u')
  if m.err or not m[1] or m[6] ~= ARGV[2] or not tonumber(m[5]) then
    redis.call('ZREM', KEYS[1], member)
  elseif mode == 'destroy' then
    tombstone(key, tonumber(m[5]) + tonumber(ARGV[4]), ARGV[6], ARGV[5])
    redis.call('ZREM', KEYS[1], member)
    count = count + 1
    logRevoke(key, member, ARGV[2], ARGV[6], tonumber(m[5]) + tonumber(ARGV[4]), 'revoke-all')
  elseif mode == 'cover' then
    if tonumber(m[2]) and tonumber(m[2]) <= wallOf(cover) then
      tombstone(key, tonumber(m[5]) + tonumber(ARGV[4]), '', ARGV[5])
      redis.call('ZREM', KEYS[1], member)
      count = count + 1
      logRevoke(key, member, ARGV[2], '', tonumber(m[5]) + tonumber(ARGV[4]), 'watermark')
    end
  else
    out[#out + 1] = member
    out[#out + 1] = m[2]
    out[#out + 1] = m[3]
    out[#out + 1] = m[4]
    out[#out + 1] = m[5]
  end
end
if mode == 'list' then return done(out) end
return done(count)
`;

/**
 * Cluster: KEYS[1] user index, KEYS[2] the user's watermark (same slot). ARGV: watermark stamp
 * and until, or none. Raises the watermark to them when given; prunes members past their
 * absolute expiry. Returns {watermark stamp ("" when not raised), member, ...}.
 */
const INDEX_MEMBERS = `
local stamp = ''
if ARGV[1] and ARGV[1] ~= '' then stamp = raiseWatermark(KEYS[2], ARGV[1], tonumber(ARGV[2])) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(nowMs()))
local out = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(out, 1, stamp)
return out
`;

/**
 * Cluster: KEYS[1] user index, KEYS[2] (optional) the user's watermark. ARGV: mode
 * ("NX"|"XX"|""), member, score ("" = provisional), PROVISIONAL_MS (provisional score: now +
 * this, an upper bound of any session's life). Keeps the index TTL at its highest score.
 * Returns 1, or with KEYS[2] the watermark as {stamp, until} (nil, nil when none).
 */
const INDEX_SET = `
local score = ARGV[3]
if score == '' then score = int(nowMs() + tonumber(ARGV[4])) end
if ARGV[1] == '' then
  redis.call('ZADD', KEYS[1], score, ARGV[2])
else
  redis.call('ZADD', KEYS[1], ARGV[1], score, ARGV[2])
end
indexTtl(KEYS[1])
if KEYS[2] then return redis.call('HMGET', KEYS[2], 's', 'u') end
return 1
`;

export const SCRIPTS = {
  create: script('create', CREATE),
  apply: script('apply', APPLY),
  destroy: script('destroy', DESTROY),
  userSessions: script('user-sessions', USER_SESSIONS),
  indexMembers: script('index-members', INDEX_MEMBERS),
  indexSet: script('index-set', INDEX_SET),
  readState: script('read-state', READ_STATE),
  merge: script('merge', MERGE),
} as const;

/**
 * The writing scripts again, writing the change log in the same atomic step (`log-lua.ts`),
 * and the expiry reconciler, which exists only logged.
 */
export const LOGGED_SCRIPTS = {
  create: loggedScript('create', CREATE),
  apply: loggedScript('apply', APPLY),
  destroy: loggedScript('destroy', DESTROY),
  userSessions: loggedScript('user-sessions', USER_SESSIONS),
  merge: loggedScript('merge', MERGE),
  expire: loggedScript('expire', EXPIRE),
} as const;

const LOGGED_BY_PLAIN = new Map<RedisScript, RedisScript>([
  [SCRIPTS.create, LOGGED_SCRIPTS.create],
  [SCRIPTS.apply, LOGGED_SCRIPTS.apply],
  [SCRIPTS.destroy, LOGGED_SCRIPTS.destroy],
  [SCRIPTS.userSessions, LOGGED_SCRIPTS.userSessions],
  [SCRIPTS.merge, LOGGED_SCRIPTS.merge],
]);

/** The logged variant of a writing script; undefined for the Cluster-only index scripts, which change no session. */
export function loggedOf(plain: RedisScript): RedisScript | undefined {
  return LOGGED_BY_PLAIN.get(plain);
}

/** Longer than any session can live (the manager caps timeouts at 366 days). */
export const PROVISIONAL_MS = 400 * 24 * 3600 * 1000;
