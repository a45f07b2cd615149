-- Makes run ARGV[2] the owner of turn ARGV[1] (KEYS[1]: meta, KEYS[2]:
-- history). Returns {status, previous owner, the session's settings, tool
-- steps taken, pending calls, history edit count, history entries, whole}:
-- status 0 when the turn already has its reply, -1 when it was cut before
-- it started, 2 when it waits for tool results (its job is now at
-- ARGV[3]; the calls it waits for are returned as id, record pairs), 1
-- when the run owns it.
--
-- With status 1 or -1 and ARGV[4] > 0, it also returns the latest ARGV[4]
-- history entries (newest first, whole = 1), or only those after entry
-- ARGV[5] (whole = 0) when the history's edit count is still ARGV[6]: the
-- caller has the rest from the last start. Entries converted to Lua cost
-- Redis several microseconds each, so the usual reply carries two.
local turn = tonumber(ARGV[1])
-- One read of every field the start looks at.
local f = redis.call('HMGET', KEYS[1], 'replied', 'd:' .. turn, 'ts:' .. turn, 'tp:' .. turn,
  'run:' .. turn, 'cut', 'he', 'settings')
if isdone(KEYS[1], turn, tonumber(f[1] or '0'), f[2] ~= false) then return {0, '', '', 0, {}, '', {}, 1} end
local steps = tonumber(f[3] or '0')
local settings = f[8] or ''
if f[4] then
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'tj:' .. turn, ARGV[3]) end
  local pend, all = {}, redis.call('HGETALL', KEYS[1])
  for k = 1, #all, 2 do
    if string.sub(all[k], 1, 3) == 'tc:' and tonumber(string.match(all[k + 1], '^(%d+)')) == turn then
      pend[#pend + 1] = string.sub(all[k], 4)
      pend[#pend + 1] = all[k + 1]
    end
  end
  return {2, '', settings, steps, pend, '', {}, 1}
end
local function history()
  local max = tonumber(ARGV[4])
  if max <= 0 then return '', {}, 1 end
  local edits = f[7] or '0'
  if ARGV[5] ~= '' and ARGV[6] == edits then
    return edits, redis.call('XREVRANGE', KEYS[2], '+', '(' .. ARGV[5], 'COUNT', max), 0
  end
  return edits, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', max), 1
end
local prev = f[5] or ''
redis.call('HSET', KEYS[1], 'run:' .. turn, ARGV[2])
local cut = tonumber(f[6] or '0')
local edits, entries, whole = history()
if cut >= turn then return {-1, prev, '', steps, {}, edits, entries, whole} end
return {1, prev, settings, steps, {}, edits, entries, whole}
