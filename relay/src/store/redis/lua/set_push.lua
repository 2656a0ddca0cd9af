-- KEYS: ch. ARGV: subscription JSON, or empty to clear.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then return redis.call('HDEL', KEYS[1], 'push') end
return redis.call('HSET', KEYS[1], 'push', ARGV[1])
