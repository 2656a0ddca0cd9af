-- KEYS: ch, pend. Returns false or {ver, flat pend hash}.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return {tonumber(redis.call('HGET', KEYS[1], 'ver') or '0'), redis.call('HGETALL', KEYS[2])}
