-- Appends a reply.delta if the run still owns the turn and it was not cut.
-- KEYS: log, meta, channel. ARGV: ttl, max events, the publish command
-- (PUBLISH, or SPUBLISH for sharded Pub/Sub), turn, run, body, the
-- caller's replica, the call's key (ARGV[8], see requested). Returns
-- {status, id, the id before it}.
local turn = tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[2], 'run:' .. turn, 'cut', 'lid', 'fc', 'f:' .. ARGV[7], 'dq')
local done = requested(f[6], ARGV[8])
if done then return {1, done.id, done.prev} end
if f[1] ~= ARGV[5] then return {0, '', ''} end
if tonumber(f[2] or '0') >= turn then return {-1, '', ''} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[6])
local prev = f[3] or '0-0'
redis.call('HSET', KEYS[2], 'lid', id, 'dq', ARGV[8] .. ' ' .. turn .. ' ' .. id .. ' ' .. prev)
fanout(ARGV[3], KEYS[3], f[4], f[5], ARGV[7], prev, {'{"id":"' .. id .. '",' .. string.sub(ARGV[6], 2)})
return {1, id, prev}
