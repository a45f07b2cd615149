-- Gives a response a turn: the latest turn, if it has none yet (its items
-- were appended without one), else a new turn with no item of its own.
-- KEYS[1]: meta. ARGV[1]: max turns.
local last = redis.call('HGET', KEYS[1], 'turn')
if not last then return redis.error_reply('NOSESSION') end
local turn = tonumber(last)
if tonumber(redis.call('HGET', KEYS[1], 'resp') or '0') >= turn then
  if turn >= tonumber(ARGV[1]) then return redis.error_reply('TURNLIMIT') end
  turn = redis.call('HINCRBY', KEYS[1], 'turn', 1)
end
redis.call('HSET', KEYS[1], 'resp', turn)
return turn
