-- KEYS: ch, pend, epoch. ARGV: an epoch to set if there is none.
-- Returns false or {ver, flat pend hash, epoch}.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch)
end
return {tonumber(redis.call('HGET', KEYS[1], 'ver') or '0'), redis.call('HGETALL', KEYS[2]), epoch}
