-- Stores the result of call ARGV[5], if it waits for one from runner
-- ARGV[7] ('client' or 'server'): the tool's message in the history, and
-- for a server's tool the tool.done event (ARGV[8], the body; '' for
-- none). Returns {0} for a call that is not waiting for that runner,
-- {1, turn} while the turn waits for more, {2, turn, job's place} when
-- this was its last result. KEYS: log, hist, meta, channel. ARGV: 1 ttl, 2 max
-- events, 3 max history, 4 the publish command, 5 call id, 6 output, 7 runner, 8 body,
-- 9 the caller's replica (fanout), 10 the call's key. With a tool.done stored, a 1 or 2 reply
-- also has its id and the id before it, at 4 and 5.
-- Sent again after its reply was lost (the Redis client retries a failed
-- pipeline), the call answers as its first run did but for the event's
-- ids (oq: the latest result's key, ARGV[10], status, turn and job's
-- place), not as a result no call waits for; the caller's sockets read
-- the log for its tool.done.
local key = ARGV[10]
local oq = redis.call('HGET', KEYS[3], 'oq')
local again = ranBefore(oq, key)
if again then
  local st, t, job = string.match(again, '^(%d+) (%d+) ?(.*)$')
  if st then return {tonumber(st), tonumber(t), job, '', ''} end
end
local function kept(r)
  redis.call('HSET', KEYS[3], 'oq', key .. ' ' .. r[1] .. ' ' .. r[2] .. ' ' .. r[3])
  return r
end
local rec = redis.call('HGET', KEYS[3], 'tc:' .. ARGV[5])
if not rec then return {0} end
local turn, by = string.match(rec, '^(%d+) (%a+)')
if by ~= ARGV[7] then return {0} end
redis.call('HDEL', KEYS[3], 'tc:' .. ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', 'tool', 'i', ARGV[5], 'c', ARGV[6], 'n', turn)
local id, prev = '', ''
if ARGV[8] ~= '' then
  local m = redis.call('HMGET', KEYS[3], 'lid', 'fc', 'f:' .. ARGV[9])
  prev = m[1] or '0-0'
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[8])
  redis.call('HSET', KEYS[3], 'lid', id)
  fanout(ARGV[4], KEYS[4], m[2], m[3], ARGV[9], prev, {'{"id":"' .. id .. '",' .. string.sub(ARGV[8], 2)})
end
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
if redis.call('HINCRBY', KEYS[3], 'tp:' .. turn, -1) > 0 then return kept({1, tonumber(turn), '', id, prev}) end
local job = redis.call('HGET', KEYS[3], 'tj:' .. turn) or ''
redis.call('HDEL', KEYS[3], 'tp:' .. turn, 'tj:' .. turn)
return kept({2, tonumber(turn), job, id, prev})
