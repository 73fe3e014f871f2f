-- wrk script: realistic, varied beacon traffic for POST /api/event.
--
-- Each wrk thread simulates a pool of visitors. A visitor lands (pageview with a referrer,
-- UTM tags or a click id), browses a few pages (internal referrers), sends engagement
-- beacons and clicks that repeat the pageview's pageview_id, sometimes a custom event with
-- props, then leaves and is replaced by a new visitor (new address and user agent).
-- Client addresses vary through X-Forwarded-For (the bench server trusts loopback).
-- Engagement and clicks only go to a pageview sent over two seconds ago, as a real page's
-- would: a visitor picked sooner makes room for a new one (the pool grows with the rate).
--
-- Usage: wrk -d DURATION -s bench/events.lua URL -- SITE BENCH_DIR ACTIVE_SECONDS
-- Each connection stops sending after ACTIVE_SECONDS (shorter than wrk's DURATION), so no
-- request is cut in flight and every answer is counted: stored rows can be checked exactly.
-- At the end it prints one line, "BENCH_JSON {...}", that bench/ingest.py reads.

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local site = "bench.example"
local origin = "https://bench.example"

-- Shared with bench/datagen.py: bench/user_agents.txt and bench/landings.tsv.
local user_agents = {}
-- A landing: where the visit comes from ({referrer, "?query" or ""}), one entry per share.
local landings = {}

local sections = {"/", "/pricing", "/features", "/about", "/contact", "/signup", "/login"}
local topics = {"analytics", "privacy", "campaigns", "seo", "ads", "cookies", "dashboards", "gdpr"}
local downloads = {"/files/report-2025.pdf", "/files/pricing.xlsx", "/files/app-1.4.dmg", "/files/brochure.zip"}
local outbound = {"https://github.com/acme/tool", "https://twitter.com/acme", "https://docs.partner.example/setup", "https://www.youtube.com/watch?v=abc123"}
local event_names = {"Signup", "Add to cart", "Download brochure", "Newsletter", "Play video"}
local plans = {"free", "pro", "team", "enterprise"}
local screens = {360, 375, 390, 412, 768, 820, 1280, 1366, 1440, 1536, 1920, 2560}
local first_octets = {2, 5, 24, 31, 37, 46, 50, 62, 68, 73, 78, 81, 86, 91, 98, 104, 109, 142, 151, 176, 185, 189, 193, 201, 212, 217}

local visitors = {}
local FRESH_S = 2
local MAX_VISITORS = 100000
local active_seconds = 1e9
local deadline = nil
sent, sent_engagement, ok, bad, last_bad = 0, 0, 0, 0, 0
first_at, last_at = 0, 0

local function pick(list)
  return list[math.random(#list)]
end

local function hex(n)
  local out = {}
  for i = 1, n do
    out[i] = string.format("%x", math.random(0, 15))
  end
  return table.concat(out)
end

local function random_path()
  local r = math.random()
  if r < 0.35 then
    return pick(sections)
  elseif r < 0.8 then
    return "/blog/" .. pick(topics) .. "-" .. math.random(1, 60)
  else
    return "/docs/" .. pick(topics) .. "/" .. math.random(1, 25)
  end
end

local function new_visitor()
  return {
    ip = string.format("%d.%d.%d.%d", pick(first_octets), math.random(0, 255), math.random(0, 255), math.random(1, 254)),
    ua = pick(user_agents),
    screen = pick(screens),
    pages_left = math.random(1, 6),
    pv = nil,
    pv_at = 0,
    path = nil,
    engaged = 0,
  }
end

function init(args)
  site = args[1]
  origin = "https://" .. site
  for line in io.lines(args[2] .. "/user_agents.txt") do
    table.insert(user_agents, line)
  end
  for line in io.lines(args[2] .. "/landings.tsv") do
    if line:sub(1, 1) ~= "#" then
      local referrer, query = line:match("^([^\t]*)\t?(.*)$")
      table.insert(landings, {referrer, query ~= "" and "?" .. query or ""})
    end
  end
  active_seconds = tonumber(args[3])
  math.randomseed(os.time() * 100 + tid)
  for i = 1, 50 do
    visitors[i] = new_visitor()
  end
end

local function pageview(v)
  local path = random_path()
  local url, referrer
  if v.pv == nil then
    local landing = pick(landings)
    referrer, url = landing[1], origin .. path .. landing[2]
  else
    referrer, url = origin .. v.path, origin .. path
  end
  v.pv, v.pv_at, v.path, v.engaged = hex(16), now(), path, 0
  v.pages_left = v.pages_left - 1
  return '{"site":"' .. site .. '","type":"pageview","url":"' .. url .. '","referrer":"' .. referrer
    .. '","title":"Page ' .. path .. '","screen":' .. v.screen .. ',"pageview_id":"' .. v.pv .. '"}'
end

local function engagement(v)
  v.engaged = v.engaged + math.random(1500, 40000)
  return '{"site":"' .. site .. '","type":"engagement","url":"' .. origin .. v.path .. '","engaged_ms":'
    .. v.engaged .. ',"scroll":' .. math.random(5, 100) .. ',"pageview_id":"' .. v.pv .. '"}'
end

local function click(v)
  local target
  if math.random() < 0.5 then
    target = pick(outbound)
  else
    target = origin .. pick(downloads)
  end
  return '{"site":"' .. site .. '","type":"click","url":"' .. origin .. v.path .. '","target":"' .. target
    .. '","pageview_id":"' .. v.pv .. '"}'
end

local function custom(v)
  return '{"site":"' .. site .. '","type":"event","name":"' .. pick(event_names) .. '","url":"' .. origin
    .. v.path .. '","props":{"plan":"' .. pick(plans) .. '","step":"' .. math.random(1, 3)
    .. '"},"pageview_id":"' .. v.pv .. '"}'
end

function request()
  local at = now()
  if deadline == nil then
    deadline = at + active_seconds
    first_at = at
  end
  local i = math.random(#visitors)
  local v = visitors[i]
  local r = math.random()
  local body
  if v.pv ~= nil and at - v.pv_at < FRESH_S and #visitors < MAX_VISITORS then
    v = new_visitor()
    table.insert(visitors, v)
    body = pageview(v)
  elseif v.pv == nil or r < 0.5 or at - v.pv_at < FRESH_S then
    if v.pv ~= nil and v.pages_left <= 0 then
      v = new_visitor()
      visitors[i] = v
    end
    body = pageview(v)
  elseif r < 0.8 then
    body = engagement(v)
    sent_engagement = sent_engagement + 1
  elseif r < 0.93 then
    body = click(v)
  else
    body = custom(v)
  end
  sent = sent + 1
  return wrk.format("POST", "/api/event", {
    ["Content-Type"] = "text/plain;charset=UTF-8",
    ["User-Agent"] = v.ua,
    ["X-Forwarded-For"] = v.ip,
    ["Origin"] = origin,
  }, body)
end

-- Past the deadline a connection waits out the run instead of sending (nothing is cut).
function delay()
  if deadline ~= nil and now() >= deadline then
    return 3600000
  end
  return 0
end

function response(status, headers, body)
  last_at = now()
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    last_bad = status
  end
end

function done(summary, latency, requests)
  local s, se, o, b, lb = 0, 0, 0, 0, 0
  local first, last = math.huge, 0
  for _, thread in ipairs(threads) do
    s = s + thread:get("sent")
    se = se + thread:get("sent_engagement")
    first = math.min(first, thread:get("first_at"))
    last = math.max(last, thread:get("last_at"))
    o = o + thread:get("ok")
    b = b + thread:get("bad")
    if thread:get("last_bad") ~= 0 then lb = thread:get("last_bad") end
  end
  -- wrk calls request() once on the first thread to check the script: never sent.
  s = s - 1
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"active_s":%.6f,"requests":%d,"sent":%d,"sent_engagement":%d,'
      .. '"ok":%d,"bad":%d,"last_bad_status":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, last - first, summary.requests, s, se, o, b, lb,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
