-- One request against every policy that applies to it, atomically, on Redis's clock.
--
-- KEYS[i]     the state of policy i (all of one consumer share a hash tag)
-- ARGV[1]     the request's cost (1)
-- ARGV[2+3(i-1)..]  per policy: kind, a, b
--   kind "g": GCRA for a rate with a burst; a = emission interval T (ms), b = burst B.
--             State: the theoretical arrival time (TAT, ms) as a string, PX = TAT - now.
--   kind "q": a calendar quota; a = limit, b = period: "minute", "hour", "day" or "month" (UTC).
--             State: "<period id>:<count>", expiring at the end of the period.
-- Returns {admitted (0/1), then per policy: remaining, ms until more quota, violated (0/1)}.
-- Every policy is checked before any is charged: a refused request costs nothing.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local floor = math.floor

-- Howard Hinnant's civil_from_days / days_from_civil: calendar months from day numbers.
local function month_of(day)
  local z = day + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local y = yoe + era * 400
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m
end

local function first_day(y, m)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = floor((153 * mp + 2) / 5)
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end

local SPANS = {minute = 60000, hour = 3600000, day = 86400000}

-- The current period's id and its end (ms).
local function period(kind)
  local span = SPANS[kind]
  if span then
    local id = floor(now / span)
    return id, (id + 1) * span
  end
  local y, m = month_of(floor(now / 86400000))
  local ny, nm = y, m + 1
  if nm > 12 then ny, nm = y + 1, 1 end
  return y * 12 + m - 1, first_day(ny, nm) * 86400000
end

-- What a GCRA state `d` ms ahead of now leaves: requests possible now, and ms until one more.
local function gcra_view(d, interval, burst)
  local r = floor((burst * interval - d) / interval + 1e-9)
  if r >= burst then return burst, 0 end
  return r, d - (burst - r - 1) * interval
end

local n = #KEYS
local admitted = 1
local charged, kept, writes = {}, {}, {}
for i = 1, n do
  local kind, a, b = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  if kind == 'g' then
    local interval, burst = tonumber(a), tonumber(b)
    local tat = tonumber(redis.call('GET', KEYS[i]) or now)
    if tat < now then tat = now end
    local new = tat + cost * interval
    local r, wait = gcra_view(tat - now, interval, burst)
    -- The tolerance: sums of fractional intervals must not refuse the last request of a burst.
    if new - now > burst * interval + 1e-6 then
      admitted = 0
      kept[i] = {r, new - now - burst * interval, 1}
    else
      kept[i] = {r, wait, 0}
      r, wait = gcra_view(new - now, interval, burst)
      charged[i] = {r, wait, 0}
      writes[i] = {string.format('%.3f', new), 'PX', math.max(1, math.ceil(new - now))}
    end
  else
    local limit = tonumber(a)
    local id, ends = period(b)
    local used = 0
    local state = redis.call('GET', KEYS[i])
    if state then
      local p, c = string.match(state, '^(%-?%d+):(%d+)$')
      if tonumber(p) == id then used = tonumber(c) end
    end
    local left = math.max(0, limit - used)
    if used + cost > limit then
      admitted = 0
      kept[i] = {left, ends - now, 1}
    else
      kept[i] = {left, ends - now, 0}
      charged[i] = {left - cost, ends - now, 0}
      writes[i] = {id .. ':' .. (used + cost), 'PX', math.max(1, math.ceil(ends - now))}
    end
  end
end

local out = {admitted}
local views = admitted == 1 and charged or kept
for i = 1, n do
  if admitted == 1 then
    local w = writes[i]
    redis.call('SET', KEYS[i], w[1], w[2], w[3])
  end
  local v = views[i]
  out[3 * i - 1] = v[1]
  out[3 * i] = math.ceil(v[2])
  out[3 * i + 1] = v[3]
end
return out
