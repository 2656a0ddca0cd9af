-- KEYS: pend. ARGV: id, now_ms.
local id = ARGV[1]
local x = tonumber(redis.call('HGET', KEYS[1], id..':x') or '0')
if x <= tonumber(ARGV[2]) then return {'notfound'} end
local s = redis.call('HGET', KEYS[1], id..':s')
if not s then return {'nothing'} end
redis.call('HDEL', KEYS[1], id..':s')
return {'answer', s}
