-- The lua-http row of `make bench` (build/bench.sh): the same workloads as bench.lua,
-- through Debian's lua-http client (http.websocket on cqueues, pure Lua framing), for
-- comparison with the module. Same arguments and output:
--   lua5.1 luahttp.lua rtt URL N SIZE | mib URL N | ingest URL N SIZE
-- prints "<mode> N SECONDS" (wall clock from the open to the last message).
local websocket = require "http.websocket"
local cqueues = require "cqueues"
local mode, url, n, size = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4] or 100)

local msg, kind
if mode == "rtt" then
	msg, kind = string.rep("x", size), "text"
elseif mode == "mib" then
	msg, kind = string.rep("\165", 1048576), "binary"
elseif mode == "ingest" then
	url = string.format("%spush?n=%d&size=%d", url, n, size)
else
	error("usage: luahttp.lua rtt|mib|ingest URL N [SIZE]")
end

local ws = websocket.new_from_uri(url)
assert(ws:connect(10))
local start = cqueues.monotime()
local count = 0
if mode == "ingest" then
	while count < n do
		local data = ws:receive(30)
		if not data then error("receive failed after " .. count .. " messages") end
		count = count + 1
	end
else
	while count < n do
		assert(ws:send(msg, kind, 30))
		local data = ws:receive(30)
		if not data or #data ~= #msg then error("bad echo after " .. count .. " messages") end
		count = count + 1
	end
end
print(mode, n, cqueues.monotime() - start)
ws:close(1000, "done", 5)
