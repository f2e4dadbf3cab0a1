-- The conformance client: Autobahn's client procedure with verawebsockets.
-- Gets the case list from the conformance server (ws://HOST/cases), runs
-- every case on its own standalone connection, echoing each message exactly
-- as received (text as text, binary as binary), then fetches ws://HOST/report.
-- Run: LUA_CPATH="build/out/amd64/inproc/?.so;;" VWS_CONF_URL=ws://127.0.0.1:PORT lua5.1 client.lua
local ws = require "verawebsockets"

local base = assert(os.getenv("VWS_CONF_URL"), "VWS_CONF_URL not set")
local trace = os.getenv("VWS_CONF_TRACE")

local function log(...)
	io.stderr:write("client: ", string.format(...), "\n")
end

-- fetch returns the text the server sends on PATH (one message, then close).
local function fetch(path)
	local got
	local wso = ws.create{url = base .. path, standalone = true, event_handlers = {
		message = function(_, data) got = (got or "") .. data end,
		error = function(_, reason) log("%s: connection error: %s", path, tostring(reason)) end,
	}}
	local ok, err = wso:connect()
	if not ok then
		return nil, err
	end
	if not ws.loop(10000) then
		wso:close()
		ws.loop(1000)
		return nil, "timeout"
	end
	return got
end

local list, err = fetch("/cases")
if not list then
	log("cannot get the case list: %s", tostring(err))
	os.exit(1)
end

local handlers = {
	message = function(wso, data, kind)
		local ok, e = wso:send(data, kind)
		if not ok then log("send: %s", tostring(e)) end
	end,
	error = function(_, reason) log("connection error: %s", tostring(reason)) end,
}

local n = 0
for line in list:gmatch("[^\n]+") do
	local id, limit, opts = line:match("^([^\t]*)\t(%d+)\t(.*)$")
	local o = {url = base .. "/case/" .. id, standalone = true, event_handlers = handlers}
	for kv in opts:gmatch("[^;]+") do
		local k, v = kv:match("^([^=]+)=(.*)$")
		if v == "true" then v = true elseif v == "false" then v = false else v = tonumber(v) or v end
		o[k] = v
	end
	local ok, wso = pcall(ws.create, o)
	if not ok then
		log("case %s: create: %s", id, tostring(wso))
	else
		local cok, cerr = wso:connect()
		if not cok then
			log("case %s: connect: %s", id, tostring(cerr))
		else
			local t0 = os.clock()
			local done = ws.loop(tonumber(limit) + 1000)
			if not done then
				log("case %s: still %s after %d ms, closing", id, wso:state(), tonumber(limit) + 1000)
				wso:close()
				ws.loop(2000)
			end
			if trace then log("case %s done (%s)", id, wso:state()) end
		end
	end
	n = n + 1
	if n % 50 == 0 then collectgarbage() end
end

local report, rerr = fetch("/report")
if not report then
	log("cannot get the report: %s", tostring(rerr))
	os.exit(1)
end
log("ran %d cases; server says: %s", n, report)
