-- Appends a reply.delta if the run still owns the turn and it was not cut.
-- KEYS: log, meta, channel. ARGV: ttl, max events, the publish command
-- (PUBLISH, or SPUBLISH for sharded Pub/Sub), turn, run, body.
local turn = tonumber(ARGV[4])
if redis.call('HGET', KEYS[2], 'run:' .. turn) ~= ARGV[5] then return {0, ''} end
local cut = tonumber(redis.call('HGET', KEYS[2], 'cut') or '0')
if cut >= turn then return {-1, ''} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[6])
redis.call(ARGV[3], KEYS[3], '{"id":"' .. id .. '",' .. string.sub(ARGV[6], 2))
return {1, id}
