-- POST /auth/refresh with a pool of independent signed-in sessions.
--
-- A refresh token is single use: each answer carries its successor (a new refresh cookie, the CSRF
-- cookie re-bound to it, the same CSRF token), and sending a spent one again is a reuse. wrk -t1
-- runs one Lua state for all connections, and response() does not know which connection (so which
-- session) it answers. Hence a queue: request() takes a free session, response() builds the
-- successor from the answer alone and puts it back. A session whose answer never came (in flight
-- when wrk stopped) or was not a 200 is dropped, never sent again.
--
-- wrk keeps one value per header name, so of the answer's two Set-Cookie headers only the last
-- would be seen; the bench server repeats a refresh answer's cookies in X-Bench-Cookies
-- (bench/server.py). Arguments: the file of sessions (refresh token<TAB>CSRF cookie<TAB>CSRF
-- token per line), and the file where done() writes the sessions still free, for the next round.

queue, head, tail = {}, 1, 1
refused, starved = 0, 0
statuses = {}  -- status -> count, of the refused answers

function init(args)
  out = args[2]
  for line in io.lines(args[1]) do
    queue[tail] = line
    tail = tail + 1
  end
end

function request()
  if head == tail then
    -- No free session: this request is refused (and voids the round) rather than reusing one.
    starved = starved + 1
    return wrk.format("POST", "/auth/refresh")
  end
  local line = queue[head]
  queue[head] = nil
  head = head + 1
  local refresh, csrf_cookie, csrf_token = string.match(line, "^([^\t]*)\t([^\t]*)\t([^\t]*)$")
  return wrk.format("POST", "/auth/refresh", {
    ["Cookie"] = "sb_refresh_token=" .. refresh .. "; myideas_csrf=" .. csrf_cookie,
    ["X-CSRF-Token"] = csrf_token,
  })
end

function response(status, headers, body)
  local cookies = headers["x-bench-cookies"]
  if status ~= 200 or cookies == nil then
    refused = refused + 1
    statuses[status] = (statuses[status] or 0) + 1
    return
  end
  local refresh = string.match(cookies, "sb_refresh_token=([^;]*)")
  local csrf_cookie = string.match(cookies, "myideas_csrf=([^;]*)")
  local csrf_token = string.match(body, '"csrfToken"%s*:%s*"([^"]+)"')
  if refresh == nil or csrf_cookie == nil or csrf_token == nil then
    refused = refused + 1
    return
  end
  queue[tail] = refresh .. "\t" .. csrf_cookie .. "\t" .. csrf_token
  tail = tail + 1
end

-- done() runs in wrk's main Lua state: the sessions live in the thread's, read through setup().
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local thread = threads[1]
  local free, first, last = thread:get("queue"), thread:get("head"), thread:get("tail")
  local file = assert(io.open(thread:get("out"), "w"))
  for i = first, last - 1 do
    file:write(free[i], "\n")
  end
  file:close()
  local refused_by = {}
  for status, count in pairs(thread:get("statuses")) do
    refused_by[#refused_by + 1] = status .. " x" .. count
  end
  io.write(string.format("Refresh sessions: refused %d (%s), starved %d, free %d\n",
    thread:get("refused"), table.concat(refused_by, ", "), thread:get("starved"), last - first))
end
