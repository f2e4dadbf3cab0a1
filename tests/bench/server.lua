-- The Lua server side of `make bench` (build/bench.sh): an echo server through the real
-- module, standalone mode, on 127.0.0.1 with a free port.
--   lua5.1 server.lua SECS   prints its URL ("ws://127.0.0.1:PORT/"), echoes every message
--                            (kind kept) for SECS seconds at most, then exits
local ws = require "verawebsockets"
local secs = tonumber(arg[1] or "60")
local srv = assert(ws.listen {
	port = 0,
	standalone = true,
	event_handlers = {
		message = function(wso, data, kind) ws.send(wso, data, kind) end,
	},
})
print("ws://127.0.0.1:" .. srv:port() .. "/")
io.stdout:flush()
ws.loop(secs * 1000)
ws.close(srv)
