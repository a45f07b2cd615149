-- Gives a response a turn: the latest turn, if it has none yet (its items
-- were appended without one), else a new turn with no item of its own.
-- KEYS[1]: meta. ARGV[1]: max turns, ARGV[2]: the call's key (see
-- requested: a call sent again must not take a second turn).
local f = redis.call('HMGET', KEYS[1], 'turn', 'resp', 'rq')
if not f[1] then return redis.error_reply('NOSESSION') end
local done = requested(f[3], ARGV[2])
if done then return done.turn end
local turn = tonumber(f[1])
local rq = ARGV[2] .. ' '
if tonumber(f[2] or '0') >= turn then
  if turn >= tonumber(ARGV[1]) then return redis.error_reply('TURNLIMIT') end
  turn = turn + 1
  redis.call('HSET', KEYS[1], 'turn', turn, 'resp', turn, 'rq', rq .. turn .. ' - -')
else
  redis.call('HSET', KEYS[1], 'resp', turn, 'rq', rq .. turn .. ' - -')
end
return turn
