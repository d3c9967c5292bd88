"""The Lua scripts behind `RedisState`: every read-modify-write is one atomic script.

Keys (prefix `P` = `tether:<namespace>:`): `P e:<id>` a hash per entry (absent
field = None), `P all` (zset id → enqueue sequence), `P waiting` (zset of
queued/retrying ids → sequence), `P leases` (zset of running ids → lease end),
`P log:<id>:<attempt>` (the attempt's shipped output) and `P logat:<id>:<attempt>`
(when output last arrived), `P counters` (a hash: `retries`, `lost_workers`) and
`P workers` (zset of `<worker>\t<queue>\t<tags>` → end of its presence lease), and
the per-queue index that `STATS` reads in O(queues): `P queues` (set of queue names),
`P qwait:<queue>` (zset of waiting ids → since when they wait), `P qrun:<queue>` (set
of running ids), `P qindex` (set once the index covers every entry). An entry's
`requires` field holds its requirements joined by commas; a claim takes only entries
whose requirements are all among the worker's tags (passed as a JSON list). Every
transition after a claim is fenced by (state running, attempt, worker). Numbers travel
as the strings Python wrote.
"""

from __future__ import annotations

# Shared helpers, prepended to every script.
_PRELUDE = """
local P = ARGV[1]
local function ekey(id) return P .. 'e:' .. id end
local function field(id, name) return redis.call('HGET', ekey(id), name) end
local function waiting(state) return state == 'queued' or state == 'retrying' end
-- The per-queue index that STATS reads: qwait:<queue> (zset id -> waiting since) and
-- qrun:<queue> (set of running ids); `queues` names every queue ever used.
local function queue_of(id) return redis.call('HGET', ekey(id), 'queue') or 'default' end
local function now_waiting(id, since)
  local queue = queue_of(id)
  redis.call('SADD', P .. 'queues', queue)
  redis.call('ZADD', P .. 'qwait:' .. queue, since, id)
end
local function not_waiting(id) redis.call('ZREM', P .. 'qwait:' .. queue_of(id), id) end
local function now_running(id)
  local queue = queue_of(id)
  redis.call('SADD', P .. 'queues', queue)
  redis.call('SADD', P .. 'qrun:' .. queue, id)
end
local function not_running(id) redis.call('SREM', P .. 'qrun:' .. queue_of(id), id) end
local function take(id, worker, now, lease_until)
  local key = ekey(id)
  redis.call('HINCRBY', key, 'attempt', 1)
  redis.call('HSET', key, 'state', 'running', 'worker', worker, 'lease_until', lease_until,
             'heartbeat_at', now, 'started_at', now)
  redis.call('HDEL', key, 'ended_at')
  redis.call('ZREM', P .. 'waiting', id)
  not_waiting(id)
  redis.call('ZADD', P .. 'leases', lease_until, id)
  now_running(id)
  return redis.call('HGETALL', key)
end
local function tagset(json)
  local tags = {}
  for _, tag in ipairs(cjson.decode(json)) do tags[tag] = true end
  return tags
end
local function runnable(requires, tags)
  for tag in string.gmatch(requires or '', '[^,]+') do
    if not tags[tag] then return false end
  end
  return true
end
"""

# ARGV: P worker now lease_until json(tags) queue...
CLAIM = _PRELUDE + """
local worker, now, lease_until, tags = ARGV[2], tonumber(ARGV[3]), ARGV[4], tagset(ARGV[5])
local wanted = {}
for i = 6, #ARGV do wanted[ARGV[i]] = true end
local best, best_priority, best_seq
for _, id in ipairs(redis.call('ZRANGE', P .. 'waiting', 0, -1)) do
  local v = redis.call('HMGET', ekey(id), 'queue', 'priority', 'not_before', 'seq', 'state',
                       'requires')
  if wanted[v[1]] and waiting(v[5]) and tonumber(v[3] or '0') <= now and runnable(v[6], tags)
  then
    local priority, seq = tonumber(v[2]), tonumber(v[4])
    if best == nil or priority > best_priority or (priority == best_priority and seq < best_seq)
    then
      best, best_priority, best_seq = id, priority, seq
    end
  end
end
if best == nil then return false end
return take(best, worker, ARGV[3], lease_until)
"""

# ARGV: P id worker now lease_until json(tags)
START = _PRELUDE + """
local id, worker, now, lease_until = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local v = redis.call('HMGET', ekey(id), 'state', 'not_before', 'requires')
if not v[1] or not waiting(v[1]) or tonumber(v[2] or '0') > tonumber(now)
   or not runnable(v[3], tagset(ARGV[6])) then
  return false
end
return take(id, worker, now, lease_until)
"""

# ARGV: P id attempt worker now lease_until -> {owned, kill_requested}
HEARTBEAT = _PRELUDE + """
local id, attempt, worker, now, lease_until = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local v = redis.call('HMGET', ekey(id), 'state', 'attempt', 'worker', 'kill_requested')
local owned = 0
if v[1] == 'running' and v[2] == attempt and v[3] == worker then
  redis.call('HSET', ekey(id), 'lease_until', lease_until, 'heartbeat_at', now)
  redis.call('ZADD', P .. 'leases', lease_until, id)
  owned = 1
end
local kill = 0
if v[4] == '1' then kill = 1 end
return {owned, kill}
"""

# ARGV: P id attempt worker token json(values) json(deleted fields) -> 1 | 0
FINISH = _PRELUDE + """
local id, attempt, worker, token = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = ekey(id)
local v = redis.call('HMGET', key, 'state', 'attempt', 'worker', 'finish_token')
if v[4] == token then return 1 end
if v[1] ~= 'running' or v[2] ~= attempt or v[3] ~= worker then return 0 end
local values = cjson.decode(ARGV[6])
local flat = {}
for name, value in pairs(values) do
  flat[#flat + 1] = name
  flat[#flat + 1] = value
end
flat[#flat + 1] = 'finish_token'
flat[#flat + 1] = token
redis.call('HSET', key, unpack(flat))
local gone = cjson.decode(ARGV[7])
if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
redis.call('ZREM', P .. 'leases', id)
not_running(id)
if waiting(values['state']) then
  redis.call('ZADD', P .. 'waiting', redis.call('HGET', key, 'seq'), id)
  now_waiting(id, math.max(tonumber(values['ended_at']), tonumber(values['not_before'] or '0')))
end
if values['state'] == 'retrying' then redis.call('HINCRBY', P .. 'counters', 'retries', 1) end
return 1
"""

# ARGV: P now max_lost -> ids changed
REQUEUE_EXPIRED = _PRELUDE + """
local now, max_lost = ARGV[2], tonumber(ARGV[3])
local changed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(' .. now)) do
  local key = ekey(id)
  local v = redis.call('HMGET', key, 'state', 'lease_until', 'lost', 'worker', 'attempt')
  if v[1] == 'running' and tonumber(v[2]) < tonumber(now) then
    local lost = tonumber(v[3] or '0') + 1
    local gone = 'worker ' .. (v[4] or '?') .. ' lost (lease expired) in attempt ' .. v[5]
    local state = 'queued'
    if lost >= max_lost then
      state = 'failed'
      gone = gone .. '; gave up after ' .. lost .. ' lost workers'
    end
    redis.call('HSET', key, 'state', state, 'lost', lost, 'error', gone, 'ended_at', now,
               'not_before', '0')
    redis.call('HDEL', key, 'lease_until')
    not_running(id)
    if state == 'queued' then
      redis.call('ZADD', P .. 'waiting', redis.call('HGET', key, 'seq'), id)
      now_waiting(id, now)
    end
    changed[#changed + 1] = id
  end
  redis.call('ZREM', P .. 'leases', id)
end
if #changed > 0 then redis.call('HINCRBY', P .. 'counters', 'lost_workers', #changed) end
return changed
"""

# ARGV: P now -> JSON {queues: {q: [waiting, running, waiting_since]}, workers: [member...],
#                      retries, lost_workers}
# Waiting since: enqueued (or queued again), requeued, or the end of its retry delay.
STATS = _PRELUDE + """
local now = ARGV[2]
if redis.call('EXISTS', P .. 'qindex') == 0 then  -- entries from before the per-queue index
  for _, id in ipairs(redis.call('ZRANGE', P .. 'waiting', 0, -1)) do
    local v = redis.call('HMGET', ekey(id), 'state', 'created_at', 'ended_at', 'not_before')
    if waiting(v[1]) then
      now_waiting(id, math.max(tonumber(v[3] or v[2]), tonumber(v[4] or '0')))
    end
  end
  for _, id in ipairs(redis.call('ZRANGE', P .. 'leases', 0, -1)) do
    if field(id, 'state') == 'running' then now_running(id) end
  end
  redis.call('SET', P .. 'qindex', '1')
end
local queues = {}
for _, queue in ipairs(redis.call('SMEMBERS', P .. 'queues')) do
  local first = redis.call('ZRANGE', P .. 'qwait:' .. queue, 0, 0, 'WITHSCORES')
  queues[queue] = {redis.call('ZCARD', P .. 'qwait:' .. queue),
                   redis.call('SCARD', P .. 'qrun:' .. queue),
                   first[2] and tonumber(first[2]) or false}
end
local counters = redis.call('HMGET', P .. 'counters', 'retries', 'lost_workers')
return cjson.encode({
  queues = queues, workers = redis.call('ZRANGEBYSCORE', P .. 'workers', now, '+inf'),
  retries = tonumber(counters[1] or '0'), lost_workers = tonumber(counters[2] or '0'),
})
"""

# ARGV: P id now -> 'cancel' | 'kill' | 'missing' | <the final state it is in>
REQUEST_KILL = _PRELUDE + """
local id, now = ARGV[2], ARGV[3]
local state = field(id, 'state')
if not state then return 'missing' end
if waiting(state) then
  redis.call('HSET', ekey(id), 'state', 'cancelled', 'ended_at', now,
             'error', 'cancelled before it ran')
  redis.call('ZREM', P .. 'waiting', id)
  not_waiting(id)
  return 'cancel'
end
if state == 'running' then
  redis.call('HSET', ekey(id), 'kill_requested', '1')
  return 'kill'
end
return state
"""

# ARGV: P id... -> {'ok'} | {'missing', id} | {'running', id}
REMOVE = _PRELUDE + """
for i = 2, #ARGV do
  local state = field(ARGV[i], 'state')
  if not state then return {'missing', ARGV[i]} end
  if state == 'running' then return {'running', ARGV[i]} end
end
for i = 2, #ARGV do
  local id = ARGV[i]
  local attempts = tonumber(field(id, 'attempt') or '0')
  for a = 0, attempts do
    redis.call('DEL', P .. 'log:' .. id .. ':' .. a, P .. 'logat:' .. id .. ':' .. a)
  end
  not_waiting(id)
  redis.call('DEL', ekey(id))
  redis.call('ZREM', P .. 'all', id)
  redis.call('ZREM', P .. 'waiting', id)
  redis.call('ZREM', P .. 'leases', id)
end
return {'ok'}
"""

# ARGV: P id name run_id now -> 'ok' | 'missing' | <the state it is in>
RETRY = _PRELUDE + """
local id, name, run_id, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = ekey(id)
local state = field(id, 'state')
if not state then return 'missing' end
if state ~= 'failed' and state ~= 'cancelled' then return state end
redis.call('HSET', key, 'state', 'queued', 'name', name, 'run_id', run_id, 'attempt', '0',
           'lost', '0', 'stage_failures', '{}', 'not_before', '0', 'kill_requested', '0',
           'created_at', now, 'dispatches', '0')
redis.call('HDEL', key, 'worker', 'started_at', 'ended_at', 'status', 'result_ref', 'error',
           'lease_until', 'heartbeat_at', 'finish_token')
redis.call('ZADD', P .. 'waiting', redis.call('HGET', key, 'seq'), id)
now_waiting(id, now)
return 'ok'
"""

# ARGV: P id attempt now cap data -> new length (the store keeps at most `cap` bytes)
APPEND_LOG = _PRELUDE + """
local key = P .. 'log:' .. ARGV[2] .. ':' .. ARGV[3]
local cap = tonumber(ARGV[5])
local length = redis.call('STRLEN', key)
redis.call('SET', P .. 'logat:' .. ARGV[2] .. ':' .. ARGV[3], ARGV[4])
if length >= cap then return length end
local data = ARGV[6]
if length + #data > cap then
  data = string.sub(data, 1, cap - length) ..
    '\\n[tether: log capped in the queue store; the whole log is in the experiment record]\\n'
end
return redis.call('APPEND', key, data)
"""

# Schedules: `P firing:<schedule>` is a hash (occurrence worker claimed_at result) of its
# last claimed occurrence; `P schedules` is the set of schedule names that have one.
# ARGV: P schedule occurrence worker now -> 1 (claimed) | 0 (not newer than the last)
CLAIM_OCCURRENCE = """
local P, schedule, occurrence = ARGV[1], ARGV[2], ARGV[3]
local key = P .. 'firing:' .. schedule
local last = redis.call('HGET', key, 'occurrence')
if last and tonumber(last) >= tonumber(occurrence) then return 0 end
redis.call('HSET', key, 'occurrence', occurrence, 'worker', ARGV[4], 'claimed_at', ARGV[5],
           'result', '')
redis.call('SADD', P .. 'schedules', schedule)
return 1
"""

# ARGV: P schedule occurrence result (only if that occurrence is still the last claimed)
NOTE_FIRED = """
local key = ARGV[1] .. 'firing:' .. ARGV[2]
if redis.call('HGET', key, 'occurrence') == ARGV[3] then
  redis.call('HSET', key, 'result', ARGV[4])
end
return 1
"""
