-- KEYS: slot, wake. ARGV: outcome, now_ms, topic.
local x = tonumber(redis.call('HGET', KEYS[1], 'exp') or '0')
if x <= tonumber(ARGV[2]) then return 'notfound' end
if redis.call('HEXISTS', KEYS[1], 'device') == 0 then return 'conflict' end
if redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1]) == 0 then return 'conflict' end
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 'done'
