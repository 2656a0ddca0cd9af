-- KEYS: slot, slots, slots:<addr>.
-- ARGV: id, helper hash, expires_ms, client, now_ms, per address, total.
local now, exp = tonumber(ARGV[5]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return 'here' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return 'full' end
redis.call('HSET', KEYS[1], 'helper', ARGV[2], 'exp', ARGV[3], 'client', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('ZADD', KEYS[3], exp, ARGV[1])
for i = 2, 3 do
  if redis.call('PTTL', KEYS[i]) < exp - now then redis.call('PEXPIREAT', KEYS[i], ARGV[3]) end
end
return 'done'
