-- Stores a turn's end once: the tail delta, interrupted, reply.done, the
-- assistant's message in the history. KEYS: log, hist, meta, channel.
-- ARGV: ttl, max events, max history, the publish command, turn, run,
-- text, the events (tail, interrupted, done), the cut variants
-- (interrupted, done, text), the caller's replica (ARGV[14]), the call's
-- key (ARGV[15]); and, not in a cluster, the replica's jobs hash (KEYS[5])
-- and the turn's job there (ARGV[16]), deleted whatever the status.
-- Returns {status, the id before the first event, the events' ids}.
if KEYS[5] then redis.call('HDEL', KEYS[5], ARGV[16]) end
local turn = tonumber(ARGV[5])
local f = redis.call('HMGET', KEYS[3], 'run:' .. turn, 'replied', 'd:' .. turn, 'cut', 'lid', 'fc', 'f:' .. ARGV[14], 'dm', 'fq')
-- Sent again after its reply was lost (the Redis client retries a failed
-- pipeline), the call answers with its first run's status alone (fq: the
-- latest finish's key and status; kept short, as a longer value makes
-- Redis store the whole hash in a costlier form), so that the caller has
-- its own sockets read the log for the events: the first run published
-- them only for other replicas'.
local again = ranBefore(f[9], ARGV[15])
if again then return {tonumber(again)} end
if f[1] ~= ARGV[6] then return {0} end
local w = tonumber(f[2] or '0')
if isdone(KEYS[3], turn, w, f[3] ~= false) then return {0} end
local status, events, content = 1, {ARGV[8], ARGV[9], ARGV[10]}, ARGV[7]
if ARGV[8] ~= '' and tonumber(f[4] or '0') >= turn then
  -- Cut before the tail was stored: the reply is what the client was sent.
  status, events, content = 2, {ARGV[11], ARGV[12]}, ARGV[13]
end
-- The events go out in one message, a line each: a Pub/Sub message costs
-- Redis and every subscriber more than its bytes.
local prev = f[5] or '0-0'
local out, ret, last = {}, {status, prev}, nil
for _, e in ipairs(events) do
  if e ~= '' then
    last = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', e)
    out[#out + 1] = '{"id":"' .. last .. '",' .. string.sub(e, 2)
    ret[#ret + 1] = last
  end
end
if #out > 0 then fanout(ARGV[4], KEYS[4], f[6], f[7], ARGV[14], prev, out) end
if content ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'r', 'assistant', 'c', content, 'n', turn)
end
local extra = {'fq', ARGV[15] .. ' ' .. status}
if last then extra = {'lid', last, extra[1], extra[2]} end
markdone(KEYS[3], turn, w, extra, f[8])
redis.call('HDEL', KEYS[3], 'run:' .. turn)
return ret
