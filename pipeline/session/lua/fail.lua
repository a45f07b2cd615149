-- Marks a turn finished without a reply (KEYS[1]: meta; ARGV: turn, run,
-- the call's key). Sent again after its reply was lost, the call answers
-- 1 as its first run did (fq), so that the caller still tells the client.
local turn = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'run:' .. turn, 'fq')
if ranBefore(f[2], ARGV[3]) then return 1 end
if f[1] ~= ARGV[2] then return 0 end
if not isdone(KEYS[1], turn) then markdone(KEYS[1], turn) end
redis.call('HSET', KEYS[1], 'fq', ARGV[3] .. ' 1')
redis.call('HDEL', KEYS[1], 'run:' .. turn)
return 1
