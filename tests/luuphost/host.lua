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
-- an internal HTTP client of the host's own port. Every socket is non-blocking. The
-- HTTP server and that client are in tests/luuphost/host_http.lua (found beside this file).
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

-- Makes the modules of the tests (tests/luuphost/?.lua) loadable: host_http (below) and
-- the plugins' own.
do
	local dir = (arg[0] or ""):match("^(.*)/[^/]*$") or "."
	package.path = dir .. "/?.lua;" .. package.path
end

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
-- tests/luuphost/host_http.lua: the server on 127.0.0.1 and the busy-mode client.
local http = require("host_http").start { opt = opt, stats = stats, handlers = handlers,
	hlog = hlog, oneline = oneline, now = now, context_switch = context_switch }
local server, conns = http.server, http.conns
local accept_all, read_conn, write_conn, close_conn = http.accept_all, http.read_conn, http.write_conn, http.close_conn
local poller_step, poller_write, poller_read, poller_close = http.poller_step, http.poller_write, http.poller_read, http.poller_close

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
