-- Answers every call the session waits for with ARGV[2] (the turns are
-- being interrupted), so that the history never holds a call without its
-- result, and returns the turns that waited with their jobs' places
-- ('<turn> <place>'). KEYS: hist,
-- meta. ARGV: 1 max history, 2 output.
local all, jobs = redis.call('HGETALL', KEYS[2]), {}
for k = 1, #all, 2 do
  local f = all[k]
  if string.sub(f, 1, 3) == 'tc:' then
    local turn = string.match(all[k + 1], '^(%d+)')
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'r', 'tool', 'i', string.sub(f, 4), 'c', ARGV[2], 'n', turn)
    redis.call('HDEL', KEYS[2], f)
  elseif string.sub(f, 1, 3) == 'tj:' then
    jobs[#jobs + 1] = string.sub(f, 4) .. ' ' .. all[k + 1]
    redis.call('HDEL', KEYS[2], f, 'tp:' .. string.sub(f, 4))
  end
end
return jobs
