-- KEYS: slot, new channel, wake.
-- ARGV: device hash, result, now_ms, grace until, helper hash, created, topic.
local x = tonumber(redis.call('HGET', KEYS[1], 'exp') or '0')
if x <= tonumber(ARGV[3]) then return 'notfound' end
if redis.call('HSETNX', KEYS[1], 'device', ARGV[1]) == 0 then return 'conflict' end
local until_ms = math.max(x, tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'result', ARGV[2], 'exp', string.format('%d', until_ms))
redis.call('PEXPIREAT', KEYS[1], string.format('%d', until_ms))
redis.call('HSET', KEYS[2], 'helper', ARGV[5], 'device', ARGV[1], 'created', ARGV[6], 'ver', '0')
redis.call('PUBLISH', KEYS[3], ARGV[7])
return 'done'
