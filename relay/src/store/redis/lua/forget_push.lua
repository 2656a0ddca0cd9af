-- KEYS: ch. ARGV: the subscription the push service refused.
if redis.call('HGET', KEYS[1], 'push') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'push')
end
return 0
