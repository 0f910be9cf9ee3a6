/**
 * The Lua that writes the change log (docs/change-log.md) inside the store's own write scripts,
 * so an acknowledged write and its entry are one atomic step: a crash right after the reply
 * cannot lose the entry, and a failed script leaves neither.
 *
 * Every script exists twice: plain (`LOG` is false, the log calls do nothing) and logged. A
 * logged script takes three more keys after its own — the stream, the deadlines sorted set and
 * the owners hash — and three more arguments after its own: the entry ID base, the region (""
 * for none) and a hint (the new key when this destroy is a regenerate's, else ""). Bodies read
 * their variable-length arguments up to `NARGV`, and answer `done(reply)`: the reply itself
 * when plain, {entries appended, reply} when logged.
 *
 * Redis expires keys silently (keyspace notifications are lossy), so the scripts keep, per live
 * session, its deadline in `<stream>:deadlines` (member: the session's Redis key) and its
 * absolute expiry and principal in `<stream>:owners` ("abs|user"); the expire script reconciles
 * them with what Redis still holds and writes an `expire` entry for each key Redis dropped.
 */

export const LOG_OFF = 'local LOG = false\nlocal NARGV = #ARGV';

export const LOG_ON = `
local LOG = {stream = KEYS[#KEYS - 2], deadlines = KEYS[#KEYS - 1], owners = KEYS[#KEYS],
  id = ARGV[#ARGV - 2], region = ARGV[#ARGV - 1], hint = ARGV[#ARGV], count = 0}
local NARGV = #ARGV - 3
`;

// An entry is one stream entry of flat fields (docs/change-log.md, "On Redis Streams"): the log
// fields (v, id, op, key, ...), then `state` and hash fields encoded as the session hash holds
// them (m:c, m:l, ..., f:<name>; a tombstone's m:S and m:T). Its time is its stream ID's. No
// JSON is built and nothing is read back: a logged write costs one XADD (and a ZADD when the
// deadline moves). A record too large for one XADD call's arguments goes as JSON in `record`.
// Trimming by age is the expire script's (every reconciler round), not each write's.
export const LOG_LIBRARY = `
local function done(reply)
  if LOG then return {LOG.count, reply} end
  return reply
end
local function logJsonRecord(flat)
  local cur = {}
  for i = 1, #flat, 2 do cur[flat[i]] = flat[i + 1] end
  local fields = {}
  for name, encoded in pairs(cur) do
    if string.sub(name, 1, 2) == 'f:' then
      local value = valueOf(encoded)
      if value == false then value = cjson.null end
      fields[string.sub(name, 3)] = {value = value, stamp = stampOf(encoded)}
    end
  end
  return cjson.encode({kind = 'live', record = {createdAt = tonumber(cur['m:c']), lastSeenAt = tonumber(cur['m:l']), idleTimeout = tonumber(cur['m:i']),
    absoluteExpiresAt = tonumber(cur['m:a']), userId = cur['m:u'] or cjson.null, userStamp = cur['m:s'] or '', version = tonumber(cur['m:v']), fields = fields}})
end
-- meta: flat {name, value, ...} of log fields; state: 'live' | 'tombstone' | nil, then the
-- state's hash fields: all of list a, then list b from bFirst to bLast.
local function logAppend(meta, state, a, b, bFirst, bLast)
  if not LOG then return end
  LOG.count = LOG.count + 1
  local args = {LOG.stream, '*', 'v', '1', 'id', LOG.id .. '.' .. LOG.count}
  local n = 6
  if LOG.region ~= '' then
    args[7], args[8] = 'region', LOG.region
    n = 8
  end
  for i = 1, #meta do args[n + i] = meta[i] end
  n = n + #meta
  if state then
    if b and n + #a + bLast - bFirst > 7000 then
      local flat = {}
      for i = 1, #a do flat[i] = a[i] end
      for i = bFirst, bLast do flat[#flat + 1] = b[i] end
      args[n + 1], args[n + 2], args[n + 3], args[n + 4] = 'state', 'json', 'record', logJsonRecord(flat)
    else
      args[n + 1], args[n + 2] = 'state', state
      n = n + 2
      for i = 1, #a do args[n + i] = a[i] end
      n = n + #a
      if b then for i = bFirst, bLast do n = n + 1; args[n] = b[i] end end
    end
  end
  redis.call('XADD', unpack(args))
end
local function logTombstone(meta, stamp, untilMs)
  logAppend(meta, 'tombstone', {'m:S', stamp, 'm:T', int(untilMs)})
end
local function logDeadline(key, deadline)
  if not LOG then return end
  redis.call('ZADD', LOG.deadlines, int(deadline), key)
end
local function logOwner(key, abs, user)
  if not LOG then return end
  redis.call('HSET', LOG.owners, key, int(abs) .. '|' .. (user or ''))
end
local function logForget(key)
  if not LOG then return end
  redis.call('ZREM', LOG.deadlines, key)
  redis.call('HDEL', LOG.owners, key)
end
-- Names of changed hash fields (f:<name>) as a JSON list. Names without a byte JSON must
-- escape (control bytes, quote, backslash) are quoted as they are, without the encoder. The
-- class lists bytes, not %w or %c: those follow the server's locale (see strcoll in lua.ts).
local function logNames(list)
  local out = {}
  local plain = true
  for i, name in ipairs(list) do
    out[i] = string.sub(name, 3)
    if plain and string.find(out[i], '[%z\\1-\\31"\\\\]') then plain = false end
  end
  if plain then return '["' .. table.concat(out, '","') .. '"]' end
  return cjson.encode(out)
end
`;

/**
 * Logged only. ARGV: limit, maxAgeMs (0: keep every entry), then the log's. Trims the stream to
 * the entries of the last maxAgeMs (`XTRIM MINID ~`: whole stream nodes), then takes up to
 * `limit` deadlines that have passed (Redis time); a key Redis no longer holds gets an `expire`
 * entry (at = its deadline; reason "absolute" when the deadline was the absolute expiry, else
 * "idle") and leaves the set; a key still live had its deadline moved (the score is corrected);
 * a tombstone or a key of another type leaves the set. Returns how many expirations it wrote.
 */
export const EXPIRE = `
local now = nowMs()
local maxAge = tonumber(ARGV[2])
if maxAge > 0 then redis.call('XTRIM', LOG.stream, 'MINID', '~', int(now - maxAge)) end
local due = redis.call('ZRANGEBYSCORE', LOG.deadlines, '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local count = 0
for i = 1, #due, 2 do
  local key, deadline = due[i], tonumber(due[i + 1])
  if redis.call('EXISTS', key) == 0 then
    local owner = redis.call('HGET', LOG.owners, key) or ''
    local bar = string.find(owner, '|', 1, true)
    local abs, user = nil, false
    if bar then
      abs = tonumber(string.sub(owner, 1, bar - 1))
      user = string.sub(owner, bar + 1)
      if user == '' then user = false end
    end
    local reason = 'idle'
    if abs and deadline >= abs then reason = 'absolute' end
    local meta = {'op', 'expire', 'key', string.match(key, '{(.*)}$'), 'reason', reason, 'at', int(deadline)}
    if user then
      meta[#meta + 1] = 'user'
      meta[#meta + 1] = user
    end
    logAppend(meta)
    logForget(key)
    count = count + 1
  else
    local m = redis.pcall('HMGET', key, 'm:l', 'm:i', 'm:a', 'm:t')
    local last, idle, abs = nil, nil, nil
    if not m.err and not m[4] then last, idle, abs = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]) end
    if not (last and idle and abs) then
      logForget(key)
    elseif math.min(last + idle, abs) > now then
      redis.call('ZADD', LOG.deadlines, int(math.min(last + idle, abs)), key)
    end
  end
end
return done(count)
`;
