-- KEYS: ch, pend, wake. ARGV: id, topic.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = ARGV[1]
local n = redis.call('HDEL', KEYS[2], id..':r', id..':x', id..':a', id..':f', id..':s')
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'ver', 1)
  redis.call('PUBLISH', KEYS[3], ARGV[2])
end
return n
