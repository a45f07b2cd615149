-- Appends a reply.delta if the run still owns the turn and it was not cut.
-- KEYS: log, meta, channel. ARGV: ttl, max events, the publish command
-- (PUBLISH, or SPUBLISH for sharded Pub/Sub), turn, run, body.
local turn = tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[2], 'run:' .. turn, 'cut')
if f[1] ~= ARGV[5] then return {0, ''} end
if tonumber(f[2] or '0') >= turn then return {-1, ''} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[6])
redis.call(ARGV[3], KEYS[3], '{"id":"' .. id .. '",' .. string.sub(ARGV[6], 2))
return {1, id}
