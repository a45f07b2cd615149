-- requested: whether the call keyed key has already stored its user
-- turn, and if so the turn, its event's id and the id before it. A call
-- is run again when its reply was lost after Redis ran it (the Redis
-- client retries a pipeline whose connection failed): the turn must not
-- be stored twice. The meta hash's 'rq' holds the latest such call's key
-- and results (key turn id prev); prepended to the scripts that store a
-- user turn.
local function requested(rq, key)
  if not rq or string.sub(rq, 1, #key + 1) ~= key .. ' ' then return nil end
  local turn, id, prev = string.match(string.sub(rq, #key + 2), '^(%d+) (%S+) (%S+)$')
  if not turn then return nil end
  return {turn = tonumber(turn), id = id, prev = prev}
end
