-- fanout: a script publishes its events only when a replica other than
-- its caller's follows the session; the caller's own replica delivers
-- them from the script's reply (Hub.local), with no Pub/Sub echo. The
-- meta hash counts the follows: fc in all, f:<replica> each replica's
-- (follow.lua). A message's first line is the caller's replica (whose Hub
-- skips its own messages) and the id of the event before its first (the
-- meta hash's lid, the log's last id; 0-0 for none); then the events, a
-- line each. A follower whose last event is older than
-- that id has missed one and reads the log. Prepended to the scripts that
-- append to the log; each stores its last id as lid.
local function fanout(pub, ch, fc, mine, replica, prev, out)
  if tonumber(fc or '0') > tonumber(mine or '0') then
    redis.call(pub, ch, replica .. ' ' .. prev .. '\n' .. table.concat(out, '\n'))
  end
end
