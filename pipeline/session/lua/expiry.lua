-- expiry and refresh: a user turn's script refreshes the expiry of the
-- session's keys (log, hist, meta: KEYS[1..3]) only when the last refresh
-- is older than an eighth of the TTL, and then to 9/8 of it, so that a
-- session still expires no sooner than TTL after its last turn. Three
-- PEXPIREs are three redis.calls, each dearer than the command; a turn
-- every few seconds needs them once in minutes. The meta hash's xp is the
-- time of the last refresh, by Redis's clock: the ms part of an entry id
-- the script has just added. Prepended to the scripts that use them.
local function expiry(id, last, ttl)
  local now = tonumber(string.match(id, '^(%d+)'))
  if last and now - tonumber(last) < tonumber(ttl) / 8 then return nil end
  return now
end
local function refresh(keys, ttl)
  local ms = math.floor(tonumber(ttl) * 9 / 8)
  for i = 1, 3 do redis.call('PEXPIRE', keys[i], ms) end
end
