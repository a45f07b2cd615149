-- Appends a user item: the next turn number, a final transcript in the
-- log, the text in the history, published (fanout). With ARGV[9] = '1' the
-- turn also gets its response (the meta hash's 'resp' is the latest turn
-- that has one). KEYS: log, hist, meta, channel. ARGV: ttl ms, max events,
-- max history, the body before the turn number, the body after it, text,
-- the publish command, max turns, respond, the caller's replica, the
-- call's key (ARGV[11], see requested). Returns {turn, id, the id before
-- it}.
local f = redis.call('HMGET', KEYS[3], 'turn', 'xp', 'lid', 'fc', 'f:' .. ARGV[10], 'rq')
if not f[1] then return redis.error_reply('NOSESSION') end
local done = requested(f[6], ARGV[11])
if done then return {done.turn, done.id, done.prev} end
if tonumber(f[1]) >= tonumber(ARGV[8]) then return redis.error_reply('TURNLIMIT') end
local turn = tonumber(f[1]) + 1
local body = ARGV[4] .. turn .. ARGV[5]
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', body)
local prev = f[3] or '0-0'
local set = {'turn', turn, 'lid', id, 'rq', ARGV[11] .. ' ' .. turn .. ' ' .. id .. ' ' .. prev}
if ARGV[9] == '1' then
  table.insert(set, 'resp')
  table.insert(set, turn)
end
local xp = expiry(id, f[2], ARGV[1])
if xp then
  table.insert(set, 'xp')
  table.insert(set, xp)
end
redis.call('HSET', KEYS[3], unpack(set))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', 'user', 'c', ARGV[6], 'n', turn)
if xp then refresh(KEYS, ARGV[1]) end
fanout(ARGV[7], KEYS[4], f[4], f[5], ARGV[10], prev, {'{"id":"' .. id .. '",' .. string.sub(body, 2)})
return {turn, id, prev}
