-- KEYS: slot, slots, and the prefix of the per-address sets (`slots:`).
-- ARGV: id. The slot stops counting against its address at once.
local client = redis.call('HGET', KEYS[1], 'client')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if client then redis.call('ZREM', KEYS[3]..client, ARGV[1]) end
return 1
