-- requested: whether the call keyed key has already run (taken a turn,
-- stored a reply delta), and if so the turn, its event's id and the id
-- before it ('-' for none). A call is run again when its reply was lost
-- after Redis ran it (the Redis client retries a pipeline whose
-- connection failed): it must not take a second turn or store its event
-- twice. A field of the meta hash ('rq' for the calls that take a turn,
-- 'dq' for deltas, 'eq' for other events) holds the latest such call's
-- key and results (key turn id prev); prepended to the scripts that use
-- it.
-- ranBefore is what a field holding the latest call's 'key results' says
-- of the call keyed key: its results, or nil for another call's.
local function ranBefore(v, key)
  if not v or string.sub(v, 1, #key + 1) ~= key .. ' ' then return nil end
  return string.sub(v, #key + 2)
end
local function requested(rq, key)
  local rest = ranBefore(rq, key)
  if not rest then return nil end
  local turn, id, prev = string.match(rest, '^(%d+) (%S+) (%S+)$')
  if not turn then return nil end
  return {turn = tonumber(turn), id = id, prev = prev}
end
