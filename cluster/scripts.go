package cluster

import "github.com/redis/go-redis/v9"

// The Lua scripts that make each change of the directory atomic. Every key
// a script touches shares the hash tag {domain}, so the scripts are valid
// on a Redis Cluster too, though some build key names from what they read
// (the owned set of an entry's replica, a user's hash from an owned set's
// member): Redis Cluster allows that within one slot. An owned set's
// member is user NUL resource. Entries are JSON (entryJSON); the scripts
// read "replica" and "stream" with cjson. Times come from Redis's TIME,
// so that the replicas' clocks never meet.

// bindScript: KEYS u:<user>, own:<self>, online, replica:<self>;
// ARGV user, resource, entry JSON, max, prefix, self.
// Answers {"ok", old JSON or ""}, {"max"} or {"nolease"}.
var bindScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[4]) == 0 then return {'nolease'} end
local member = ARGV[1] .. '\0' .. ARGV[2]
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old then
  local ok, o = pcall(cjson.decode, old)
  if ok and type(o) == 'table' and type(o.replica) == 'string' and o.replica ~= ARGV[6] then
    redis.call('SREM', ARGV[5] .. 'own:' .. o.replica, member)
  end
else
  local max = tonumber(ARGV[4])
  if max > 0 and redis.call('HLEN', KEYS[1]) >= max then return {'max'} end
  old = ''
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], member)
redis.call('SADD', KEYS[3], ARGV[1])
return {'ok', old}
`)

// updateScript: KEYS u:<user>, replica:<self>;
// ARGV resource, stream, priority, available ("1"/"0"), presence.
// Answers 1 (updated), 0 (no entry of that stream) or -1 (no lease).
var updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local ok, e = pcall(cjson.decode, cur)
if not ok or type(e) ~= 'table' or e.stream ~= ARGV[2] then return 0 end
e.priority = tonumber(ARGV[3])
e.available = ARGV[4] == '1'
if ARGV[5] == '' then e.presence = nil else e.presence = ARGV[5] end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
return 1
`)

// unbindScript: KEYS u:<user>, online, own:<self>;
// ARGV user, resource, stream, prefix, self.
// Answers 1 (removed) or 0 (no entry of that stream). A member of this
// replica's owned set that no longer names an entry of it goes too.
var unbindScript = redis.NewScript(`
local member = ARGV[1] .. '\0' .. ARGV[2]
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if not cur then
  redis.call('SREM', KEYS[3], member)
  return 0
end
local ok, e = pcall(cjson.decode, cur)
if not ok or type(e) ~= 'table' then return 0 end
if e.stream ~= ARGV[3] then
  if e.replica ~= ARGV[5] then redis.call('SREM', KEYS[3], member) end
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[2])
if type(e.replica) == 'string' then redis.call('SREM', ARGV[4] .. 'own:' .. e.replica, member) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
`)

// registerScript: KEYS replica:<id>, replicas;
// ARGV lease value, lease ms, id, "nx" (refuse a live lease) or "".
// Writes the lease key and its expiry in the zset; answers 1, or 0 when
// "nx" met a live lease.
var registerScript = redis.NewScript(`
if ARGV[4] == 'nx' then
  if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2]), ARGV[3])
return 1
`)

// renewScript: KEYS replica:<id>, replicas; ARGV lease ms, id.
// Extends a lease that exists (1) and its expiry in the zset; 0 when the
// lease key is gone.
var renewScript = redis.NewScript(`
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1]), ARGV[2])
return 1
`)

// deadScript: KEYS replicas; ARGV prefix, self.
// Answers the replicas whose expiry in the zset has passed and whose
// lease key is gone (this one excepted).
var deadScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if id ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'replica:' .. id) == 0 then
    out[#out + 1] = id
  end
end
return out
`)

// reapScript: KEYS own:<id>, replicas, online, replica:<id>;
// ARGV prefix, id, count.
// Takes up to count members of the replica's owned set and removes their
// entries that still name that replica (a user without entries leaves the
// online set); when the owned set is empty it removes the replica from
// the zset. Answers {1 (done) or 0 (more), removed entries' JSON...},
// {-1} when the replica's lease exists (it is alive: nothing is done), or
// {-2} when it is not in the zset (reaped already).
var reapScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[4]) == 1 then return {-1} end
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then return {-2} end
local out = {0}
for _, m in ipairs(redis.call('SPOP', KEYS[1], tonumber(ARGV[3]))) do
  local i = string.find(m, '\0', 1, true)
  if i then
    local user = string.sub(m, 1, i - 1)
    local res = string.sub(m, i + 1)
    local key = ARGV[1] .. 'u:' .. user
    local cur = redis.call('HGET', key, res)
    if cur then
      local ok, e = pcall(cjson.decode, cur)
      if ok and type(e) == 'table' and e.replica == ARGV[2] then
        redis.call('HDEL', key, res)
        out[#out + 1] = cur
        if redis.call('HLEN', key) == 0 then redis.call('SREM', KEYS[3], user) end
      end
    end
  end
end
if redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  out[1] = 1
end
return out
`)

// pruneScript: KEYS own:<self>, online, replica:<self>;
// ARGV prefix, self, members....
// Removes the given members from this replica's owned set, and their
// entries where they still name this replica (a recovery's stale
// sessions). Answers how many entries it removed, or -1 without a lease.
var pruneScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local n = 0
for i = 3, #ARGV do
  local m = ARGV[i]
  redis.call('SREM', KEYS[1], m)
  local p = string.find(m, '\0', 1, true)
  if p then
    local user = string.sub(m, 1, p - 1)
    local res = string.sub(m, p + 1)
    local key = ARGV[1] .. 'u:' .. user
    local cur = redis.call('HGET', key, res)
    if cur then
      local ok, e = pcall(cjson.decode, cur)
      if ok and type(e) == 'table' and e.replica == ARGV[2] then
        redis.call('HDEL', key, res)
        n = n + 1
        if redis.call('HLEN', key) == 0 then redis.call('SREM', KEYS[2], user) end
      end
    end
  end
end
return n
`)

// restoreScript: KEYS own:<self>, online, replica:<self>;
// ARGV prefix, self, then per entry: user, resource, stream, entry JSON.
// Writes each entry back unless the resource is held by a session of
// another replica (which is newer: it bound while this replica was
// away). Answers {0, 1-based indexes of the entries not written}, or {-1}
// without a lease.
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1} end
local lost = {0}
local k = 0
for i = 3, #ARGV, 4 do
  k = k + 1
  local user, res, stream, js = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local member = user .. '\0' .. res
  local key = ARGV[1] .. 'u:' .. user
  local cur = redis.call('HGET', key, res)
  local write = true
  if cur then
    local ok, e = pcall(cjson.decode, cur)
    if ok and type(e) == 'table' and e.replica ~= ARGV[2] and e.stream ~= stream then write = false end
  end
  if write then
    redis.call('HSET', key, res, js)
    redis.call('SADD', KEYS[1], member)
    redis.call('SADD', KEYS[2], user)
  else
    redis.call('SREM', KEYS[1], member)
    lost[#lost + 1] = k
  end
end
return lost
`)

// onlineScript: KEYS replicas, online; ARGV prefix.
// Answers {online users, entries}: the entries are counted in the owned
// sets of the replicas in the zset.
var onlineScript = redis.NewScript(`
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('SCARD', ARGV[1] .. 'own:' .. id)
end
return {redis.call('SCARD', KEYS[2]), n}
`)
