-- Veilgate reconciliation: charges (delta > 0, possibly into debt) or refunds (delta < 0,
-- down to empty) token budgets, after draining them to now.
--
-- KEYS[i]  the state of token budget i
-- ARGV[1]  delta, in tokens
-- ARGV[2i] limit of budget i   ARGV[2i+1] window of budget i (µs)
if redis.replicate_commands then
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local delta = tonumber(ARGV[1])
for i = 1, #KEYS do
  local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local l = tonumber(state[1]) or 0
  local at = tonumber(state[2]) or now
  if now > at then
    l = l - (now - at) * limit / window
  end
  if l < 0 then
    l = 0
  end
  l = l + delta
  if l > 0 then
    redis.call('HSET', KEYS[i], 'l', string.format('%.17g', l), 't', string.format('%.17g', now))
    redis.call('PEXPIRE', KEYS[i], math.ceil(l * window / limit / 1000) + 1000)
  elseif state[1] then
    redis.call('DEL', KEYS[i])
  end
end
return 1
