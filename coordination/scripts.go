package coordination

import "github.com/redis/go-redis/v9"

// acquireScript takes the lease if nobody holds it.
//
//	KEYS[1] lease key, KEYS[2] fence key
//	ARGV[1] the lease value up to its token: `{"instanceId":…,"token":`
//	ARGV[2] lease TTL in ms
//	ARGV[3] the highest token the caller has seen
//
// Taken: {1, value, token}; the token is INCR of the fence counter after the
// counter was raised to at least max(ARGV[3], Redis's clock in ms - 1), so a
// token is never below one the caller saw, nor below the time in ms, even
// after Redis restarted empty. The value ends with the token, so the token
// in the lease value equals the fence counter at acquisition.
// Held: {0, value, PTTL in ms}.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  return {0, cur, redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local low = math.max(tonumber(ARGV[3]), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - 1)
local fence = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if fence < low then
  redis.call('SET', KEYS[2], string.format('%d', low))
end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. string.format('%d', token) .. '}'
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value, token}
`)

// renewScript extends the lease only if it still holds the caller's value.
//
//	KEYS[1] lease key; ARGV[1] the caller's lease value, ARGV[2] TTL in ms
//
// Returns 1 when renewed, 0 when the lease is gone or someone else's.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript deletes the lease only if it holds the caller's value
// (ARGV[1], "" when the caller is not the leader) and removes the caller's
// membership record.
//
//	KEYS[1] lease key, KEYS[2] members hash; ARGV[1] value, ARGV[2] instance id
var releaseScript = redis.NewScript(`
local released = 0
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  released = redis.call('DEL', KEYS[1])
end
redis.call('HDEL', KEYS[2], ARGV[2])
return released
`)

// membersScript returns the lease value ("" when none) followed by the live
// membership records, deleting records that expired before ARGV[1] (ms) or
// cannot be read.
//
//	KEYS[1] members hash, KEYS[2] lease key; ARGV[1] now in ms
var membersScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local out = {redis.call('GET', KEYS[2]) or ''}
for i = 1, #all, 2 do
  local ok, rec = pcall(cjson.decode, all[i + 1])
  if ok and type(rec) == 'table' and tonumber(rec.expiresAt) and tonumber(rec.expiresAt) >= now then
    out[#out + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
`)

// fencePrelude starts every script built by FencedScript. It runs before
// the caller's body, in the same script, so nothing can change the lease
// between the check and the write.
const fencePrelude = `-- coordination fence prelude: KEYS[1] lease, KEYS[2] fence, ARGV[1] lease value, ARGV[2] token
if redis.call('GET', KEYS[2]) ~= ARGV[2] or redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED')
end
`
