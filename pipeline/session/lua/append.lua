-- Appends an event that no turn's script stores (a key press), and
-- publishes it. KEYS: log, meta, channel. ARGV: ttl ms, max events, the
-- publish command (PUBLISH, or SPUBLISH for sharded Pub/Sub), body.
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('NOSESSION') end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[4])
for i = 1, 2 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
redis.call(ARGV[3], KEYS[3], '{"id":"' .. id .. '",' .. string.sub(ARGV[4], 2))
return id
