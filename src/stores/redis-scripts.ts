import { createHash } from 'node:crypto';

/**
 * Server-side scripts of the Redis store. Each runs atomically on the node that owns its only
 * declared key (the session hash, or a user index), so every one is valid in Redis Cluster.
 *
 * Session hash fields:
 *   m:c created, m:l lastSeen, m:i idle, m:a absolute expiry, m:v version, m:u user (absent: none)
 *   f:<name>  "<stamp>|<JSON text>", or "<stamp>" alone for a deleted field
 *   m:r  id of the last operation that wrote the record: ioredis resends a command whose reply
 *        was lost to a dropped connection, and a replay must not apply twice (or report a
 *        compare-and-swap conflict against its own first run)
 * Tombstone: a hash holding only m:t = "1" and m:r.
 * User index: a sorted set `<prefix>u:{sha1hex(userId)}`, members are store keys, scores are the
 * sessions' absolute expiry (an upper bound of their life), key TTL = the highest score.
 *
 * `indexPrefix` (ARGV[1] where present) is the store prefix when the script may maintain the
 * user index itself (standalone and Sentinel: the index key is derived in the script) and ""
 * in Cluster, where the index lives in another slot and the store maintains it separately.
 */

export interface RedisScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

// Redis runs Lua with LC_COLLATE from its environment, and Lua's `<` on strings uses strcoll:
// under a non-C locale it is not bytewise. Stamps must order bytewise, hence `newer`.
const LIBRARY = `
local function int(n) return string.format('%.0f', math.floor(n)) end
local function newer(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local function stampOf(encoded)
  local bar = string.find(encoded, '|', 1, true)
  if bar then return string.sub(encoded, 1, bar - 1) end
  return encoded
end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function hsetMany(key, list, first)
  local batch = {}
  for i = first, #list do
    batch[#batch + 1] = list[i]
    if #batch == 1000 then
      redis.call('HSET', key, unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then redis.call('HSET', key, unpack(batch)) end
end
local function indexKey(prefix, user) return prefix .. 'u:{' .. redis.sha1hex(user) .. '}' end
local function indexTtl(ikey)
  local top = redis.call('ZRANGE', ikey, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', ikey, int(tonumber(top[2]) + 1)) end
end
local function tombstone(key, abs, grace, op)
  redis.call('DEL', key)
  redis.call('HSET', key, 'm:t', '1', 'm:r', op)
  redis.call('PEXPIREAT', key, int(abs + grace))
end
`;

/**
 * KEYS[1] session. ARGV: indexPrefix, member, created, lastSeen, idle, abs, version,
 * hasUser ("0"|"1"), user, op, then pairs of hash field and encoded value.
 * Returns 1 when created, 0 when a record or tombstone holds the key.
 */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.pcall('HGET', KEYS[1], 'm:r') == ARGV[10] then return 1 end
  return 0
end
local abs = tonumber(ARGV[6])
local deadline = math.min(tonumber(ARGV[4]) + tonumber(ARGV[5]), abs)
local meta = {'m:c', ARGV[3], 'm:l', ARGV[4], 'm:i', ARGV[5], 'm:a', ARGV[6], 'm:v', ARGV[7], 'm:r', ARGV[10]}
if ARGV[8] == '1' then
  meta[#meta + 1] = 'm:u'
  meta[#meta + 1] = ARGV[9]
end
redis.call('HSET', KEYS[1], unpack(meta))
hsetMany(KEYS[1], ARGV, 11)
redis.call('PEXPIREAT', KEYS[1], int(deadline))
if ARGV[1] ~= '' and ARGV[8] == '1' then
  local ikey = indexKey(ARGV[1], ARGV[9])
  redis.call('ZADD', ikey, int(abs), ARGV[2])
  indexTtl(ikey)
end
return 1
`;

/**
 * KEYS[1] session. ARGV: indexPrefix, member, expectVersion ("" none), lastSeen ("" none),
 * userOp ("" keep, "0" clear, "1" set), user, op, then pairs of hash field and encoded value.
 * Returns {0} gone, {1, version, abs} applied, {2, version, abs} conflict, {3} unreadable record.
 */
const APPLY = `
local m = redis.pcall('HMGET', KEYS[1], 'm:v', 'm:l', 'm:i', 'm:a', 'm:u', 'm:r')
if m.err then return {3} end
if not m[1] then return {0} end
local version, last, idle, abs = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), tonumber(m[4])
if not (version and last and idle and abs) then return {3} end
if m[6] == ARGV[7] then return {1, version, math.floor(abs)} end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then return {2, version, math.floor(abs)} end
local writes = {'m:r', ARGV[7]}
for i = 8, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current or newer(stampOf(ARGV[i + 1]), stampOf(current)) then
    writes[#writes + 1] = ARGV[i]
    writes[#writes + 1] = ARGV[i + 1]
  end
end
if ARGV[4] ~= '' and tonumber(ARGV[4]) > last then
  last = tonumber(ARGV[4])
  writes[#writes + 1] = 'm:l'
  writes[#writes + 1] = ARGV[4]
end
if ARGV[5] ~= '' then
  local old = m[5]
  local new = false
  if ARGV[5] == '1' then new = ARGV[6] end
  if old ~= new then
    if new then
      writes[#writes + 1] = 'm:u'
      writes[#writes + 1] = new
    else
      redis.call('HDEL', KEYS[1], 'm:u')
    end
    if ARGV[1] ~= '' then
      if old then redis.call('ZREM', indexKey(ARGV[1], old), ARGV[2]) end
      if new then
        local ikey = indexKey(ARGV[1], new)
        redis.call('ZADD', ikey, int(abs), ARGV[2])
        indexTtl(ikey)
      end
    end
  end
end
version = version + 1
writes[#writes + 1] = 'm:v'
writes[#writes + 1] = int(version)
hsetMany(KEYS[1], writes, 1)
redis.call('PEXPIREAT', KEYS[1], int(math.min(last + idle, abs)))
return {1, version, math.floor(abs)}
`;

/**
 * KEYS[1] session. ARGV: indexPrefix, member, graceMs, requireUser ("0"|"1"), user, op.
 * Returns 1 destroyed, 0 absent, 2 already a tombstone, 3 belongs to another user, -1 unreadable.
 */
const DESTROY = `
local m = redis.pcall('HMGET', KEYS[1], 'm:v', 'm:a', 'm:u', 'm:t', 'm:r')
if m.err then return -1 end
if not m[1] then
  if m[4] and m[5] == ARGV[6] then return 1 end
  if m[4] then return 2 end
  return 0
end
if ARGV[4] == '1' and m[3] ~= ARGV[5] then return 3 end
local abs = tonumber(m[2])
if not abs then return -1 end
tombstone(KEYS[1], abs, tonumber(ARGV[3]), ARGV[6])
if ARGV[1] ~= '' and m[3] then redis.call('ZREM', indexKey(ARGV[1], m[3]), ARGV[2]) end
return 1
`;

/**
 * Standalone only (reads the session hashes named by the index). KEYS[1] user index.
 * ARGV: prefix, user, mode ("list"|"destroy"), graceMs, op. Prunes dead, destroyed, moved and
 * unreadable members. "list" returns flat {member, created, lastSeen, idle, abs, ...};
 * "destroy" tombstones every live session of the user and returns how many.
 */
const USER_SESSIONS = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(nowMs()))
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
local count = 0
for _, member in ipairs(members) do
  local key = ARGV[1] .. '{' .. member .. '}'
  local m = redis.pcall('HMGET', key, 'm:v', 'm:c', 'm:l', 'm:i', 'm:a', 'm:u')
  if m.err or not m[1] or m[6] ~= ARGV[2] or not tonumber(m[5]) then
    redis.call('ZREM', KEYS[1], member)
  elseif ARGV[3] == 'destroy' then
    tombstone(key, tonumber(m[5]), tonumber(ARGV[4]), ARGV[5])
    redis.call('ZREM', KEYS[1], member)
    count = count + 1
  else
    out[#out + 1] = member
    out[#out + 1] = m[2]
    out[#out + 1] = m[3]
    out[#out + 1] = m[4]
    out[#out + 1] = m[5]
  end
end
if ARGV[3] == 'destroy' then return count end
return out
`;

/** Cluster: KEYS[1] user index. Prunes members past their absolute expiry; returns the rest. */
const INDEX_MEMBERS = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(nowMs()))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`;

/**
 * Cluster: KEYS[1] user index. ARGV: mode ("NX"|"XX"|""), member, score ("" = provisional),
 * PROVISIONAL_MS (provisional score: now + this, an upper bound of any session's life).
 * Keeps the index TTL at its highest score.
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
return 1
`;

function script(name: string, body: string): RedisScript {
  const lua = `-- elastic-session ${name}\n${LIBRARY}\n${body}`;
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

export const SCRIPTS = {
  create: script('create', CREATE),
  apply: script('apply', APPLY),
  destroy: script('destroy', DESTROY),
  userSessions: script('user-sessions', USER_SESSIONS),
  indexMembers: script('index-members', INDEX_MEMBERS),
  indexSet: script('index-set', INDEX_SET),
} as const;

/** Longer than any session can live (the manager caps timeouts at 366 days). */
export const PROVISIONAL_MS = 400 * 24 * 3600 * 1000;
