-- Makes run ARGV[2] the owner of turn ARGV[1] (KEYS[1]: meta). Returns
-- {status, previous owner, the session's settings}: status 0 when the turn
-- already has its reply, -1 when it was cut before it started, 1 when the
-- run owns it.
local turn = tonumber(ARGV[1])
if isdone(KEYS[1], turn) then return {0, '', ''} end
local prev = redis.call('HGET', KEYS[1], 'run:' .. turn) or ''
redis.call('HSET', KEYS[1], 'run:' .. turn, ARGV[2])
local cut = tonumber(redis.call('HGET', KEYS[1], 'cut') or '0')
if cut >= turn then return {-1, prev, ''} end
return {1, prev, redis.call('HGET', KEYS[1], 'settings') or ''}
