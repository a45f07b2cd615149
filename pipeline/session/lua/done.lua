-- isdone and markdone: whether a turn has its reply. Turns of one session may
-- finish out of order, so "replied" is a watermark (every turn up to it is
-- done) plus a d:<turn> field for each done turn above it. Prepended to the
-- scripts that use them.
local function isdone(meta, turn)
  local w = tonumber(redis.call('HGET', meta, 'replied') or '0')
  return turn <= w or redis.call('HEXISTS', meta, 'd:' .. turn) == 1
end
local function markdone(meta, turn)
  local w = tonumber(redis.call('HGET', meta, 'replied') or '0')
  if turn ~= w + 1 then
    redis.call('HSET', meta, 'd:' .. turn, 1)
    return
  end
  -- The common case, turns finishing in order: no marker to store.
  w = turn
  while redis.call('HEXISTS', meta, 'd:' .. (w + 1)) == 1 do
    w = w + 1
    redis.call('HDEL', meta, 'd:' .. w)
  end
  redis.call('HSET', meta, 'replied', w)
end
