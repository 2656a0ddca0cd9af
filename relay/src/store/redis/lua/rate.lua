-- KEYS: bucket. ARGV: per second, burst, now_ms. Returns 0, or the
-- milliseconds until the bucket holds a request again.
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local t, at = tonumber(b[1]) or burst, tonumber(b[2]) or now
t = math.min(burst, t + math.max(0, now - at) / 1000 * rate)
local wait = 0
if t >= 1 then t = t - 1 else wait = math.ceil((1 - t) / rate * 1000) end
redis.call('HSET', KEYS[1], 't', tostring(t), 'at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(burst / rate * 1000) + 1000))
return wait
