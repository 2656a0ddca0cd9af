-- KEYS: ch, pend, wake. ARGV: id, record, expires_ms, now_ms, max, topic.
local function drop(pend, id)
  return redis.call('HDEL', pend, id..':r', id..':x', id..':a', id..':f', id..':s')
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nochannel'} end
local now = tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[2])
local exp, answered = {}, {}
for i = 1, #all, 2 do
  local id, kind = string.match(all[i], '^(.*):(%a)$')
  if kind == 'x' then exp[id] = tonumber(all[i + 1])
  elseif kind == 'a' then answered[id] = true end
end
local live = 0
for id, x in pairs(exp) do
  if x <= now then drop(KEYS[2], id)
  elseif id == ARGV[1] then return {'duplicate'}
  elseif not answered[id] then live = live + 1 end
end
if live >= tonumber(ARGV[5]) then return {'full'} end
redis.call('HSET', KEYS[2], ARGV[1]..':r', ARGV[2], ARGV[1]..':x', ARGV[3])
local ttl = redis.call('PTTL', KEYS[2])
if ttl < tonumber(ARGV[3]) - now then redis.call('PEXPIREAT', KEYS[2], ARGV[3]) end
redis.call('HINCRBY', KEYS[1], 'ver', 1)
redis.call('PUBLISH', KEYS[3], ARGV[6])
return {'ok', redis.call('HGET', KEYS[1], 'push') or ''}
