-- The conformance echo server: the server role of verawebsockets under test.
-- One ws.listen per argument, each a set of listen options "k=v;k=v" (an
-- empty argument: defaults), on 127.0.0.1 and a free port. Every message is
-- echoed as received (text as text, binary as binary). It prints
-- "PORT <i> <port>" per listener (i from 0, in argument order), then "READY".
-- A client that opens "/quit" closes every listener; the script ends when the
-- last connection has closed, or after VWS_CONF_SERVER_MS (default 600000).
-- Run: LUA_CPATH="build/out/amd64/inproc/?.so;;" lua5.1 server.lua "" "max_message_size=1000"
local ws = require "verawebsockets"

local servers = {}

local function log(...)
	io.stderr:write("server.lua: ", string.format(...), "\n")
end

local function quit()
	for _, srv in ipairs(servers) do
		ws.close(srv)
	end
end

local handlers = {
	open = function(_, path)
		if path == "/quit" then quit() end
	end,
	message = function(wso, data, kind)
		local ok, err = ws.send(wso, data, kind)
		-- A connection failed by a protocol error may be closing already.
		if not ok and os.getenv("VWS_CONF_TRACE") then log("send: %s", tostring(err)) end
	end,
}

for i, set in ipairs(arg) do
	local o = { port = 0, standalone = true, event_handlers = handlers }
	for kv in set:gmatch("[^;]+") do
		local k, v = kv:match("^([^=]+)=(.*)$")
		if v == "true" then v = true elseif v == "false" then v = false else v = tonumber(v) or v end
		o[k] = v
	end
	local srv, err = ws.listen(o)
	if not srv then
		log("listen %q: %s", set, tostring(err))
		os.exit(1)
	end
	servers[#servers + 1] = srv
	io.stdout:write(string.format("PORT %d %d\n", i - 1, srv:port()))
end
io.stdout:write("READY\n")
io.stdout:flush()

local ok, err = ws.loop(tonumber(os.getenv("VWS_CONF_SERVER_MS")) or 600000)
if not ok then
	log("ws.loop: %s; closing", tostring(err))
	quit()
	ws.loop(5000)
	os.exit(1)
end
