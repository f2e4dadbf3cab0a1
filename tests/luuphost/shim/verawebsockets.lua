-- tests/luuphost/shim/verawebsockets.lua - a STAND-IN of the module's Luup delivery over
-- HTTP, for checking the Luup host test itself (build/test-luuphost.sh shim) while, or
-- where, the real module does not deliver Luup-mode events that way. Found first when
-- LUA_PATH starts with tests/luuphost/shim/?.lua; it loads the real verawebsockets.so
-- from LUA_CPATH and changes only Luup-mode ws.create:
--
-- - the first Luup-mode create from an environment (getfenv of the caller, __index
--   honoured) defines verawebsockets_wake there and calls
--   luup.register_handler("verawebsockets_wake", "vws_<N>") in the caller's context, as
--   the real module will;
-- - the connection is made standalone; its handlers are wrapped so that the events that
--   ws.dispatch delivers are queued per environment, and verawebsockets_wake runs the
--   queue of its own environment only (a name handler is looked up in that environment);
-- - a child process (waker.lua) requests GET /data_request?id=lr_vws_<N>&seq=<k> on a
--   keep-alive connection every 50 ms. It POLLS: the real module wakes the host only when
--   events are pending, from a thread. Everything else is the real module.

local function load_real()
	for template in package.cpath:gmatch("[^;]+") do
		local file = template:gsub("%?", "verawebsockets")
		local f = io.open(file, "rb")
		if f then
			f:close()
			local open, err = package.loadlib(file, "luaopen_verawebsockets")
			if not open then error("shim: " .. tostring(err)) end
			return open(), file
		end
	end
	error("shim: verawebsockets.so not found in LUA_CPATH")
end

local real = load_real()
local M = setmetatable({}, { __index = real })
M.shim = true

local envs = {} -- [env] = plugin record
local counter = 0
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")

local function spawn_waker(n)
	local port = tonumber(os.getenv("VWS_LUUP_PORT") or "") or 3480
	local lua = os.getenv("LUUPHOST_SHIM_LUA") or "lua5.1"
	local max = tonumber(os.getenv("LUUPHOST_SHIM_MAX_SECONDS") or "") or 120
	local pidfile = os.getenv("LUUPHOST_SHIM_PIDFILE") -- the runner kills them by pid
	os.execute(string.format("%s %s/waker.lua %d %d %d </dev/null >/dev/null 2>&1 &%s", lua, here, port, n, max,
		pidfile and (" echo $! >>'" .. pidfile .. "'") or ""))
end

local function record(env)
	local p = envs[env]
	if p then return p end
	counter = counter + 1
	p = { env = env, n = counter, queue = {}, head = 1, tail = 0 }
	envs[env] = p
	-- verawebsockets_wake(lul_request, lul_parameters, lul_outputformat): runs this
	-- environment's pending handlers (in the host's context for this plugin).
	rawset(env, "verawebsockets_wake", function()
		for _ = 1, 50 do
			if real.dispatch(0) == 0 then break end
		end
		local ran = 0
		while p.queue[p.head] do
			local ev = p.queue[p.head]
			p.queue[p.head] = nil
			p.head = p.head + 1
			local fn = ev.fn
			if type(fn) == "string" then fn = env[fn] end
			if type(fn) == "function" then
				local ok, err = xpcall(function() return fn(unpack(ev, 1, ev.n)) end, debug.traceback)
				if not ok then
					env.luup.log("verawebsockets: error in handler for event " .. ev.id .. ": " .. tostring(err), 1)
				end
				ran = ran + 1
			end
		end
		return "ok " .. ran, "text/plain"
	end)
	env.luup.register_handler("verawebsockets_wake", "vws_" .. p.n)
	spawn_waker(p.n)
	return p
end

local function wrap(p, id, h)
	return function(...)
		p.tail = p.tail + 1
		p.queue[p.tail] = { fn = h, id = id, n = select("#", ...), ... }
	end
end

function M.create(a, handlers, ssl, standalone)
	local opts
	if type(a) == "table" then
		opts = {}
		for k, v in pairs(a) do opts[k] = v end
	else
		opts = { url = a, event_handlers = handlers, ssl_settings = ssl, standalone = standalone }
	end
	if opts.standalone then return real.create(opts) end
	local env = getfenv(2)
	local p = record(env)
	local wrapped = {}
	for id, h in pairs(opts.event_handlers or {}) do wrapped[id] = wrap(p, id, h) end
	opts.event_handlers = wrapped
	opts.standalone = true
	return real.create(opts)
end

return M
