/**
 * The replica scripts: the raw state of a key, and `mergeRecords` + `settle` of
 * src/core/record.ts as one atomic script (see `scripts.ts` for the layout). Any change to the
 * model there must be made here too; the conformance suite compares the two.
 */

/**
 * KEYS[1] session. Returns -1 when the key holds another type, else {expiry, flat HGETALL}:
 * the expiry (ms) is what a tombstone of the previous release guards until.
 */
export const READ_STATE = `
local h = redis.pcall('HGETALL', KEYS[1])
if h.err then return -1 end
if #h == 0 then return {0, h} end
return {expireTime(KEYS[1]), h}
`;

/**
 * KEYS[1] session. ARGV: indexPrefix, member, op, graceMs (TOMBSTONE_GRACE_MS: the guard a
 * tombstone takes from a live record it meets, and a revoked record's),
 * then the watermark the client read ("1", user, stamp or "", until; "0", "", "", "" when it read
 * none: standalone reads `<prefix>w:{...}` itself), then the foreign state: "tombstone", stamp,
 * until; or "live", created, lastSeen, idle, abs, hasUser ("0"|"1"), user, userStamp, then pairs
 * of hash field and encoded value.
 *
 * current = the key's state; next = settle(mergeRecords(current, foreign), watermark of next's
 * user, Redis time). Writes next when it differs from current (live: the version rises by one,
 * or is 1 when created; the user index is kept in standalone). Returns {-1} unreadable;
 * {1, user}: Cluster, next's user is not the one whose watermark was passed (nothing written);
 * else {0, state (0 absent, 1 live, 2 tombstone), changed (0|1), user or nil, abs, created}.
 */
export const MERGE = `
local h = redis.pcall('HGETALL', KEYS[1])
if h.err then return done({-1}) end
local cur = {}
for i = 1, #h, 2 do cur[h[i]] = h[i + 1] end
local now = nowMs()
local kind = 'absent'
local c, cts, ctu
if #h > 0 and cur['m:t'] then
  kind = 'tombstone'
  cts, ctu = cur['m:S'] or '', tombstoneUntil(KEYS[1], cur['m:T'])
  if not ctu then return done({-1}) end
elseif #h > 0 then
  kind = 'live'
  c = {created = tonumber(cur['m:c']), last = tonumber(cur['m:l']), idle = tonumber(cur['m:i']), abs = tonumber(cur['m:a']),
    version = tonumber(cur['m:v']), user = cur['m:u'] or false, ustamp = cur['m:s'] or ''}
  if not (c.created and c.last and c.idle and c.abs and c.version) then return done({-1}) end
  for name, encoded in pairs(cur) do
    if string.sub(name, 1, 2) == 'f:' and stampOf(encoded) == '' then return done({-1}) end
  end
end

local function reply(state, changed, n)
  local code = 0
  if state == 'live' then code = 1 elseif state == 'tombstone' then code = 2 end
  if state ~= 'live' then return {0, code, changed} end
  return {0, code, changed, n.user, int(n.abs), int(n.created)}
end
if cur['m:r'] == ARGV[3] then return done(reply(kind, 1, c)) end

local nextKind, n, ts, tu = kind, nil, cts, ctu
local grace = tonumber(ARGV[4])
local fields, changedFields = {}, {}
local f
if ARGV[9] == 'live' then
  local fuser = false
  if ARGV[14] == '1' then fuser = ARGV[15] end
  f = {created = tonumber(ARGV[10]), last = tonumber(ARGV[11]), idle = tonumber(ARGV[12]), abs = tonumber(ARGV[13]), user = fuser, ustamp = ARGV[16]}
end
if kind == 'tombstone' and f then
  tu = math.max(tu, f.abs + grace)
elseif kind == 'tombstone' then
  if newer(ARGV[10], ts) then ts = ARGV[10] end
  tu = math.max(tu, tonumber(ARGV[11]))
elseif not f then
  nextKind, ts, tu = 'tombstone', ARGV[10], tonumber(ARGV[11])
  if c then tu = math.max(tu, c.abs + grace) end
else
  nextKind = 'live'
  if c then
    n = {created = math.min(c.created, f.created), last = math.max(c.last, f.last), idle = math.min(c.idle, f.idle),
      abs = math.max(c.abs, f.abs), user = c.user, ustamp = c.ustamp}
    if wins(f.ustamp, f.user, c.ustamp, c.user) then n.user, n.ustamp = f.user, f.ustamp end
    for name, encoded in pairs(cur) do
      if string.sub(name, 1, 2) == 'f:' then fields[name] = encoded end
    end
  else
    n = f
  end
  for i = 17, NARGV, 2 do
    local current = fields[ARGV[i]]
    local encoded = ARGV[i + 1]
    if not current or wins(stampOf(encoded), valueOf(encoded), stampOf(current), valueOf(current)) then
      fields[ARGV[i]] = encoded
      changedFields[#changedFields + 1] = ARGV[i]
    end
  end
end

if nextKind == 'tombstone' and tu <= now then nextKind = 'absent' end
if nextKind == 'live' then
  if math.min(n.last + n.idle, n.abs) <= now then
    nextKind = 'absent'
  elseif n.user then
    local ws = false
    if ARGV[1] ~= '' then
      ws = redis.call('HGET', watermarkKey(ARGV[1], n.user), 's')
    elseif ARGV[5] ~= '1' or ARGV[6] ~= n.user then
      return done({1, n.user})
    elseif ARGV[7] ~= '' and tonumber(ARGV[8]) > now then
      ws = ARGV[7]
    end
    local wall = ws and wallOf(ws)
    if wall and n.created <= wall then nextKind, ts, tu = 'tombstone', '', n.abs + grace end
  end
end

local changed = nextKind ~= kind
if not changed and kind == 'tombstone' then
  changed = ts ~= cts or tu ~= ctu
elseif not changed and kind == 'live' then
  changed = #changedFields > 0 or n.created ~= c.created or n.last ~= c.last or n.idle ~= c.idle or n.abs ~= c.abs
    or n.user ~= c.user or n.ustamp ~= c.ustamp
end
if not changed then return done(reply(nextKind, 0, c)) end

local oldUser = kind == 'live' and c.user
if nextKind == 'absent' then
  redis.call('DEL', KEYS[1])
elseif nextKind == 'tombstone' then
  tombstone(KEYS[1], tu, ts, ARGV[3])
else
  local version = 1
  if c then version = c.version + 1 end
  local writes = {'m:c', int(n.created), 'm:l', int(n.last), 'm:i', int(n.idle), 'm:a', int(n.abs), 'm:v', int(version), 'm:s', n.ustamp, 'm:r', ARGV[3]}
  if n.user then
    writes[#writes + 1] = 'm:u'
    writes[#writes + 1] = n.user
  elseif oldUser then
    redis.call('HDEL', KEYS[1], 'm:u')
  end
  for _, name in ipairs(changedFields) do
    writes[#writes + 1] = name
    writes[#writes + 1] = fields[name]
  end
  hsetMany(KEYS[1], writes, 1)
  redis.call('PEXPIREAT', KEYS[1], int(math.min(n.last + n.idle, n.abs)))
end
if ARGV[1] ~= '' then
  local newUser = nextKind == 'live' and n.user
  if oldUser and oldUser ~= newUser then redis.call('ZREM', indexKey(ARGV[1], oldUser), ARGV[2]) end
  if newUser then
    local ikey = indexKey(ARGV[1], newUser)
    redis.call('ZADD', ikey, int(n.abs), ARGV[2])
    indexTtl(ikey)
  end
end
if LOG then
  local user = oldUser
  if nextKind == 'live' then user = n.user end
  local entry = {'op', 'merge', 'key', ARGV[2], 'previous', kind}
  if user then
    entry[#entry + 1] = 'user'
    entry[#entry + 1] = user
  end
  if #changedFields > 0 then
    entry[#entry + 1] = 'changed'
    entry[#entry + 1] = logNames(changedFields)
  end
  if kind == 'live' and nextKind == 'live' and (n.user ~= c.user or n.ustamp ~= c.ustamp) then
    entry[#entry + 1] = 'principal'
    entry[#entry + 1] = '1'
  end
  if nextKind == 'live' then
    -- The metadata after the merge and the fields it changed: every field when the key was free.
    local state = {'m:c', int(n.created), 'm:l', int(n.last), 'm:i', int(n.idle), 'm:a', int(n.abs), 'm:s', n.ustamp}
    state[#state + 1] = 'm:v'
    state[#state + 1] = int(c and c.version + 1 or 1)
    if n.user then
      state[#state + 1] = 'm:u'
      state[#state + 1] = n.user
    end
    for _, name in ipairs(changedFields) do
      state[#state + 1] = name
      state[#state + 1] = fields[name]
    end
    if kind == 'live' then
      entry[#entry + 1] = 'partial'
      entry[#entry + 1] = '1'
    end
    logAppend(entry, 'live', state)
    logDeadline(KEYS[1], math.min(n.last + n.idle, n.abs))
    logOwner(KEYS[1], n.abs, n.user)
  else
    if nextKind == 'tombstone' then logTombstone(entry, ts, tu) else logAppend(entry) end
    logForget(KEYS[1])
  end
end
return done(reply(nextKind, 1, n))
`;
