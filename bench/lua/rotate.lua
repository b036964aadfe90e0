-- Round-robin over prepared requests, for requests that need a body or differ from one another
-- (sign-in as 64 users, /auth/me with 64 users' tokens). The file named by the first argument
-- holds one request per line, fields separated by tabs:
--   METHOD<TAB>PATH<TAB>BODY<TAB>Name: value<TAB>Name: value ...
-- Every request is formatted once in init(); request() only hands out the next one.

local prepared = {}
local count, next_index = 0, 0

local function fields(line)
  local out, start = {}, 1
  while true do
    local stop = string.find(line, "\t", start, true)
    if stop == nil then
      out[#out + 1] = string.sub(line, start)
      return out
    end
    out[#out + 1] = string.sub(line, start, stop - 1)
    start = stop + 1
  end
end

function init(args)
  for line in io.lines(args[1]) do
    local f = fields(line)
    local headers = {}
    for k = 4, #f do
      local name, value = string.match(f[k], "^([^:]+):%s*(.*)$")
      headers[name] = value
    end
    local body = nil
    if f[3] ~= "" then body = f[3] end
    count = count + 1
    prepared[count] = wrk.format(f[1], f[2], headers, body)
  end
end

function request()
  next_index = next_index % count + 1
  return prepared[next_index]
end
