-- Appends an event that no turn's script stores (a key press), and
-- publishes it (fanout). KEYS: log, meta, channel. ARGV: ttl ms, max
-- events, the publish command (PUBLISH, or SPUBLISH for sharded Pub/Sub),
-- body, the caller's replica, the call's key (ARGV[6], see requested).
-- Returns {id, the id before it}.
local f = redis.call('HMGET', KEYS[2], 'th', 'lid', 'fc', 'f:' .. ARGV[5], 'eq')
if not f[1] then return redis.error_reply('NOSESSION') end
local done = requested(f[5], ARGV[6])
if done then return {done.id, done.prev} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[4])
for i = 1, 2 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
local prev = f[2] or '0-0'
redis.call('HSET', KEYS[2], 'lid', id, 'eq', ARGV[6] .. ' 0 ' .. id .. ' ' .. prev)
fanout(ARGV[3], KEYS[3], f[3], f[4], ARGV[5], prev, {'{"id":"' .. id .. '",' .. string.sub(ARGV[4], 2)})
return {id, prev}
