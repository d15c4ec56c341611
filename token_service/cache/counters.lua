-- Brute-force counters in Redis: the rule of token_service/lockout.py (read its docstring), step
-- for step, run atomically on the server (one round trip per step, every replica serialised).
-- tests/token_service/test_lockout.py and tests/security/test_lockout.py run against both
-- backends, so a divergence between this script and lockout.py fails them.
--
-- KEYS: the counters (hashes), sorted. ARGV: op ("reserve", "failed", "succeeded", "released",
-- "record_failure"), now, reset_s, base_s, max_s, pending_ttl_s, then per key three values:
-- free attempts, "1" if uncounted (an unknown identity's), "1" if an identity's counter.
-- Returns "go", "locked" or "busy" for reserve; "ok" otherwise.
local op = ARGV[1]
local now = tonumber(ARGV[2])
local reset_s = tonumber(ARGV[3])
local base_s = tonumber(ARGV[4])
local max_s = tonumber(ARGV[5])
local pending_ttl = tonumber(ARGV[6])

local function free(i) return tonumber(ARGV[6 + 3 * i - 2]) end
local function uncounted(i) return ARGV[6 + 3 * i - 1] == "1" end
local function is_identity(i) return ARGV[6 + 3 * i] == "1" end

-- The counter as it stands now (lockout._Counter.of): failures forgotten after the quiet
-- period, slots of dead processes (past pending_until) dropped.
local function load(i)
  local v = redis.call("HMGET", KEYS[i], "failures", "last_failure_at", "locked_until", "pending", "pending_until")
  local c = {
    failures = tonumber(v[1]) or 0,
    last = tonumber(v[2]) or now,
    locked = tonumber(v[3]) or 0,
    pending = tonumber(v[4]) or 0,
    pending_until = tonumber(v[5]) or 0,
  }
  if now - c.last > reset_s then c.failures = 0 end
  if c.pending_until <= now then c.pending = 0 end
  return c
end

local function backoff(failures, free_attempts)
  if failures < free_attempts then return 0 end
  return math.min(max_s, base_s * 2 ^ math.min(failures - free_attempts, 62))
end

-- One more failure, now (lockout._Counter.failed): never shortens a running lock.
local function fail(c, i)
  local b = backoff(c.failures + 1, free(i))
  c.failures = c.failures + 1
  c.last = now
  c.locked = math.max(c.locked, now + b)
end

local function num(x) return string.format("%.6f", x) end

-- Write back (lockout._store): an empty counter is deleted; the key expires once it decides
-- nothing any more, so Redis needs no pruning.
local function store(i, c)
  if c.failures == 0 and c.pending == 0 and c.locked <= now then
    redis.call("DEL", KEYS[i])
    return
  end
  if c.pending > 0 then c.pending_until = now + pending_ttl end
  redis.call("HSET", KEYS[i], "failures", c.failures, "last_failure_at", num(c.last),
    "locked_until", num(c.locked), "pending", c.pending, "pending_until", num(c.pending_until))
  local until_ = math.max(c.locked, c.last + reset_s, c.pending_until)
  redis.call("PEXPIRE", KEYS[i], math.max(1000, math.ceil((until_ - now) * 1000) + 1000))
end

local n = #KEYS
if op == "reserve" then
  local rows = {}
  local locked = false
  for i = 1, n do
    rows[i] = load(i)
    if rows[i].locked > now then locked = true end
  end
  if locked then
    for i = 1, n do
      if not uncounted(i) then fail(rows[i], i) end
      store(i, rows[i])
    end
    return "locked"
  end
  for i = 1, n do
    if rows[i].pending >= math.max(free(i) - rows[i].failures, 1) then return "busy" end
  end
  for i = 1, n do
    rows[i].pending = rows[i].pending + 1
    store(i, rows[i])
  end
  return "go"
end

for i = 1, n do
  local c = load(i)
  if op == "record_failure" then
    fail(c, i)
  else
    c.pending = math.max(c.pending - 1, 0)
    if op == "failed" then
      if not uncounted(i) then fail(c, i) end
    elseif op == "succeeded" then
      if is_identity(i) then
        c.failures = 0
        c.locked = 0
      end
    elseif op ~= "released" then
      return redis.error_reply("unknown operation " .. op)
    end
  end
  store(i, c)
end
return "ok"
