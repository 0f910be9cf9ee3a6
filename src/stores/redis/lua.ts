import { createHash } from 'node:crypto';
import { LOG_LIBRARY, LOG_OFF, LOG_ON } from './log-lua.js';

/**
 * The Lua every script of the Redis store shares, and the script builder. The layout the
 * scripts read and write is described in `scripts.ts`.
 */

export interface RedisScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

// Redis runs Lua with LC_COLLATE from its environment, and Lua's `<` on strings uses strcoll:
// under a non-C locale it is not bytewise. Stamps must order bytewise, hence `newer`.
//
// Equal stamps break by value (`wins`), in JavaScript's string order as src/core/record.ts
// does: UTF-16 code units. Redis holds UTF-8, whose byte order is code point order; the two
// differ only where a character above U+FFFF (lead byte F0-F4, a surrogate pair in UTF-16)
// meets one from U+E000 to U+FFFF (lead byte EE or EF), hence `jsGreater`.
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
local function jsGreater(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  local i = 1
  while i <= n and string.byte(a, i) == string.byte(b, i) do i = i + 1 end
  if i > n then return #a > #b end
  local x, y = string.byte(a, i), string.byte(b, i)
  if x >= 0x80 and x < 0xC0 then return x > y end
  if (x >= 0xF0) ~= (y >= 0xF0) then
    if x >= 0xF0 then return y < 0xEE end
    return x >= 0xEE
  end
  return x > y
end
local function wins(stamp, value, otherStamp, otherValue)
  if stamp ~= otherStamp then return newer(stamp, otherStamp) end
  return jsGreater(value or '', otherValue or '')
end
local function wallOf(stamp) return tonumber(string.sub(stamp, 1, 12), 16) end
local function stampOf(encoded)
  local bar = string.find(encoded, '|', 1, true)
  if bar then return string.sub(encoded, 1, bar - 1) end
  return encoded
end
local function valueOf(encoded)
  local bar = string.find(encoded, '|', 1, true)
  if bar then return string.sub(encoded, bar + 1) end
  return false
end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function hsetMany(key, list, first, last)
  local batch = {}
  for i = first, last or #list do
    batch[#batch + 1] = list[i]
    if #batch == 1000 then
      redis.call('HSET', key, unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then redis.call('HSET', key, unpack(batch)) end
end
local function indexKey(prefix, user) return prefix .. 'u:{' .. redis.sha1hex(user) .. '}' end
local function watermarkKey(prefix, user) return prefix .. 'w:{' .. redis.sha1hex(user) .. '}' end
local function indexTtl(ikey)
  local top = redis.call('ZRANGE', ikey, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', ikey, int(tonumber(top[2]) + 1)) end
end
local function tombstone(key, untilMs, stamp, op)
  redis.call('DEL', key)
  redis.call('HSET', key, 'm:t', '1', 'm:T', int(untilMs), 'm:S', stamp, 'm:r', op)
  redis.call('PEXPIREAT', key, int(untilMs))
end
-- Tombstones of the previous release hold only m:t = "1": their guard ends with the key's
-- expiry (PEXPIRETIME from Redis 7.0 on, now + PTTL before it).
local function expireTime(key)
  local at = redis.pcall('PEXPIRETIME', key)
  if type(at) == 'number' then return at end
  return nowMs() + redis.call('PTTL', key)
end
local function tombstoneUntil(key, stored)
  if stored then return tonumber(stored) end
  return expireTime(key)
end
local function raiseWatermark(wkey, stamp, untilMs)
  local w = redis.call('HMGET', wkey, 's', 'u')
  if w[1] and not newer(stamp, w[1]) then stamp = w[1] end
  local stored = tonumber(w[2])
  if stored and stored > untilMs then untilMs = stored end
  redis.call('HSET', wkey, 's', stamp, 'u', int(untilMs))
  redis.call('PEXPIREAT', wkey, int(untilMs))
  return stamp
end
`;

/** A script as the store runs it without a change log: the log calls in its body do nothing. */
export function script(name: string, body: string): RedisScript {
  return built(name, `-- elastic-session ${name}\n${LIBRARY}\n${LOG_OFF}\n${LOG_LIBRARY}\n${body}`);
}

/**
 * The same body writing the change log (see `log-lua.ts`): three log keys and three log
 * arguments after the script's own, and the reply as {entries appended, reply}.
 */
export function loggedScript(name: string, body: string): RedisScript {
  return built(`${name}+log`, `-- elastic-session ${name}+log\n${LIBRARY}\n${LOG_ON}\n${LOG_LIBRARY}\n${body}`);
}

function built(name: string, lua: string): RedisScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}
