-- Veilgate lease release: the request is over.
--
-- KEYS[i]  a concurrency budget the lease is held in   ARGV[1] the lease member
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 1
