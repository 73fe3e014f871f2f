-- wrk script: realistic, varied beacon traffic for POST /api/event.
--
-- Each wrk thread simulates a pool of visitors. A visitor lands (pageview with a referrer,
-- UTM tags or a click id), browses a few pages (internal referrers), sends engagement
-- beacons and clicks that repeat the pageview's pageview_id, sometimes a custom event with
-- props, then leaves and is replaced by a new visitor (new address and user agent).
-- Client addresses vary through X-Forwarded-For (the bench server trusts loopback).
-- Usage: wrk -s bench/events.lua URL -- [site]
-- At the end it prints one line, "BENCH_JSON {...}", that bench/ingest.py reads.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local site = "bench.example"
local origin = "https://bench.example"

local user_agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 OPR/114.0.0.0",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:132.0) Gecko/20100101 Firefox/132.0",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
  "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 354.0.0.29.90 (iPhone14,5; iOS 17_5; en_US; en; scale=3.00; 1170x2532; 653402876)",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/480.0.0.41.98;FBBV/651520151;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]",
  "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 12; Redmi Note 11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.6668.100 Mobile Safari/537.36",
  "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
  "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Linux; Android 13; M2101K6G Build/TKQ1.221013.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.107 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/487.0.0.45.68;]",
  "Mozilla/5.0 (Linux; Android 14; CPH2581) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 LinkedInApp/9.30.1234",
}

-- A landing: where the visit comes from (referrer) and what the landing URL carries.
local landings = {
  {"https://www.google.com/", ""},
  {"https://www.google.com/", ""},
  {"https://www.google.com/", ""},
  {"https://www.google.co.uk/", ""},
  {"https://www.bing.com/", ""},
  {"https://duckduckgo.com/", ""},
  {"", ""},
  {"", ""},
  {"", ""},
  {"https://www.facebook.com/", ""},
  {"https://l.instagram.com/", ""},
  {"https://t.co/x1y2z3", ""},
  {"https://www.linkedin.com/", ""},
  {"https://www.reddit.com/r/analytics/", ""},
  {"https://news.ycombinator.com/", ""},
  {"https://chatgpt.com/", ""},
  {"https://www.perplexity.ai/", ""},
  {"https://www.youtube.com/", ""},
  {"https://blog.partner.example/review", ""},
  {"https://github.com/acme/tool", ""},
  {"https://www.google.com/", "?gclid=Cj0KCQiA" },
  {"https://www.google.com/", "?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=acme"},
  {"https://www.bing.com/", "?msclkid=8f3a2b&utm_source=bing&utm_medium=cpc&utm_campaign=brand"},
  {"https://www.facebook.com/", "?utm_source=facebook&utm_medium=paid_social&utm_campaign=black_friday&fbclid=IwAR2x"},
  {"", "?utm_source=newsletter&utm_medium=email&utm_campaign=weekly_42&utm_content=header"},
  {"", "?utm_source=newsletter&utm_medium=email&utm_campaign=weekly_43&utm_content=footer"},
  {"https://www.instagram.com/", "?utm_source=instagram&utm_medium=social&utm_campaign=launch"},
  {"", "?ref=producthunt"},
  {"https://partner.example/", "?utm_source=partner&utm_medium=affiliate&utm_campaign=q4"},
}

local sections = {"/", "/pricing", "/features", "/about", "/contact", "/signup", "/login"}
local topics = {"analytics", "privacy", "campaigns", "seo", "ads", "cookies", "dashboards", "gdpr"}
local downloads = {"/files/report-2025.pdf", "/files/pricing.xlsx", "/files/app-1.4.dmg", "/files/brochure.zip"}
local outbound = {"https://github.com/acme/tool", "https://twitter.com/acme", "https://docs.partner.example/setup", "https://www.youtube.com/watch?v=abc123"}
local event_names = {"Signup", "Add to cart", "Download brochure", "Newsletter", "Play video"}
local plans = {"free", "pro", "team", "enterprise"}
local screens = {360, 375, 390, 412, 768, 820, 1280, 1366, 1440, 1536, 1920, 2560}
local first_octets = {2, 5, 24, 31, 37, 46, 50, 62, 68, 73, 78, 81, 86, 91, 98, 104, 109, 142, 151, 176, 185, 189, 193, 201, 212, 217}

local visitors = {}
local pool = 400
sent, ok, bad, last_bad = 0, 0, 0, 0

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
    path = nil,
    engaged = 0,
  }
end

function init(args)
  if args[1] then
    site = args[1]
    origin = "https://" .. site
  end
  math.randomseed(os.time() * 100 + tid)
  for i = 1, pool do
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
  v.pv, v.path, v.engaged = hex(16), path, 0
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
  local i = math.random(pool)
  local v = visitors[i]
  local r = math.random()
  local body
  if v.pv == nil or r < 0.5 then
    if v.pv ~= nil and v.pages_left <= 0 then
      v = new_visitor()
      visitors[i] = v
    end
    body = pageview(v)
  elseif r < 0.8 then
    body = engagement(v)
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

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    last_bad = status
  end
end

function done(summary, latency, requests)
  local s, o, b, lb = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    s = s + thread:get("sent")
    o = o + thread:get("ok")
    b = b + thread:get("bad")
    if thread:get("last_bad") ~= 0 then lb = thread:get("last_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"sent":%d,"ok":%d,"bad":%d,"last_bad_status":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, s, o, b, lb,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
