-- Interrupts every turn of the session up to the latest (KEYS[1]: meta).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('HGET', KEYS[1], 'turn') or '0'
redis.call('HSET', KEYS[1], 'cut', t)
return tonumber(t)
