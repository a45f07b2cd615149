-- Stores a tool step of a turn's reply, if run ARGV[6] still owns turn
-- ARGV[5] and it was not cut: the assistant's message with its calls in
-- the history; the calls' tool.call events in the log, published; the
-- calls still to be answered in the meta hash (tc:<call id> = record,
-- tp:<turn> = how many, tj:<turn> = the job's place, ARGV[9]); and the
-- results known at once (a tool not offered, arguments that are not
-- JSON). The run gives the turn up: the next step starts afresh. Returns
-- 1, 0 (another run owns the turn, or it has its reply) or -1 (cut).
-- KEYS: log, hist, meta, channel. ARGV: 1 ttl, 2 max events, 3 max history,
-- 4 the publish command, 5 turn, 6 run, 7 the step's text, 8 the calls (JSON), 9 the
-- job's place, then: the number of events and their bodies; the number of
-- pending calls and (id, record) pairs; the number of results and (id,
-- output) pairs; then '1' when the step ends the turn: the run keeps
-- it (its reply.done comes with FinishReply) and no job waits (no tp, tj);
-- then the caller's replica (fanout) and, last, the call's key. With 1 it
-- also returns the id before the events and their ids: {1, prev, ids...}
-- (1 alone for a call sent again).
local turn = tonumber(ARGV[5])
local key, replica = ARGV[#ARGV], ARGV[#ARGV - 1]
-- Sent again after its reply was lost (the Redis client retries a failed
-- pipeline), the call answers 1 alone (tq: the latest stored step's key),
-- not as a step of a turn another run took; the caller's sockets read the
-- log for its events.
if redis.call('HGET', KEYS[3], 'tq') == key then return 1 end
if redis.call('HGET', KEYS[3], 'run:' .. turn) ~= ARGV[6] then return 0 end
if isdone(KEYS[3], turn) then return 0 end
if tonumber(redis.call('HGET', KEYS[3], 'cut') or '0') >= turn then return -1 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', 'assistant', 'c', ARGV[7], 'tc', ARGV[8], 'n', turn)
local i = 10
local out = {} -- one message, a line an event (finish.lua)
local m = redis.call('HMGET', KEYS[3], 'lid', 'fc', 'f:' .. replica)
local prev = m[1] or '0-0'
local ret = {1, prev}
for k = 1, tonumber(ARGV[i]) do
  local e = ARGV[i + k]
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', e)
  out[k] = '{"id":"' .. id .. '",' .. string.sub(e, 2)
  ret[k + 2] = id
end
if #out > 0 then
  redis.call('HSET', KEYS[3], 'lid', ret[#ret])
  fanout(ARGV[4], KEYS[4], m[2], m[3], replica, prev, out)
end
i = i + tonumber(ARGV[i]) + 1
local pending = tonumber(ARGV[i])
for k = 1, pending do
  redis.call('HSET', KEYS[3], 'tc:' .. ARGV[i + 2 * k - 1], ARGV[i + 2 * k])
end
i = i + 2 * pending + 1
local results = tonumber(ARGV[i])
for k = 1, results do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', 'tool', 'i', ARGV[i + 2 * k - 1], 'c', ARGV[i + 2 * k], 'n', turn)
end
local ends = ARGV[i + 2 * results + 1] == '1'
if pending > 0 and not ends then
  redis.call('HSET', KEYS[3], 'tp:' .. turn, pending, 'tj:' .. turn, ARGV[9])
end
redis.call('HINCRBY', KEYS[3], 'ts:' .. turn, 1)
if not ends then redis.call('HDEL', KEYS[3], 'run:' .. turn) end
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
redis.call('HSET', KEYS[3], 'tq', key)
return ret
