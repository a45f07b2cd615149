-- Counts a follow of the session by replica ARGV[1] (ARGV[2] = 1) or its
-- end (-1), for fanout (fanout.lua). KEYS[1]: meta. The counts commute,
-- so a follow's end may reach Redis after the next follow's start.
-- ARGV[3] is the call's key: sent again after its reply was lost (the
-- Redis client retries a failed pipeline), the call is not counted twice
-- (wq: the latest count's key).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local f = 'f:' .. ARGV[1]
local got = redis.call('HMGET', KEYS[1], 'wq')
if got[1] == ARGV[3] then return 1 end
if redis.call('HINCRBY', KEYS[1], f, ARGV[2]) <= 0 then redis.call('HDEL', KEYS[1], f) end
if redis.call('HINCRBY', KEYS[1], 'fc', ARGV[2]) <= 0 then redis.call('HDEL', KEYS[1], 'fc') end
redis.call('HSET', KEYS[1], 'wq', ARGV[3])
return 1
