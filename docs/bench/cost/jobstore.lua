-- A job store's cost in Redis: a stream (XADD, XDEL) against a hash (HSET,
-- HDEL), with LIVE jobs held, N replacements, timed by Redis's clock; returns
-- µs per replacement. redis-cli -p PORT --eval docs/bench/cost/jobstore.lua k , x|h N LIVE
local kind, n, live = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local k = KEYS[1]
redis.call('DEL', k)
local ids = {}
for i = 1, live do
  if kind == 'x' then ids[i] = redis.call('XADD', k, '*', 's', 'abcdef0123456789abcdef0123456789', 'r', 'r1234567890abcdef')
  else ids[i] = 'j' .. i; redis.call('HSET', k, ids[i], '{"s":"abcdef0123456789abcdef0123456789","r":"r1234567890abcdef"}') end
end
local t0 = redis.call('TIME')
for i = 1, n do
  local slot = (i % live) + 1
  if kind == 'x' then
    redis.call('XDEL', k, ids[slot])
    ids[slot] = redis.call('XADD', k, '*', 's', 'abcdef0123456789abcdef0123456789', 'r', 'r1234567890abcdef')
  else
    redis.call('HDEL', k, ids[slot])
    ids[slot] = 'j' .. (live + i)
    redis.call('HSET', k, ids[slot], '{"s":"abcdef0123456789abcdef0123456789","r":"r1234567890abcdef"}')
  end
end
local t1 = redis.call('TIME')
return ((t1[1] - t0[1]) * 1000000 + (t1[2] - t0[2])) / n
