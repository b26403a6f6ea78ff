-- Veilgate lease renewal: pushes back the expiry of leases still held.
-- A lease already gone (expired, or lost with the server's data) is not brought back.
--
-- KEYS[i]  the concurrency budget of lease i
-- ARGV[1]  lease time-to-live (µs)   ARGV[i+1] member of lease i
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', string.format('%.17g', now + ttl), ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], math.ceil(ttl / 1000))
end
return 1
