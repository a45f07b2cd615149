-- isdone and markdone: whether a turn has its reply. Turns of one session may
-- finish out of order, so "replied" is a watermark (every turn up to it is
-- done) plus a d:<turn> field for each done turn above it. Prepended to the
-- scripts that use them. A script that has read the watermark (w) and the
-- turn's d: field (marked) with its other fields in one HMGET passes them:
-- each redis.call costs Redis more than the command it runs. markdone sets
-- the fields of extra (name, value pairs) in the same HSET.
local function isdone(meta, turn, w, marked)
  if w == nil then
    w = tonumber(redis.call('HGET', meta, 'replied') or '0')
    marked = redis.call('HEXISTS', meta, 'd:' .. turn) == 1
  end
  return turn <= w or marked
end
-- dm is the highest turn ever marked (d:), or false when not known (a
-- session from before it was kept): an in-order finish looks for markers
-- above its turn only when there may be some, which most turns skip (a
-- redis.call less). A script that has read dm with its other fields
-- passes it; one that has not passes nil and markdone reads it.
local function markdone(meta, turn, w, extra, dm)
  extra = extra or {}
  if w == nil then w = tonumber(redis.call('HGET', meta, 'replied') or '0') end
  if dm == nil then dm = redis.call('HGET', meta, 'dm') end
  if turn ~= w + 1 then
    if dm then
      redis.call('HSET', meta, 'd:' .. turn, 1, 'dm', math.max(tonumber(dm), turn), unpack(extra))
    else
      redis.call('HSET', meta, 'd:' .. turn, 1, unpack(extra))
    end
    return
  end
  -- The common case, turns finishing in order: no marker to store.
  w = turn
  if not dm or tonumber(dm) > turn then
    while redis.call('HEXISTS', meta, 'd:' .. (w + 1)) == 1 do
      w = w + 1
      redis.call('HDEL', meta, 'd:' .. w)
    end
  end
  redis.call('HSET', meta, 'replied', w, unpack(extra))
end
