-- Stores a session's metadata (KEYS[1]: meta; ARGV[1]: their JSON).
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOSESSION') end
redis.call('HSET', KEYS[1], 'md', ARGV[1])
return 1
