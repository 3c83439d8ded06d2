package persistence

import "github.com/redis/go-redis/v9"

// The store's Lua scripts. Each runs atomically in Redis, so a change to a
// node, its expiry score, its service's version and the published message
// can never be seen apart. A service's hash key is built inside the reap
// script from the prefix (the keys it touches are only known there); the
// store therefore needs a single Redis (standalone or Sentinel), not a
// Redis Cluster.
//
// Node states are stored as
//
//	{<registration fields>,"registeredAt":<ms>,"expiresAt":<ms>}
//
// written by encodeNodeState, so the text up to and including
// `,"registeredAt":` is the registration part: a script tells a heartbeat
// (same registration) from a structural change by comparing that prefix.
//
// Every message carries the service's version after the change and the
// Redis epoch; see redis_sync.go.

// epochScript returns the epoch, creating it from ARGV[1] and Redis's clock
// when missing. KEYS[1] = epoch.
var epochScript = redis.NewScript(epochSource)

const epochSource = `
local e = redis.call('GET', KEYS[1])
if not e then
  local t = redis.call('TIME')
  e = ARGV[1] .. '-' .. t[1] .. '.' .. t[2]
  redis.call('SET', KEYS[1], e)
end
return e
`

// registerScript applies one registration or heartbeat.
//
// KEYS: 1 service hash, 2 versions, 3 services, 4 expiry, 5 epoch.
// ARGV: 1 service, 2 node, 3 registration part, 4 state, 5 expiresAt ms,
// 6 expiry member, 7 channel, 8 message head (completed here with the
// state, version and epoch), 9 epoch seed.
//
// Returns {kind, version, epoch}: kind 1 registered, 2 updated,
// 5 heartbeat (registry.EventKind values); version is the service's
// version after a structural change and its current version for a
// heartbeat.
var registerScript = redis.NewScript(registerSource)

const registerSource = `
local e = redis.call('GET', KEYS[5])
if not e then
  local t = redis.call('TIME')
  e = ARGV[9] .. '-' .. t[1] .. '.' .. t[2]
  redis.call('SET', KEYS[5], e)
end
local old = redis.call('HGET', KEYS[1], ARGV[2])
local p = ARGV[3]
if old and string.sub(old, 1, #p) == p then
  -- A heartbeat: its deadline only ever moves forward (GT), even when
  -- two instances' heartbeats of one node arrive out of order.
  if redis.call('ZADD', KEYS[4], 'GT', 'CH', ARGV[5], ARGV[6]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
  end
  local v = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
  return {5, tonumber(v), e}
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[1])
local v = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PUBLISH', ARGV[7], ARGV[8] .. ',"state":' .. ARGV[4] .. ',"version":' .. v .. ',"epoch":"' .. e .. '"}')
local kind = 1
if old then kind = 2 end
return {kind, v, e}
`

// seedScript writes back a node after Redis lost its data, unless the node
// is there already (another instance re-seeded it, or it registered again).
// KEYS and ARGV as registerScript (ARGV[9] unused). Returns 1 when written.
var seedScript = redis.NewScript(seedSource)

const seedSource = `
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 0 end
local e = redis.call('GET', KEYS[5]) or ''
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[1])
local v = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PUBLISH', ARGV[7], ARGV[8] .. ',"state":' .. ARGV[4] .. ',"version":' .. v .. ',"epoch":"' .. e .. '"}')
return 1
`

// deregisterScript removes one node.
//
// KEYS: 1 service hash, 2 versions, 3 services, 4 expiry, 5 epoch.
// ARGV: 1 service, 2 node, 3 expiry member, 4 channel, 5 message head.
//
// Returns {removed (0/1), version, epoch}.
var deregisterScript = redis.NewScript(deregisterSource)

const deregisterSource = `
local e = redis.call('GET', KEYS[5]) or ''
if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[3])
  return {0, 0, e}
end
redis.call('ZREM', KEYS[4], ARGV[3])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
local v = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PUBLISH', ARGV[4], ARGV[5] .. ',"version":' .. v .. ',"epoch":"' .. e .. '"}')
return {1, v, e}
`

// reapScript (fenced: KEYS[1..2] and ARGV[1..2] belong to the fence
// prelude) expires due nodes.
//
// KEYS: 3 expiry, 4 versions, 5 services, 6 epoch.
// ARGV: 3 now ms, 4 batch limit, 5 service hash key prefix, 6 channel,
// 7 origin (a JSON string), 8 publish time µs.
//
// Returns a flat array {service, node, version, …} of the removed nodes.
var reapScript = redis.NewScript(reapSource)

const reapSource = `
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local e = redis.call('GET', KEYS[6]) or ''
local out = {}
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[3], m)
  local i = string.find(m, '\n', 1, true)
  if i then
    local svc = string.sub(m, 1, i - 1)
    local node = string.sub(m, i + 1)
    local key = ARGV[5] .. svc .. '}'
    if redis.call('HDEL', key, node) == 1 then
      if redis.call('HLEN', key) == 0 then redis.call('SREM', KEYS[5], svc) end
      local v = redis.call('HINCRBY', KEYS[4], svc, 1)
      redis.call('PUBLISH', ARGV[6], '{"op":"remove","service":' .. cjson.encode(svc) ..
        ',"node":' .. cjson.encode(node) .. ',"kind":"expired","origin":' .. ARGV[7] ..
        ',"at":' .. ARGV[8] .. ',"version":' .. v .. ',"epoch":"' .. e .. '"}')
      out[#out + 1] = svc
      out[#out + 1] = node
      out[#out + 1] = v
    end
  end
end
return out
`

// configScript (fenced) replaces the shared runtime configuration.
//
// KEYS: 3 config, 4 config version. ARGV: 3 data, 4 channel, 5 origin
// (a JSON string), 6 publish time µs. Returns the new config version.
var configScript = redis.NewScript(configSource)

const configSource = `
redis.call('SET', KEYS[3], ARGV[3])
local v = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[4], '{"op":"config","version":' .. v .. ',"origin":' .. ARGV[5] .. ',"at":' .. ARGV[6] .. '}')
return v
`

// storeScripts are loaded again after a NOSCRIPT reply (a restarted or
// failed-over Redis has an empty script cache).
var storeScripts = []*redis.Script{epochScript, registerScript, seedScript, deregisterScript}

// scriptSources maps every script to its Lua source (go-redis does not
// expose it; SCRIPT LOAD and fenced runners need it).
var scriptSources = map[*redis.Script]string{
	epochScript:      epochSource,
	registerScript:   registerSource,
	seedScript:       seedSource,
	deregisterScript: deregisterSource,
	reapScript:       reapSource,
	configScript:     configSource,
	healthScript:     healthSource,
}
