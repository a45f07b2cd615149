-- Appends a user item: the next turn number, a final transcript in the
-- log, the text in the history, published. With ARGV[9] = '1' the turn
-- also gets its response (the meta hash's 'resp' is the latest turn that
-- has one). KEYS: log, hist, meta, channel. ARGV: ttl ms, max events, max history,
-- the body before the turn number, the body after it, text, the publish command, max
-- turns, respond.
local last = redis.call('HGET', KEYS[3], 'turn')
if not last then return redis.error_reply('NOSESSION') end
if tonumber(last) >= tonumber(ARGV[8]) then return redis.error_reply('TURNLIMIT') end
local turn = tonumber(last) + 1
if ARGV[9] == '1' then
  redis.call('HSET', KEYS[3], 'turn', turn, 'resp', turn)
else
  redis.call('HSET', KEYS[3], 'turn', turn)
end
local body = ARGV[4] .. turn .. ARGV[5]
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', body)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', 'user', 'c', ARGV[6], 'n', turn)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
redis.call(ARGV[7], KEYS[4], '{"id":"' .. id .. '",' .. string.sub(body, 2))
return {turn, id}
