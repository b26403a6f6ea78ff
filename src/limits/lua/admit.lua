-- Veilgate admission: checks several budgets at once and commits all of them or none.
-- One call is one atomic round trip; time is the server's, so every instance agrees.
--
-- KEYS[i]  the state of budget i
-- ARGV[1]  lease member (concurrency budgets), ARGV[2] lease time-to-live (µs)
-- then per budget i, at a = 2 + 4 * (i - 1):
--   ARGV[a+1] kind: 'r' (rate: requests or tokens per window), 'c' (concurrency) or
--             's' (spend: micro-dollars in a calendar window)
--   ARGV[a+2] limit   ARGV[a+3] window (µs; rate), or µs until the window ends (spend)
--   ARGV[a+4] cost
--
-- A rate budget is GCRA in its leaky-bucket form: hash {l = level in cost units, t = time
-- of l in µs}; the level drains at limit/window; a cost fits when level + min(cost, limit)
-- <= limit. With no time elapsed the arithmetic is on whole numbers, so a burst is exact.
-- A concurrency budget is a sorted set of leases scored by expiry time.
-- A spend budget is an integer counter per calendar window (the window's start is in its key,
-- named by the gateway); it refuses when used + cost > limit, or nothing is left (a request
-- that reserves nothing included), until the window ends.
--
-- Returns {admitted (1|0), refused budget (1-based, 0 when admitted), retry after (µs),
--          remaining_1, reset_1 (µs), remaining_2, reset_2, ...}; figures are after the
-- admission when admitted, as they stand when refused.
if redis.replicate_commands then
  redis.replicate_commands() -- Redis < 5: replicate effects, so TIME may precede writes
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local member = ARGV[1]
local ttl = tonumber(ARGV[2])
local n = #KEYS
local level = {}
local refused, retry = 0, 0

for i = 1, n do
  local a = 2 + 4 * (i - 1)
  local kind, limit = ARGV[a + 1], tonumber(ARGV[a + 2])
  local wait = 0
  if kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local used = redis.call('ZCARD', KEYS[i])
    level[i] = used
    if used + 1 > limit then
      wait = 1000000 -- in-flight requests give no hint: suggest a second
    end
  elseif kind == 's' then
    local until_end, cost = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local used = tonumber(redis.call('GET', KEYS[i])) or 0
    level[i] = used
    if used + cost > limit or used >= limit then
      wait = math.max(until_end, 1000000)
    end
  else
    local window, cost = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local state = redis.call('HMGET', KEYS[i], 'l', 't')
    local l = tonumber(state[1]) or 0
    local at = tonumber(state[2]) or now
    if now > at then
      l = l - (now - at) * limit / window
    end
    if l < 0 then
      l = 0
    end
    level[i] = l
    local fill = l + math.min(cost, limit)
    if fill > limit then
      wait = math.ceil((fill - limit) * window / limit)
      if wait < 1 then
        wait = 1
      end
    end
  end
  if wait > retry then
    refused, retry = i, wait
  end
end

local reply = {refused == 0 and 1 or 0, refused, retry}
for i = 1, n do
  local a = 2 + 4 * (i - 1)
  local kind, limit = ARGV[a + 1], tonumber(ARGV[a + 2])
  local remaining, reset
  if kind == 'c' then
    local used = level[i]
    if refused == 0 then
      redis.call('ZADD', KEYS[i], string.format('%.17g', now + ttl), member)
      redis.call('PEXPIRE', KEYS[i], math.ceil(ttl / 1000))
      used = used + 1
    end
    remaining, reset = limit - used, 0
  elseif kind == 's' then
    local until_end, cost = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local used = level[i]
    if refused == 0 then
      used = redis.call('INCRBY', KEYS[i], cost)
      -- Kept an hour past the window's end, for settlements of requests still running.
      redis.call('PEXPIRE', KEYS[i], math.ceil(until_end / 1000) + 3600000)
    end
    remaining, reset = limit - used, until_end
  else
    local window, cost = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local l = level[i]
    if refused == 0 then
      l = l + cost
      redis.call('HSET', KEYS[i], 'l', string.format('%.17g', l), 't', string.format('%.17g', now))
      redis.call('PEXPIRE', KEYS[i], math.ceil(l * window / limit / 1000) + 1000)
    end
    remaining, reset = math.floor(limit - l), math.ceil(l * window / limit)
  end
  if remaining < 0 then
    remaining = 0
  end
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
end
return reply
