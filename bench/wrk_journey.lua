-- The 3-step journey for wrk (bench/run.sh journey3): POST /login, then GET /items/{id} with
-- "Authorization: Bearer {token}" (token and id extracted from the login's JSON body), then
-- GET /static; then the next journey.
--
--   wrk -t1 -c50 -d10s -s bench/wrk_journey.lua http://127.0.0.1:PORT
--
-- wrk gives Lua no handle on the connection a response arrived on, and calls request() for a
-- connection on its next write event, not inside response(); so the journeys' state is a FIFO
-- of next steps: each response queues its journey's next request, each request() sends the
-- oldest queued one, or starts a new journey when none is queued. With one request in flight
-- per connection (no pipelining) every journey is one user's steps in order, each sent once
-- the previous response is in: 50 connections run 50 journeys at a time, a closed model with
-- 50 users (a journey's steps may travel on different connections of the same thread).
--
-- The `done` hook writes one JSON line on stderr, prefixed WRKJSON: wrk's totals and latency,
-- and this script's own counts per step (responses, and bad ones: a status other than 200 or a
-- login body without token and id), journeys completed, and journeys cut by a bad response.

-- formatted in init(), once wrk knows the Host header
local login_request, static_request

init = function(args)
  login_request = wrk.format("POST", "/login", {["Content-Type"] = "application/json"},
    '{"user": "demo", "password": "secret"}')
  static_request = wrk.format("GET", "/static")
end

-- thread state (each wrk thread has its own Lua state; -t1: one)
local queue, head, tail = {}, 1, 0
login_ok, login_bad, item_ok, item_bad, static_ok, static_bad, journeys, cut = 0, 0, 0, 0, 0, 0, 0, 0

local function push(step, req)
  tail = tail + 1
  queue[tail] = {step, req}
end

request = function()
  if head <= tail then
    local entry = queue[head]
    queue[head] = nil
    head = head + 1
    return entry[2]
  end
  return login_request
end

-- Which step a response answers: told by its body or status, since wrk does not say which
-- request a response is for. login: a body with "token"; item: a body with "name" or a 401;
-- static: an HTML body. Anything else is counted as a bad response of no step.
local function step_of(status, body)
  if body:find('"token"', 1, true) then return "login" end
  if status == 401 or body:find('"name"', 1, true) then return "item" end
  if body:find("<!doctype html>", 1, true) then return "static" end
  return nil
end

response = function(status, headers, body)
  local step = step_of(status, body)
  if step == "login" then
    local token = body:match('"token"%s*:%s*"([^"]*)"')
    local id = body:match('"id"%s*:%s*(%d+)')
    if status == 200 and token and id then
      login_ok = login_ok + 1
      push("item", wrk.format("GET", "/items/" .. id, {["Authorization"] = "Bearer " .. token}))
    else
      login_bad = login_bad + 1
      cut = cut + 1
    end
  elseif step == "item" then
    if status == 200 then
      item_ok = item_ok + 1
      push("static", static_request)
    else
      item_bad = item_bad + 1
      cut = cut + 1
    end
  elseif step == "static" and status == 200 then
    static_ok = static_ok + 1
    journeys = journeys + 1
  else
    static_bad = static_bad + 1
    cut = cut + 1
  end
end

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end

done = function(summary, latency, requests)
  local names = {"login_ok", "login_bad", "item_ok", "item_bad", "static_ok", "static_bad",
                 "journeys", "cut"}
  local totals = {}
  for _, name in ipairs(names) do totals[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do totals[name] = totals[name] + (thread:get(name) or 0) end
  end
  local e = summary.errors
  io.stderr:write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "steps": {"login": {"ok": %d, "bad": %d}, ' ..
    '"item": {"ok": %d, "bad": %d}, "static": {"ok": %d, "bad": %d}}, "journeys": %d, "cut": %d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max, e.connect, e.read, e.write,
    e.status, e.timeout, totals.login_ok, totals.login_bad, totals.item_ok, totals.item_bad,
    totals.static_ok, totals.static_bad, totals.journeys, totals.cut))
end
