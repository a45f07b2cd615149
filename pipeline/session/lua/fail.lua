-- Marks a turn finished without a reply (KEYS[1]: meta).
local turn = tonumber(ARGV[1])
if redis.call('HGET', KEYS[1], 'run:' .. turn) ~= ARGV[2] then return 0 end
if not isdone(KEYS[1], turn) then markdone(KEYS[1], turn) end
redis.call('HDEL', KEYS[1], 'run:' .. turn)
return 1
