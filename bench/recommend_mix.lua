-- wrk script: the main recommendation scenes for users and items drawn zipf-like.
-- Configured by environment (read at load, so the main and every thread state agree):
--   WRK_USERS, WRK_ITEMS   id ranges (u1..uN, 1..M)
--   WRK_MIX                "guess_you_like:50,detail_related:30,feed:20"
--   WRK_COLD               share of requests from unknown devices (cold start), 0..1
--   WRK_N                  list size
--   WRK_DELAY_MS           pause per connection between requests (a steady rate; soak)
-- Prints one line "WRKJSON {...}" at the end: requests, seconds, latency percentiles (ms),
-- socket errors and the count of every HTTP status seen.

local users = tonumber(os.getenv("WRK_USERS") or "1000000")
local items = tonumber(os.getenv("WRK_ITEMS") or "1000000")
local cold = tonumber(os.getenv("WRK_COLD") or "0.05")
local n = tonumber(os.getenv("WRK_N") or "20")
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")

local scenes, cumulative, total = {}, {}, 0
for name, weight in string.gmatch(os.getenv("WRK_MIX") or
    "guess_you_like:50,detail_related:30,feed:20", "([%w_]+):(%d+)") do
  total = total + tonumber(weight)
  scenes[#scenes + 1] = name
  cumulative[#cumulative + 1] = total
end

-- Zipf with s = 1 by inverting the continuous 1/x law on [1, N+1): rank k is drawn with
-- probability log((k+1)/k) / log(N+1), about 1/k: a few heavy users and items, a long tail.
local function zipf(count)
  return math.floor((count + 1) ^ math.random())
end

local threads = {}
statuses = {}  -- a global: done() reads it from every thread with thread:get

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local r, scene = math.random(total), scenes[#scenes]
  for i = 1, #cumulative do
    if r <= cumulative[i] then scene = scenes[i]; break end
  end
  local who
  if math.random() < cold then
    who = string.format('"device_id":"d-%x"', math.random(0, 0x7fffffff))
  else
    who = string.format('"user_id":"u%d"', zipf(users))
  end
  local context = ""
  if scene == "detail_related" then
    context = string.format(',"context":{"item_id":%d}', zipf(items))
  end
  return wrk.format(nil, "/v1/recommend", nil, string.format(
    '{"scene":"%s",%s,"n":%d%s}', scene, who, n, context))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
    '"max_ms":%.3f,"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"statuses":{%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end
