-- Deletes a dead replica's job stream once it is empty.
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) return 1 end
return 0
