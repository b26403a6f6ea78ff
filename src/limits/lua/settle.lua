-- Veilgate settlement, once a request is over: charges (delta > 0, possibly into debt) or
-- refunds (delta < 0, down to empty) its token budgets and its spend budgets, and ends its
-- concurrency lease.
--
-- KEYS[1..t]  the token budgets   KEYS[t+1..t+s]  the spend budgets (each its window's counter)
-- KEYS[t+s+1..]  the concurrency budgets of the lease
-- ARGV[1] token delta   ARGV[2] t   ARGV[3] lease member ('' when none)
-- ARGV[4] spend delta, in micro-dollars   ARGV[5] s
-- ARGV[4+2i] limit of token budget i      ARGV[5+2i] its window (µs)
if redis.replicate_commands then
  redis.replicate_commands() -- Redis < 5: replicate effects, so TIME may precede writes
end
local delta, t, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local spend, s = tonumber(ARGV[4]), tonumber(ARGV[5])
if delta ~= 0 and t > 0 then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
  for i = 1, t do
    local limit, window = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
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
end
if spend ~= 0 then
  for j = t + 1, t + s do
    -- A counter that expired belongs to a window long over: it is not reopened.
    local used = tonumber(redis.call('GET', KEYS[j]))
    if used then
      used = used + spend
      if used < 0 then
        used = 0
      end
      local ttl = redis.call('PTTL', KEYS[j])
      if ttl > 0 then
        redis.call('SET', KEYS[j], string.format('%d', used), 'PX', ttl)
      end
    end
  end
end
for i = t + s + 1, #KEYS do
  redis.call('ZREM', KEYS[i], member)
end
return 1
