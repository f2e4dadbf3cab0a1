-- tests/luuphost/host.lua - a pure-Lua stand-in of a Luup host (after openLuup), run by
-- the real lua5.1 with Debian's LuaSocket:
--
--   lua5.1 tests/luuphost/host.lua [options] PLUGIN.lua...
--
-- One lua_State. Each plugin file is loaded with loadfile + setfenv into its own
-- environment, gets its own device number and its own copy of the `luup` table
-- (luup.device differs per environment, as in openLuup's loader.compile_lua). The
-- host keeps a "current device" that it sets while it runs a plugin's code (loading,
-- startup, call_delay/call_timer callbacks, request handlers) and restores after, as
-- openLuup's scheduler.context_switch does; luup.log, luup.register_handler and
-- luup.call_delay use it. One single-threaded main loop on socket.select runs the
-- timers, an HTTP/1.1 server on 127.0.0.1 (GET /data_request?id=lr_<name>&... calls
-- the function a plugin registered with luup.register_handler) and, in busy mode,
-- an internal HTTP client of the host's own port. Every socket is non-blocking.
--
-- Options:
--   --port N            HTTP port (default: env VWS_LUUP_PORT, else 3480)
--   --seconds S         run time (default 30); then each plugin's host_finish() runs,
--                       the loop goes on for --drain seconds, and the host exits
--   --drain S           seconds after host_finish (default 2)
--   --log FILE          the host log (default luuphost.log)
--   --report FILE       what plugins reported with host_report, "dev<TAB>key<TAB>value"
--   --device N          device number of the first plugin (default 11; then 12, ...)
--   --env MODE          how a plugin environment is made: copy (a shallow copy of a
--                       pristine _G, as openLuup's loader does), index (an empty table
--                       whose __index chain holds luup and then _G), mixed (odd
--                       plugins copy, even ones index; default)
--   --startup NAME      global called as NAME(lul_device) after loading (default startup)
--   --close             close the connection after each response (default keep-alive)
--   --chunked           answer with Transfer-Encoding: chunked (as openLuup's server)
--                       instead of Content-Length
--   --idle-timeout S    close a connection idle this long (default 90)
--   --busy              a 0-second call_delay chain that allocates, and an internal
--                       client polling /data_request?id=lr_host_status ~20 times/s
--   --poll-hz N         rate of that client (default 20)
--
-- What a plugin's environment has besides the standard globals: luup (a copy per
-- plugin), and for the tests host_report(key, value), host_current_device(),
-- host_time_left() (seconds until the run ends).
--
-- Exit status: 0; 1 on an internal error (a Lua error in the loop, the busy-mode client
-- failing); 2 on bad usage; 3 when the port cannot be bound; 4 when a plugin cannot be
-- loaded. The last stdout lines are a summary ("luuphost: ...").

local socket = require "socket"

-- The pristine copy of the globals that plugin environments are made from (openLuup's
-- loader: taken before anything else is defined; no `arg`).
local PRISTINE = {}
for k, v in pairs(_G) do PRISTINE[k] = v end
PRISTINE.arg = nil

local now = socket.gettime
local T0 = now()

-- ---------------------------------------------------------------- options
local opt = {
	port = tonumber(os.getenv("VWS_LUUP_PORT") or "") or 3480,
	seconds = 30, drain = 2, log = "luuphost.log", report = nil, device = 11,
	env = "mixed", startup = "startup", close = false, chunked = false,
	idle_timeout = 90, busy = false, poll_hz = 20,
}
local files = {}
do
	local numeric = { port = true, seconds = true, drain = true, device = true, ["idle-timeout"] = true, ["poll-hz"] = true }
	local valued = { log = true, report = true, env = true, startup = true }
	local i = 1
	while arg[i] do
		local a = arg[i]
		local name = a:match("^%-%-([%w%-]+)$")
		if name and (numeric[name] or valued[name]) then
			local v = arg[i + 1]
			if v == nil then io.stderr:write("luuphost: ", a, " needs a value\n"); os.exit(2) end
			if numeric[name] then
				v = tonumber(v)
				if not v then io.stderr:write("luuphost: ", a, " needs a number\n"); os.exit(2) end
			end
			opt[name:gsub("%-", "_")] = v
			i = i + 2
		elseif name == "close" or name == "chunked" or name == "busy" then
			opt[name] = true
			i = i + 1
		elseif name then
			io.stderr:write("luuphost: unknown option ", a, "\n"); os.exit(2)
		else
			files[#files + 1] = a
			i = i + 1
		end
	end
	if opt.env ~= "copy" and opt.env ~= "index" and opt.env ~= "mixed" then
		io.stderr:write("luuphost: --env copy|index|mixed\n"); os.exit(2)
	end
end

-- ---------------------------------------------------------------- log
-- Lines as LuaUPnP.log has them: "<level>\t<mm/dd hh:mm:ss.mmm> <where>: <text>".
local logf = assert(io.open(opt.log, "w"))
logf:setvbuf("line")

local function stamp()
	local t = now()
	return os.date("%m/%d %H:%M:%S", math.floor(t)) .. string.format(".%03d", math.floor((t % 1) * 1000))
end

local function oneline(s)
	return (tostring(s):gsub("\r?\n", "\\n"))
end

local function hlog(level, fmt, ...)
	logf:write(string.format("%02d\t%s %s\n", level, stamp(), oneline(string.format(fmt, ...))))
end

-- ---------------------------------------------------------------- state
local current_device = 0 -- the device whose code runs now (0: the host itself)
local devices = {}       -- [dev] = {env=, file=, name=, ready=, vars={}}
local handlers = {}      -- ["lr_<name>"] = {fn=, dev=, fname=}
local delays = {}        -- pending call_delay/call_timer callbacks
local delay_seq = 0
local report = {}        -- [dev] = {key = value}
local stats = {
	loops = 0, requests = 0, status = {}, by_id = {}, conns = 0, conns_closed_idle = 0,
	handler_errors = 0, callback_errors = 0, busy_ticks = 0, poll_ok = 0, poll_fail = 0,
	internal_errors = 0, delays_run = 0, max_handler_ms = 0,
}
local deadline = T0 + opt.seconds

local function internal_error(fmt, ...)
	stats.internal_errors = stats.internal_errors + 1
	local msg = string.format(fmt, ...)
	hlog(1, "host: INTERNAL ERROR: %s", msg)
	io.stderr:write("luuphost: internal error: ", msg, "\n")
end

-- context_switch(dev, fn, ...) -> ok, results...: runs fn with dev as the current
-- device (nil keeps the current one), protected, and restores the previous device.
local function context_switch(dev, fn, ...)
	local old = current_device
	current_device = dev or old
	local function restore(ok, ...)
		current_device = old
		return ok, ...
	end
	local n, args = select("#", ...), { ... } -- lua5.1's xpcall passes no arguments
	return restore(xpcall(function() return fn(unpack(args, 1, n)) end, debug.traceback))
end

-- The host's own code (device 0) looks names up in this environment.
local sysenv = setmetatable({}, { __index = _G })
devices[0] = { env = sysenv, file = "(host)", name = "host", ready = true, vars = {} }

-- entry_point(name) -> the function a plugin means by a global name: looked up in the
-- current device's environment, then in the globals (openLuup's luup.entry_point).
local function entry_point(name, what)
	local dev = devices[current_device]
	local fn = dev and dev.env[name]
	if fn == nil then fn = rawget(_G, name) end
	if type(fn) ~= "function" then
		hlog(1, "%s: unknown global function name: %s (device %d)", what, tostring(name), current_device)
		return nil
	end
	return fn
end

local function schedule(fn, seconds, data, dev, name, kind)
	delay_seq = delay_seq + 1
	delays[#delays + 1] = { t = now() + seconds, seq = delay_seq, fn = fn, data = data, dev = dev, name = name, kind = kind }
end

-- ---------------------------------------------------------------- luup
local luup = {}

luup.version = "1.7.0"
luup.version_branch, luup.version_major, luup.version_minor = 1, 7, 0
luup.devices = {}

function luup.log(msg, level)
	level = tonumber(level) or 50
	logf:write(string.format("%02d\t%s luup_log:%d: %s\n", level, stamp(), current_device, oneline(msg)))
end

function luup.register_handler(fname, name)
	if type(fname) ~= "string" or type(name) ~= "string" then
		error("luup.register_handler(function_name, request_name): strings expected", 2)
	end
	local fn = entry_point(fname, "luup.register_handler")
	if not fn then return end
	handlers["lr_" .. name] = { fn = fn, dev = current_device, fname = fname }
	hlog(2, "luup.register_handler: %s as lr_%s (device %d)", fname, name, current_device)
end

function luup.call_delay(fname, seconds, data, thread)
	if type(fname) ~= "string" then error("luup.call_delay: function name (string) expected", 2) end
	local s = tonumber(seconds)
	if not s or s < 0 then error("luup.call_delay: seconds (number >= 0) expected", 2) end
	local fn = entry_point(fname, "luup.call_delay")
	if not fn then return nil end
	schedule(fn, s, data, current_device, fname, "delay")
	return 0
end

-- call_timer(fname, type, time, days, data[, recurring]): type 1 (interval) only;
-- time "N", "Ns", "Nm", "Nh" or "Nd" (fractions allowed). One-shot, as Luup's (openLuup:
-- "simple luup call_timers are one-shot"), unless recurring is true.
function luup.call_timer(fname, ttype, time, days, data, recurring)
	if type(fname) ~= "string" then error("luup.call_timer: function name (string) expected", 2) end
	if tonumber(ttype) ~= 1 then error("luup.call_timer: only type 1 (interval) is implemented by this host", 2) end
	local n, unit = tostring(time or ""):lower():match("^%s*(%d*%.?%d+)%s*([smhd]?)%s*$")
	if not n then error("luup.call_timer: bad interval " .. tostring(time), 2) end
	local seconds = tonumber(n) * ({ [""] = 1, s = 1, m = 60, h = 3600, d = 86400 })[unit]
	local fn = entry_point(fname, "luup.call_timer")
	if not fn then return nil end
	local dev = current_device
	local function fire(d)
		if recurring then schedule(fire, seconds, data, dev, fname, "timer") end
		return fn(d, now() + seconds)
	end
	schedule(fire, seconds, data, dev, fname, "timer")
	hlog(2, "luup.call_timer: %s interval %s (device %d)", fname, tostring(time), dev)
	return 0
end

function luup.variable_set(service, name, value, device, startup)
	local d = devices[tonumber(device) or current_device]
	if not d then hlog(1, "luup.variable_set: no such device %s", tostring(device)); return end
	local key = tostring(service) .. "," .. tostring(name)
	d.vars[key] = { value = tostring(value), time = os.time() }
end

function luup.variable_get(service, name, device)
	local d = devices[tonumber(device) or current_device]
	if not d then return nil end
	local v = d.vars[tostring(service) .. "," .. tostring(name)]
	if v then return v.value, v.time end
	return nil
end

function luup.is_ready(device)
	local d = devices[tonumber(device) or -1]
	return d ~= nil and d.ready == true
end

function luup.sleep(ms) socket.sleep((tonumber(ms) or 0) / 1000) end

function luup.task(message, status, description, handle)
	hlog(2, "luup.task: status=%s %s: %s (device %d)", tostring(status), tostring(description), tostring(message), current_device)
	return handle == -1 and 1 or handle
end

function luup.set_failure(value, device) end

function luup.attr_get(attribute, device)
	local d = devices[tonumber(device) or 0]
	if not d then return nil end
	if attribute == "name" then return d.name end
	if attribute == "id" then return tostring(device) end
	return nil
end

function luup.attr_set(attribute, value, device) end

-- ---------------------------------------------------------------- plugins
local function shallow_copy(t)
	local c = {}
	for k, v in pairs(t) do c[k] = v end
	return c
end

local function env_mode(i)
	if opt.env == "mixed" then return (i % 2 == 1) and "copy" or "index" end
	return opt.env
end

-- new_environment(dev, name, mode): "copy" is openLuup's (a shallow copy of the pristine
-- globals with luup and the host_* functions in it); "index" is an empty table whose
-- __index is a per-plugin table holding luup and the host_* functions, whose __index is
-- _G: there `luup` is reachable only through __index.
local function new_environment(dev, name, mode)
	local env, api
	if mode == "copy" then
		env = shallow_copy(PRISTINE)
		api = env
	else
		api = setmetatable({}, { __index = _G })
		env = setmetatable({}, { __index = api })
	end
	env._NAME = name
	env._G = env -- this IS the plugin's global environment
	env.module = function() end
	local l = shallow_copy(luup) -- a COPY of luup, so that luup.device is the plugin's own
	l.device = dev
	api.luup = l
	api.host_report = function(key, value)
		report[dev] = report[dev] or {}
		report[dev][tostring(key)] = value
		if current_device ~= dev then
			report[dev].host_report_wrong_device = (report[dev].host_report_wrong_device or 0) + 1
		end
	end
	api.host_current_device = function() return current_device end
	api.host_time_left = function() return deadline - now() end
	return env
end

-- Makes the module of the tests (tests/luuphost/?.lua) loadable by plugins.
do
	local dir = (arg[0] or ""):match("^(.*)/[^/]*$") or "."
	package.path = dir .. "/?.lua;" .. package.path
end

for i, file in ipairs(files) do
	local dev = opt.device + i - 1
	local name = file:match("([^/]+)$")
	local mode = env_mode(i)
	local chunk, err = loadfile(file)
	if not chunk then
		hlog(1, "host: cannot load %s: %s", file, tostring(err))
		io.stderr:write("luuphost: cannot load ", file, ": ", tostring(err), "\n")
		os.exit(4)
	end
	local env = new_environment(dev, name, mode)
	devices[dev] = { env = env, file = file, name = name, ready = false, vars = {}, mode = mode }
	luup.devices[dev] = { description = name, device_type = "urn:schemas-luuphost:device:Plugin:1", device_num_parent = 0 }
	setfenv(chunk, env)
	hlog(2, "host: loading %s as device %d (environment: %s)", file, dev, mode)
	local ok, lerr = context_switch(dev, chunk)
	if not ok then
		hlog(1, "host: ERROR loading %s (device %d): %s", file, dev, tostring(lerr))
		io.stderr:write("luuphost: error loading ", file, ": ", tostring(lerr), "\n")
		os.exit(4)
	end
end

-- Device startups run as the first jobs of the loop (as openLuup's device_start).
for i = 1, #files do
	local dev = opt.device + i - 1
	schedule(function()
		local d = devices[dev]
		local fn = d.env[opt.startup]
		if type(fn) ~= "function" then
			d.ready = true
			hlog(2, "host: [%d] no startup function %s", dev, opt.startup)
			return
		end
		hlog(2, "host: [%d] device startup", dev)
		local a, b, c = fn(dev)
		d.ready = true
		hlog(2, "host: [%d] device startup completed: status=%s, msg=%s, name=%s", dev, tostring(a), tostring(b), tostring(c))
	end, 0, nil, dev, "startup", "startup")
end

-- ---------------------------------------------------------------- HTTP server
local server, berr = socket.bind("127.0.0.1", opt.port, 64)
if not server then
	hlog(1, "host: cannot bind 127.0.0.1:%d: %s", opt.port, tostring(berr))
	io.stderr:write("luuphost: cannot bind 127.0.0.1:", opt.port, ": ", tostring(berr), "\n")
	os.exit(3)
end
server:settimeout(0)
hlog(2, "host: HTTP server on 127.0.0.1:%d (%s%s)", opt.port, opt.close and "close after each response" or "keep-alive",
	opt.chunked and ", chunked" or "")

local conns = {} -- [sock] = conn
local conn_n = 0
local MAX_HEADER = 16384
local MAX_BODY = 1048576
local MAX_CONNS = 200

local REASON = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
	[413] = "Payload Too Large", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
	[501] = "Not Implemented", [503] = "Service Unavailable" }

local function url_decode(s)
	s = s:gsub("+", " ")
	return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
	local p = {}
	for pair in q:gmatch("[^&]+") do
		local k, v = pair:match("^([^=]*)=?(.*)$")
		p[url_decode(k)] = url_decode(v)
	end
	return p
end

-- respond(c, code, body, mime, keep): queues one response on connection c.
local function respond(c, code, body, mime, keep, head)
	stats.status[code] = (stats.status[code] or 0) + 1
	local h = {
		"HTTP/1.1 " .. code .. " " .. (REASON[code] or "Unknown"),
		"Server: luuphost/1 (verawebsockets test host)",
		"Content-Type: " .. (mime or "text/plain"),
		"Connection: " .. (keep and "keep-alive" or "close"),
	}
	local payload
	if opt.chunked then
		h[#h + 1] = "Transfer-Encoding: chunked"
		local parts, i = {}, 1
		while i <= #body do
			local piece = body:sub(i, i + 15999)
			parts[#parts + 1] = string.format("%x\r\n", #piece) .. piece .. "\r\n"
			i = i + 16000
		end
		parts[#parts + 1] = "0\r\n\r\n"
		payload = table.concat(parts)
	else
		h[#h + 1] = "Content-Length: " .. #body
		payload = body
	end
	c.out = c.out .. table.concat(h, "\r\n") .. "\r\n\r\n" .. (head and "" or payload)
	if not keep then c.closing = true end
end

-- dispatch(c, method, target) -> code, body, mime
local function dispatch(c, method, target)
	local path, query = target:match("^([^?]*)%??(.*)$")
	if path ~= "/data_request" and path ~= "/port_3480/data_request" then
		return 404, "Not found: " .. path .. "\n"
	end
	local params = parse_query(query or "")
	local id = params.id or ""
	stats.by_id[id] = (stats.by_id[id] or 0) + 1
	local h = handlers[id]
	if not h then
		return 404, "No handler for id=" .. id .. "\n"
	end
	local format = params.output_format
	params.id, params.output_format = nil, nil -- not passed on (openLuup's http_query)
	local request_name = id:gsub("^lr_", "")
	local t0 = now()
	local ok, resp, mime = context_switch(h.dev, h.fn, request_name, params, format)
	local ms = (now() - t0) * 1000
	if ms > stats.max_handler_ms then stats.max_handler_ms = ms end
	if not ok then
		stats.handler_errors = stats.handler_errors + 1
		hlog(1, "host: ERROR in handler %s (%s, device %d): %s", id, h.fname, h.dev, tostring(resp))
		return 500, "Error in handler " .. id .. ": " .. tostring(resp) .. "\n"
	end
	if resp == nil then resp = "" end
	if type(resp) ~= "string" then resp = tostring(resp) end
	return 200, resp, type(mime) == "string" and mime or "text/plain"
end

-- process(c): handles every complete request in c.inbuf, in order.
local function process(c)
	while not c.closing do
		local hend, hstop = c.inbuf:find("\r?\n\r?\n")
		if not hend then
			if #c.inbuf > MAX_HEADER then
				hlog(3, "http: #%d request head over %d bytes", c.id, MAX_HEADER)
				respond(c, 431, "Request head too large\n", nil, false)
			end
			return
		end
		if hend - 1 > MAX_HEADER then
			respond(c, 431, "Request head too large\n", nil, false)
			return
		end
		local head = c.inbuf:sub(1, hend - 1)
		local reqline = head:match("^([^\r\n]*)")
		local method, target, major, minor = reqline:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
		hlog(10, "http: #%d %s", c.id, reqline)
		stats.requests = stats.requests + 1
		c.reqs = c.reqs + 1
		if not method then
			c.inbuf = ""
			respond(c, 400, "Bad request line\n", nil, false)
			return
		end
		local hdr = {}
		for line in head:gmatch("\n([^\r\n]*)") do
			local k, v = line:match("^([^:]+):%s*(.-)%s*$")
			if k then hdr[k:lower()] = v end
		end
		local len = 0
		if hdr["transfer-encoding"] then
			c.inbuf = ""
			respond(c, 501, "Request bodies with Transfer-Encoding are not supported\n", nil, false)
			return
		end
		if hdr["content-length"] then
			len = tonumber(hdr["content-length"])
			if not len or len < 0 or len ~= math.floor(len) then
				c.inbuf = ""
				respond(c, 400, "Bad Content-Length\n", nil, false)
				return
			end
			if len > MAX_BODY then
				c.inbuf = ""
				respond(c, 413, "Body too large\n", nil, false)
				return
			end
		end
		if #c.inbuf < hstop + len then return end -- the body is still coming
		c.inbuf = c.inbuf:sub(hstop + len + 1)
		local conn_hdr = (hdr.connection or ""):lower()
		local keep
		if major .. "." .. minor == "1.0" then
			keep = conn_hdr:find("keep%-alive") ~= nil
		else
			keep = conn_hdr:find("close") == nil
		end
		if opt.close then keep = false end
		if method ~= "GET" and method ~= "HEAD" and method ~= "POST" then
			respond(c, 405, "Method not allowed\n", nil, keep)
		else
			local code, body, mime = dispatch(c, method, target)
			respond(c, code, body, mime, keep, method == "HEAD")
		end
	end
end

local function close_conn(c, why)
	if c.dead then return end
	c.dead = true
	c.sock:close()
	conns[c.sock] = nil
	hlog(20, "http: #%d closed (%s) after %d requests", c.id, why, c.reqs)
end

local function accept_all()
	for _ = 1, 32 do
		local s = server:accept()
		if not s then return end
		s:settimeout(0)
		s:setoption("tcp-nodelay", true)
		conn_n = conn_n + 1
		stats.conns = stats.conns + 1
		local c = { sock = s, id = conn_n, inbuf = "", out = "", reqs = 0, last = now() }
		local n = 0
		for _ in pairs(conns) do n = n + 1 end
		conns[s] = c
		hlog(20, "http: #%d new connection from %s", c.id, tostring((s:getpeername())))
		if n >= MAX_CONNS then
			respond(c, 503, "Too many connections\n", nil, false)
		end
	end
end

local function read_conn(c)
	for _ = 1, 16 do
		local data, err, partial = c.sock:receive(8192)
		data = data or partial
		if data and #data > 0 then
			c.last = now()
			if not c.closing then c.inbuf = c.inbuf .. data end
		end
		if err == "closed" then
			c.eof = true
			break
		elseif err then
			if err ~= "timeout" then c.eof = true end
			break
		end
	end
	process(c)
end

local function write_conn(c)
	if #c.out > 0 then
		local last, err, partial = c.sock:send(c.out)
		local n = last or partial or 0
		if n > 0 then
			c.out = c.out:sub(n + 1)
			c.last = now()
		end
		if err and err ~= "timeout" then
			close_conn(c, "send: " .. err)
			return
		end
	end
	if #c.out == 0 and c.closing then close_conn(c, "response sent, close") end
end

-- ---------------------------------------------------------------- busy mode
local poller -- the internal HTTP client (busy mode): one connection, keep-alive
if opt.busy then
	-- The host's own handler and a 0-second call_delay chain that allocates (device 0).
	local sink
	function sysenv.host_status(lul_request, lul_parameters, lul_outputformat)
		local parts = {}
		for k, v in pairs(stats) do
			if type(v) == "number" then parts[#parts + 1] = k .. "=" .. v end
		end
		table.sort(parts)
		return "status n=" .. tostring(lul_parameters.n) .. " " .. table.concat(parts, " "), "text/plain"
	end
	function sysenv.host_busy_tick(data)
		local t = {}
		for i = 1, 1000 do t[i] = { i, i * 2 } end
		local s = {}
		for i = 1, 20 do s[i] = string.rep(string.char(65 + i % 26), 50 + i) .. i end
		sink = { t, table.concat(s, ",") }
		stats.busy_ticks = stats.busy_ticks + 1
		luup.call_delay("host_busy_tick", 0, "")
	end
	context_switch(0, function()
		luup.register_handler("host_status", "host_status")
		luup.call_delay("host_busy_tick", 0, "")
	end)
	poller = { n = 0, next = now() + 0.5, interval = 1 / opt.poll_hz }
end

local function poller_close(p, why)
	if p.sock then p.sock:close() end
	p.sock, p.state, p.inbuf = nil, nil, ""
	if why then hlog(20, "poller: connection closed (%s)", why) end
end

local function poller_fail(p, why)
	stats.poll_fail = stats.poll_fail + 1
	hlog(1, "poller: request %d failed: %s", p.n, why)
	poller_close(p)
end

-- poller_step(p): starts a request when due; the select loop calls poller_read and
-- poller_write when its socket is ready.
local function poller_step(p)
	local t = now()
	if p.state == nil and t >= p.next then
		p.n = p.n + 1
		p.next = t + p.interval
		p.sent_at = t
		p.req = "GET /data_request?id=lr_host_status&n=" .. p.n .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. opt.port .. "\r\n\r\n"
		if not p.sock then
			local s = socket.tcp()
			s:settimeout(0)
			local ok, err = s:connect("127.0.0.1", opt.port)
			p.sock = s
			if ok then p.state = "send" elseif err == "timeout" or err == "Operation already in progress" then
				p.state = "connect"
			else
				poller_fail(p, "connect: " .. tostring(err))
				return
			end
		else
			p.state = "send"
		end
		p.inbuf = ""
	elseif p.state and t - p.sent_at > 5 then
		poller_fail(p, "no answer in 5 s (state " .. p.state .. ")")
	end
end

local function poller_write(p)
	if p.state == "connect" then
		if not p.sock:getpeername() then
			poller_fail(p, "connect failed")
			return
		end
		p.state = "send"
	end
	if p.state == "send" then
		local last, err, partial = p.sock:send(p.req)
		local n = last or partial or 0
		p.req = p.req:sub(n + 1)
		if err and err ~= "timeout" then
			poller_fail(p, "send: " .. err)
		elseif #p.req == 0 then
			p.state = "read"
		end
	end
end

local function poller_read(p)
	local data, err, partial = p.sock:receive(8192)
	data = data or partial
	if data then p.inbuf = p.inbuf .. data end
	local hend, hstop = p.inbuf:find("\r\n\r\n", 1, true)
	if hend then
		local head = p.inbuf:sub(1, hend - 1)
		local code = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
		local len = tonumber(head:lower():match("\ncontent%-length:%s*(%d+)"))
		local body, complete
		if len then
			complete = #p.inbuf >= hstop + len
			body = p.inbuf:sub(hstop + 1, hstop + len)
		elseif head:lower():find("\ntransfer%-encoding:%s*chunked") then
			complete = p.inbuf:find("\r\n0\r\n\r\n", hstop - 1, true) ~= nil
			body = p.inbuf:sub(hstop + 1):gsub("^%x+\r\n", "")
		end
		if complete then
			local close = head:lower():find("\nconnection:%s*close") ~= nil
			if code == 200 and body:find("^status n=" .. p.n .. " ") then
				stats.poll_ok = stats.poll_ok + 1
			else
				poller_fail(p, "bad answer: " .. tostring(code) .. " " .. oneline(body:sub(1, 80)))
				return
			end
			p.state = nil
			p.inbuf = ""
			if close then poller_close(p) end
			return
		end
	end
	if err == "closed" then
		poller_fail(p, "closed by the host before the answer")
	elseif err and err ~= "timeout" then
		poller_fail(p, "receive: " .. err)
	end
end

-- ---------------------------------------------------------------- main loop
local function run_delays()
	local t = now()
	local due, keep = {}, {}
	for _, d in ipairs(delays) do
		if d.t <= t then due[#due + 1] = d else keep[#keep + 1] = d end
	end
	if #due == 0 then return end
	delays = keep -- callbacks may add to the list
	table.sort(due, function(a, b) if a.t ~= b.t then return a.t < b.t end return a.seq < b.seq end)
	for _, d in ipairs(due) do
		stats.delays_run = stats.delays_run + 1
		local ok, err = context_switch(d.dev, d.fn, d.data)
		if not ok then
			stats.callback_errors = stats.callback_errors + 1
			hlog(1, "host: ERROR in %s callback %s (device %d): %s", d.kind, d.name, d.dev, tostring(err))
		end
	end
end

local function next_timeout()
	local t = now()
	local wait = 0.5 -- as openLuup's socket_callbacks(0.5): never sleep longer
	for _, d in ipairs(delays) do
		if d.t - t < wait then wait = d.t - t end
	end
	if poller and poller.state == nil and poller.next - t < wait then wait = poller.next - t end
	if wait < 0 then wait = 0 end
	return wait
end

local function loop_once()
	run_delays()
	if poller then poller_step(poller) end
	local recvt, sendt = { server }, {}
	local t = now()
	for s, c in pairs(conns) do
		if not c.closing then recvt[#recvt + 1] = s end
		if #c.out > 0 or c.closing then sendt[#sendt + 1] = s end
		if #c.out == 0 and not c.closing and t - c.last > opt.idle_timeout then
			stats.conns_closed_idle = stats.conns_closed_idle + 1
			close_conn(c, "idle " .. opt.idle_timeout .. " s")
		end
	end
	if poller and poller.sock then
		if poller.state == "connect" or poller.state == "send" then sendt[#sendt + 1] = poller.sock end
		if poller.state ~= "connect" then recvt[#recvt + 1] = poller.sock end
	end
	local wait = next_timeout()
	if wait > deadline - now() then wait = math.max(0, deadline - now()) end
	local r, w = socket.select(recvt, sendt, wait)
	stats.loops = stats.loops + 1
	for _, s in ipairs(w) do
		local c = conns[s]
		if c then write_conn(c) elseif poller and s == poller.sock then poller_write(poller) end
	end
	for _, s in ipairs(r) do
		if s == server then
			accept_all()
		elseif conns[s] then
			local c = conns[s]
			read_conn(c)
			if not c.dead then
				write_conn(c) -- answer at once; the rest waits for writability
				if c.eof and not c.dead and #c.out == 0 then close_conn(c, "closed by the client") end
			end
		elseif poller and s == poller.sock and poller.state ~= "connect" then
			if poller.state == nil then
				-- idle keep-alive connection readable: the host closed it (or sent junk)
				local _, err = poller.sock:receive(1)
				if err == "closed" then poller_close(poller, "closed by the host while idle") end
			else
				poller_read(poller)
			end
		end
	end
end

local function run_until(limit)
	while now() < limit do
		local ok, err = xpcall(loop_once, debug.traceback)
		if not ok then
			internal_error("main loop: %s", tostring(err))
			return false
		end
	end
	return true
end

hlog(2, "host: running %s s%s, %d plugin(s)", tostring(opt.seconds), opt.busy and " (busy)" or "", #files)
local ran_ok = run_until(deadline)
local ran = now() - T0

-- The end: each plugin's host_finish() (reports, closes), then the drain.
for i = 1, #files do
	local dev = opt.device + i - 1
	local env = devices[dev].env
	local fn = env.host_finish
	if type(fn) == "function" then
		local ok, err = context_switch(dev, fn)
		if not ok then
			stats.callback_errors = stats.callback_errors + 1
			hlog(1, "host: ERROR in host_finish (device %d): %s", dev, tostring(err))
		end
	end
end
if poller then
	if poller.sock then poller_close(poller, "end of run") end
	poller = nil
end
if ran_ok then
	local drain_to = now() + opt.drain
	deadline = drain_to
	ran_ok = run_until(drain_to)
end

if opt.busy and stats.poll_ok == 0 then internal_error("busy mode: the internal client got no answer") end
if opt.busy and stats.poll_fail > 0 then internal_error("busy mode: %d internal client requests failed", stats.poll_fail) end

-- ---------------------------------------------------------------- summary
local codes = {}
for code, n in pairs(stats.status) do codes[#codes + 1] = code .. ":" .. n end
table.sort(codes)
local vws = 0
for id, n in pairs(stats.by_id) do if id:find("^lr_vws_") then vws = vws + n end end
local total = now() - T0
hlog(2, "host: exiting after %.1f s", total)

if opt.report then
	local f = assert(io.open(opt.report, "w"))
	f:write(string.format("0\thost.seconds\t%.2f\n", ran))
	f:write(string.format("0\thost.loops\t%d\n", stats.loops))
	f:write(string.format("0\thost.requests\t%d\n", stats.requests))
	f:write(string.format("0\thost.vws_requests\t%d\n", vws))
	for id, n in pairs(stats.by_id) do f:write(string.format("0\thost.id.%s\t%d\n", id, n)) end
	for code, n in pairs(stats.status) do f:write(string.format("0\thost.status.%d\t%d\n", code, n)) end
	for _, k in ipairs { "conns", "conns_closed_idle", "handler_errors", "callback_errors", "busy_ticks",
		"poll_ok", "poll_fail", "internal_errors", "delays_run" } do
		f:write(string.format("0\thost.%s\t%d\n", k, stats[k]))
	end
	f:write(string.format("0\thost.max_handler_ms\t%.1f\n", stats.max_handler_ms))
	for name, h in pairs(handlers) do f:write(string.format("0\thandler.%s\t%d\n", name, h.dev)) end
	for dev, d in pairs(devices) do
		if dev ~= 0 then f:write(string.format("%d\tfile\t%s\n%d\tenv\t%s\n", dev, d.name, dev, d.mode)) end
	end
	for dev, kv in pairs(report) do
		for k, v in pairs(kv) do f:write(string.format("%d\t%s\t%s\n", dev, k, oneline(v))) end
	end
	f:close()
end

print(string.format("luuphost: ran %.1f s (+%.1f s drain), loop wakes %d (%.0f/s), requests %d (lr_vws_* %d; status %s), connections %d",
	ran, total - ran, stats.loops, stats.loops / total, stats.requests, vws, table.concat(codes, " "), stats.conns))
print(string.format("luuphost: handler errors %d, callback errors %d, busy ticks %d, poller ok %d failed %d, heap %.0f KiB",
	stats.handler_errors, stats.callback_errors, stats.busy_ticks, stats.poll_ok, stats.poll_fail, collectgarbage("count")))
for i = 1, #files do
	local dev = opt.device + i - 1
	local kv, parts = report[dev] or {}, {}
	for k, v in pairs(kv) do parts[#parts + 1] = k .. "=" .. oneline(v) end
	table.sort(parts)
	print(string.format("luuphost: device %d %s: %s", dev, devices[dev].name, table.concat(parts, " ")))
end
logf:close()
io.stdout:flush()
os.exit((ran_ok and stats.internal_errors == 0) and 0 or 1)
