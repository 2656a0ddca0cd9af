-- KEYS: ch, pend, wake. ARGV: id, reason, now_ms, topic.
local id = ARGV[1]
local x = tonumber(redis.call('HGET', KEYS[2], id..':x') or '0')
if redis.call('EXISTS', KEYS[1]) == 0 or x <= tonumber(ARGV[3]) then return 'notfound' end
if redis.call('HDEL', KEYS[2], id..':a') == 0 then return 'conflict' end
redis.call('HSET', KEYS[2], id..':f', ARGV[2])
redis.call('HDEL', KEYS[2], id..':s')
redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 'done'
