-- Appends a user turn that gets a response and makes run ARGV[9] its
-- owner at once, for a turn that goes straight to a free slot: item.lua
-- and start.lua in one script (each script call costs Redis more than the
-- commands it runs). KEYS: log, hist, meta, channel, and the replica's
-- jobs hash when the turn's job is stored here (not in a cluster, where
-- it is in another slot). ARGV: as item.lua's
-- (ttl ms, max events, max history, the body before the turn number, the
-- body after it, text, the publish command, max turns), then the run
-- (ARGV[9]), the history window as start.lua's: max entries, the last id
-- held, the edit count it was read at; then the caller's replica
-- (ARGV[13]) and the call's key (ARGV[14], see requested); with KEYS[5],
-- the job's field and record (ARGV[15], ARGV[16]). Returns {turn,
-- event id, settings, edit count, entries (newest first), whole, the id
-- before the event}.
local f = redis.call('HMGET', KEYS[3], 'turn', 'he', 'settings', 'xp', 'lid', 'fc', 'f:' .. ARGV[13], 'rq')
if not f[1] then return redis.error_reply('NOSESSION') end
local turn, id, prev
local done = requested(f[8], ARGV[14])
if done then
  turn, id, prev = done.turn, done.id, done.prev
else
  if tonumber(f[1]) >= tonumber(ARGV[8]) then return redis.error_reply('TURNLIMIT') end
  turn = tonumber(f[1]) + 1
  prev = f[5] or '0-0'
  local body = ARGV[4] .. turn .. ARGV[5]
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', body)
  local xp = expiry(id, f[4], ARGV[1])
  local rq = ARGV[14] .. ' ' .. turn .. ' ' .. id .. ' ' .. prev
  if xp then
    redis.call('HSET', KEYS[3], 'turn', turn, 'resp', turn, 'run:' .. turn, ARGV[9], 'lid', id, 'rq', rq, 'xp', xp)
  else
    redis.call('HSET', KEYS[3], 'turn', turn, 'resp', turn, 'run:' .. turn, ARGV[9], 'lid', id, 'rq', rq)
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', 'user', 'c', ARGV[6], 'n', turn)
  if xp then refresh(KEYS, ARGV[1]) end
  if KEYS[5] then redis.call('HSET', KEYS[5], ARGV[15], ARGV[16]) end
  fanout(ARGV[7], KEYS[4], f[6], f[7], ARGV[13], prev, {'{"id":"' .. id .. '",' .. string.sub(body, 2)})
end
local max = tonumber(ARGV[10])
local edits, entries, whole = f[2] or '0', {}, 1
if max > 0 then
  if ARGV[11] ~= '' and ARGV[12] == edits then
    entries, whole = redis.call('XREVRANGE', KEYS[2], '+', '(' .. ARGV[11], 'COUNT', max), 0
  else
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', max)
  end
end
return {turn, id, f[3] or '', edits, entries, whole, prev}
