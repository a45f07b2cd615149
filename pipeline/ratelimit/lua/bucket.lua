local rate = tonumber(ARGV[1]) / 1000000
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- ARGV[4] is the call's key: sent again after its reply was lost (the
-- Redis client retries a failed pipeline), the call answers as its first
-- run did (k: the latest call's key and reply) rather than take a second
-- token. A call that another came between takes its token again.
local key = ARGV[4]
local s = redis.call('HMGET', KEYS[1], 't', 'ts', 'k')
if s[3] and string.sub(s[3], 1, #key + 1) == key .. ' ' then
  local a, r, left = string.match(string.sub(s[3], #key + 2), '^(%S+) (%S+) (%S+)$')
  if a then return {tonumber(a), tonumber(r), left} end
end
local tokens = tonumber(s[1])
local ts = tonumber(s[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
end
local allowed = 0
local retry = 0
if cost <= tokens then
  tokens = math.min(burst, tokens - cost)
  allowed = 1
else
  retry = math.ceil((cost - tokens) / rate / 1000)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now), 'k', key .. ' ' .. allowed .. ' ' .. retry .. ' ' .. tostring(tokens))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate / 1000) + 1000)
return {allowed, retry, tostring(tokens)}
