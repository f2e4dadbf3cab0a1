-- Luup mode (standalone = false, the default) in a plain interpreter: events are
-- delivered on the script's own thread, inside waiting ws.* calls and at the next
-- Lua instruction through a count hook (delivery "hook"); no thread of the module
-- ever runs Lua. These tests wait without ws.loop/ws.dispatch (a sleep in a child
-- process, or pure Lua work) so the events must come by themselves.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

-- Counters the handlers bump (globals, as Luup plugins do).
t_luup = { open = 0, msg = 0, close = 0, err = 0 }

function t_luup_open() t_luup.open = t_luup.open + 1 end
function t_luup_msg(data) t_luup.last = data; t_luup.msg = t_luup.msg + 1 end
function t_luup_close(clean, code) t_luup.code = code; t_luup.close = t_luup.close + 1 end
function t_luup_err(reason) t_luup.reason = reason; t_luup.err = t_luup.err + 1 end

-- spin(cond, cpu_seconds): runs Lua (no call that waits) until cond() or the CPU
-- time bound. Hook delivery needs Lua to run; LuaJIT runs no hooks in compiled
-- code (a documented limit), so the loop is kept out of its JIT.
local function spin(cond, seconds)
	local n, deadline = 0, os.clock() + seconds * tap.factor
	while not cond() and os.clock() < deadline do
		local t = {}
		for i = 1, 100 do t[i] = i * 2 end
		n = n + 1
	end
	return n
end
if jit then jit.off(spin, true) end

local function reset() t_luup = { open = 0, msg = 0, close = 0, err = 0 } end

test("default standalone = false: open, message and close arrive without loop/dispatch", function()
	reset()
	local wso = tap.track(ws.create { url = tap.url("/echo"),
		event_handlers = { [1] = "t_luup_err", [3] = "t_luup_open", [4] = "t_luup_close", [8] = "t_luup_msg" } })
	eq(ws.connect(wso), true)
	tap.wait_nodispatch(function() return t_luup.open == 1 or t_luup.err > 0 end, 10, "open handler")
	eq(t_luup.err, 0, "error: " .. tostring(t_luup.reason))
	eq(ws.send(wso, "luup hello"), true)
	tap.wait_nodispatch(function() return t_luup.msg == 1 end, 10, "message handler")
	eq(t_luup.last, "luup hello")
	eq(ws.close(wso, 4003), true)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close handler")
	eq(t_luup.code, 4003)
	eq(ws.state(wso), "closed")
end)

test("positional create with standalone = false; send from inside a Luup handler", function()
	reset()
	local wso
	function t_luup_open_send(proto, attempt, w) t_luup.open = t_luup.open + 1; ws.send(w, "from handler") end
	wso = tap.track(ws.create(tap.url("/echo"), { [3] = "t_luup_open_send", [8] = "t_luup_msg", [4] = "t_luup_close" }, nil, false))
	ws.connect(wso)
	tap.wait_nodispatch(function() return t_luup.msg == 1 end, 10, "echo of the handler's send")
	eq(t_luup.last, "from handler")
	ws.close(wso)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close")
	t_luup_open_send = nil
end)

test("ws.loop() returns at once when only Luup connections exist", function()
	reset()
	local wso = tap.track(ws.create { url = tap.url("/echo"), event_handlers = { [3] = "t_luup_open", [4] = "t_luup_close" } })
	ws.connect(wso)
	local t0 = tap.now()
	eq(ws.loop(3000), true)
	ok(tap.now() - t0 < 1 * tap.factor, "returned at once")
	tap.wait_nodispatch(function() return t_luup.open == 1 end, 10, "open")
	ws.close(wso)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close")
end)

test("standalone events wait for dispatch while Luup events come by themselves", function()
	reset()
	local sa_open = 0
	local sa = tap.track(ws.create { url = tap.url("/echo"), standalone = true,
		event_handlers = { [3] = function() sa_open = sa_open + 1 end } })
	local lp = tap.track(ws.create { url = tap.url("/echo"), event_handlers = { [3] = "t_luup_open", [4] = "t_luup_close" } })
	ws.connect(sa)
	ws.connect(lp)
	tap.wait_nodispatch(function() return t_luup.open == 1 end, 10, "Luup open")
	tap.sleep(0.3)
	eq(sa_open, 0, "standalone open handler must not run without dispatch")
	tap.wait(function() return sa_open == 1 end, 5, "standalone open via dispatch")
	ws.close(lp)
	ws.close(sa)
	tap.wait(function() return ws.state(sa) == "closed" end, 5, "standalone closed")
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "Luup close")
end)

test("Luup events are delivered while the main thread waits in ws.loop on a standalone connection", function()
	reset()
	local sa = tap.track(ws.create { url = tap.url("/echo"), standalone = true })
	ws.connect(sa)
	local lp = tap.track(ws.create { url = tap.url("/push?n=3"), event_handlers = { [3] = "t_luup_open", [8] = "t_luup_msg", [4] = "t_luup_close" } })
	ws.connect(lp)
	-- sa stays open: each ws.loop times out; the dispatcher delivers lp's events meanwhile
	local deadline = tap.now() + 10 * tap.factor
	repeat
		local r, why = ws.loop(300)
		eq(r, false); eq(why, "timeout")
	until t_luup.msg >= 3 or tap.now() > deadline
	eq(t_luup.open, 1)
	eq(t_luup.msg, 3)
	ws.close(lp)
	ws.close(sa)
	eq(ws.loop(tap.ms(5000)), true)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "Luup close")
end)

test("Luup connection error arrives by itself", function()
	reset()
	local wso = tap.track(ws.create { url = tap.url("/status404"), event_handlers = { [1] = "t_luup_err" } })
	ws.connect(wso)
	tap.wait_nodispatch(function() return t_luup.err == 1 end, 10, "error handler")
	ok(type(t_luup.reason) == "string" and t_luup.reason:find("HS: ws upgrade response not 101", 1, true),
		"reason " .. tap.show(t_luup.reason))
	eq(ws.state(wso), "closed")
end)

test("a Luup wso that no variable holds still gets its events", function()
	reset()
	do
		local w = ws.create { url = tap.url("/echo"), event_handlers = {
			[3] = function(_, _, wso) t_luup.open = t_luup.open + 1; ws.send(wso, "orphan") end,
			[8] = function(data, _, wso) t_luup.last = data; ws.close(wso) end,
			[4] = "t_luup_close" } }
		ws.connect(w)
	end
	collectgarbage("collect")
	collectgarbage("collect")
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close of the orphan")
	eq(t_luup.last, "orphan")
end)

test("Luup handler errors go to stderr and later events still come (child)", function()
	local out, okr = tap.run_lua(([[
		local ws = require "verawebsockets"
		local n = 0
		got = {}
		local w = ws.create{url = %q, event_handlers = {
			[3] = function(p, a, wso) ws.send(wso, "one"); error("luup boom") end,
			[8] = function(data, kind, wso) got[#got + 1] = data; ws.close(wso) end,
			[4] = function(clean, code) got.closed = code end }}
		ws.connect(w)
		for _ = 1, 200 * (tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1) do
			if got.closed then break end
			os.execute("sleep 0.05")
		end
		print("got", got[1], got.closed)
	]]):format(tap.url("/echo")))
	ok(okr, "child: " .. out)
	like(out, "verawebsockets: error in handler for event 3: [^\n]*luup boom")
	like(out, "got\tone\t1000")
end)

test("closing the Lua state with an open Luup connection (child exits normally)", function()
	local id = tap.uid("luupexit")
	local out, okr, status = tap.run_lua(([[
		local ws = require "verawebsockets"
		opened = false
		local w = ws.create{url = %q, event_handlers = {[3] = function() opened = true end}}
		ws.connect(w)
		for _ = 1, 200 * (tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1) do
			if opened then break end
			os.execute("sleep 0.05")
		end
		print("opened", opened)
		-- the script ends here: lua.c calls lua_close with the dispatcher running
	]]):format(tap.url("/echo?id=" .. id)))
	ok(okr, "child exit status " .. tostring(status) .. ": " .. out)
	like(out, "opened\ttrue")
	local seen = tap.closeinfo(id)
	eq(seen.seen, true, "server saw the connection end")
	ok(seen.code == 1001 or seen.code == 1006, "code " .. tostring(seen.code))
end)

test("500 pushed messages arrive in order through the dispatcher", function()
	reset()
	t_luup.bad = 0
	function t_luup_count(data)
		t_luup.msg = t_luup.msg + 1
		if data ~= tostring(t_luup.msg) then t_luup.bad = t_luup.bad + 1 end
	end
	local wso = tap.track(ws.create { url = tap.url("/push?n=500"), event_handlers = { [8] = "t_luup_count", [4] = "t_luup_close" } })
	ws.connect(wso)
	tap.wait_nodispatch(function() return t_luup.msg >= 500 end, 15, "500 messages")
	eq(t_luup.msg, 500)
	eq(t_luup.bad, 0, "out of order")
	ws.close(wso)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close")
	t_luup_count = nil
end)

test("the delivery is chosen by the first Luup-mode object: hook in a plain interpreter", function()
	local out, okr = tap.run_lua(([[
		local ws = require "verawebsockets"
		print("before", ws.delivery())
		local w = ws.create{url = %q}
		print("after", ws.delivery())
		print("change", ws.set_delivery("thread"))
		print("same", ws.set_delivery("hook"))
		print("bad", pcall(ws.set_delivery, "threads"))
	]]):format(tap.url("/echo")))
	ok(okr, "child: " .. out)
	like(out, "before\tauto")
	like(out, "after\thook")
	like(out, "change\tnil\tdelivery is already \"hook\"")
	like(out, "same\ttrue")
	like(out, "bad\tfalse\t[^\n]*invalid option 'threads'")
end)

-- The plugin's environment: 5.1 setfenv, 5.2+ load's env (the chunk's _ENV), as Luup hosts
-- (LuaUPnP on 5.1, openLuup on either) load plugin code.
local env_how = setfenv and "setfenv environment" or "_ENV (load with an env)"

test("handler names are found in the " .. env_how .. " of the code that called ws.create", function()
	local env = setmetatable({ got = {} }, { __index = _G })
	local plugin = tap.load_env([[
		function on_open(proto, attempt, wso) ws.send(wso, "env hello") end
		function on_msg(data, kind, wso) got[#got + 1] = data; ws.close(wso) end
		function on_close(clean, code) got.code = code end
		W = ws.create { url = URL, event_handlers = { [3] = "on_open", [8] = "on_msg", [4] = "on_close" } }
		ws.connect(W)
	]], env)
	env.ws, env.URL = ws, tap.url("/echo")
	plugin()
	eq(rawget(_G, "on_open"), nil, "the plugin's functions stay in its environment")
	tap.track(env.W)
	tap.wait_nodispatch(function() return env.got.code ~= nil end, 10, "close handler found in the environment")
	eq(env.got[1], "env hello")
	eq(env.got.code, 1000)
end)

test("a name missing from the environment falls back to the globals", function()
	reset()
	local env = setmetatable({}, { __index = function() return nil end }) -- no fallback of its own
	local plugin = tap.load_env([[W = ws.create { url = URL, event_handlers = { [3] = "t_luup_open", [4] = "t_luup_close" } }; ws.connect(W)]], env)
	env.ws, env.URL = ws, tap.url("/echo")
	plugin()
	tap.track(env.W)
	tap.wait_nodispatch(function() return t_luup.open == 1 end, 10, "open via the global name")
	ws.close(env.W)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close via the global name")
end)

-- 5.2+ only: the _ENV in scope where ws.create is called (a local _ENV, else the
-- function's _ENV upvalue); a function with neither (it names no global) defers to its
-- caller's. Lua 5.1 has no _ENV (its setfenv case is the test above).
if tap.lua == "5.1" then
	tap.skip("handler names: a local _ENV and a caller without an _ENV of its own",
		"_ENV is Lua 5.2+; on " .. _VERSION .. " the setfenv test above covers it")
else
	test("handler names: a local _ENV and a caller without an _ENV of its own", function()
		local got = {}
		local envs = {
			a = setmetatable({ hit = function() got.a = (got.a or 0) + 1 end }, { __index = _G }),
			b = setmetatable({ hit = function() got.b = (got.b or 0) + 1 end }, { __index = _G }),
		}
		local make = assert(load([[
			local ws, url, envs = ...
			local W = {}
			do
				local _ENV = envs.a -- code that sets its own _ENV
				W[1] = ws.create { url = url, event_handlers = { [3] = "hit" } }
			end
			local function no_env() -- names no global, no _ENV of its own: its caller's (b) counts
				return ws.create { url = url, event_handlers = { [3] = "hit" } }
			end
			local function caller(_ENV) W[2] = no_env() end -- _ENV a parameter
			caller(envs.b)
			return W
		]], "=env-test", "t"))(ws, tap.url("/echo"), envs)
		local a, b = tap.track(make[1]), tap.track(make[2])
		ws.connect(a)
		ws.connect(b)
		tap.wait_nodispatch(function() return got.a == 1 and got.b == 1 end, 10, "both open handlers")
		eq(rawget(_G, "hit"), nil, "no global 'hit'")
		ws.close(a)
		ws.close(b)
		tap.wait_nodispatch(function() return ws.state(a) == "closed" and ws.state(b) == "closed" end, 10, "closed")
	end)
end

test("events arrive through the hook while the script runs Lua in a tight loop (no C calls)", function()
	reset()
	t_luup.bad = 0
	function t_luup_count(data)
		t_luup.msg = t_luup.msg + 1
		if data ~= tostring(t_luup.msg) then t_luup.bad = t_luup.bad + 1 end
	end
	local wso = tap.track(ws.create { url = tap.url("/push?n=300"), event_handlers = { [8] = "t_luup_count", [4] = "t_luup_close" } })
	ws.connect(wso)
	local spins = spin(function() return t_luup.msg >= 300 end, 20)
	eq(t_luup.msg, 300, "messages delivered while Lua ran")
	eq(t_luup.bad, 0, "out of order")
	tap.diag("loop turns while the events came: " .. spins)
	ws.close(wso)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close")
	t_luup_count = nil
end)

local has_socket, socket = pcall(require, "socket")
;(has_socket and test or tap.skip)("a script blocked in a C call (socket.sleep) gets the events when it returns", has_socket and function()
	reset()
	local wso = tap.track(ws.create { url = tap.url("/push?n=5"), event_handlers = { [3] = "t_luup_open", [8] = "t_luup_msg", [4] = "t_luup_close" } })
	ws.connect(wso)
	socket.sleep(1 * tap.factor) -- the push arrives meanwhile; no Lua runs until this returns
	spin(function() return t_luup.msg >= 5 end, 5)
	eq(t_luup.open, 1)
	eq(t_luup.msg, 5, "delivered at the first Lua instructions after the C call")
	ws.close(wso)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close")
end or "LuaSocket missing")

test("a hook the script set is put back after each delivery", function()
	reset()
	local calls = 0
	local function myhook() calls = calls + 1 end
	debug.sethook(myhook, "", 1000)
	local wso = tap.track(ws.create { url = tap.url("/push?n=20"), event_handlers = { [8] = "t_luup_msg", [4] = "t_luup_close" } })
	ws.connect(wso)
	spin(function() return t_luup.msg >= 20 end, 10)
	eq(t_luup.msg, 20)
	local h, mask, count = debug.gethook()
	eq(h, myhook, "the script's hook is back")
	eq(count, 1000)
	calls = 0
	spin(function() return calls > 0 end, 5)
	ok(calls > 0, "the script's hook runs again")
	debug.sethook()
	ws.close(wso)
	tap.wait_nodispatch(function() return t_luup.close == 1 end, 10, "close")
end)

test("Luup events come inside a standalone handler's wait only after that handler", function()
	reset()
	local order = {}
	function t_luup_order(data) order[#order + 1] = "luup:" .. data end
	local lp = tap.track(ws.create { url = tap.url("/push?n=3"), event_handlers = { [8] = "t_luup_order" } })
	local sa = tap.track(ws.create { url = tap.url("/echo"), standalone = true, event_handlers = {
		[3] = function(_, _, w)
			ws.connect(lp)
			-- a long standalone handler: Lua runs while the Luup events arrive
			spin(function() return false end, 1)
			order[#order + 1] = "standalone done"
		end } })
	ws.connect(sa)
	tap.wait(function() return #order >= 4 end, 10, "all events")
	eq(order[1], "standalone done", "nothing nested inside the running handler")
	eq(order[2], "luup:1")
	eq(order[4], "luup:3")
	ws.close(sa)
	ws.close(lp)
	tap.wait(function() return ws.state(sa) == "closed" and ws.state(lp) == "closed" end, 10, "closed")
	t_luup_order = nil
end)

-- A minimal Luup host inside a child script: a LuaSocket HTTP server on 127.0.0.1
-- answering /data_request?id=lr_<name> by calling the function the plugin registered
-- (looked up in the plugin's environment), on the script's one thread. MODE: "ok"
-- (keep-alive), "close" (Connection: close after each answer), "404" (a host that
-- does not know the name: the module must back off, not spin). LOGS: the plugin turns
-- on the engine's CLIENT lines first, and after its last message starts a server (a
-- NOTICE line and no event after it); the host runs until that line is in its log.
local mini_host = [[
local socket = require "socket"
local MODE, URL, N, LOGS = os.getenv("MODE"), os.getenv("URL"), tonumber(os.getenv("N")), os.getenv("LOGS")
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
srv:settimeout(0)
local ws = require "verawebsockets"
assert(ws.set_luup_port(tonumber(port)))
local handlers, logs, reqs, device = {}, {}, 0, 0
local plugin_env = setmetatable({}, { __index = _G })
plugin_env.luup = {
	register_handler = function(fname, name) handlers["lr_" .. name] = { env = plugin_env, fname = fname, dev = device } end,
	log = function(msg, level) logs[#logs + 1] = device .. ":" .. msg end,
}
local unpack = unpack or table.unpack
-- The plugin's globals are plugin_env: setfenv on 5.1, load's env (_ENV) on 5.2+.
local function load_plugin(code, env)
	if setfenv then return setfenv(assert(loadstring(code)), env) end
	return assert(load(code, "=plugin", "t", env))
end
local plugin = load_plugin([=[
	got = {}
	function on_open(p, a, w) for i = 1, N do ws.send(w, "m" .. i) end end
	function on_msg(d)
		got[#got + 1] = d
		if d == "m1" then error("plugin boom") end
		if LOGS and d == "m" .. N then
			ws.set_log_level(4) -- NOTICE only
			S = assert(ws.listen{port = 0, host = "127.0.0.1"})
		end
	end
	if LOGS then ws.set_log_level(256) end -- CLIENT
	W = ws.create{url = URL, event_handlers = {[3] = "on_open", [8] = "on_msg"}}
	ws.connect(W)
]=], plugin_env)
plugin_env.ws, plugin_env.URL, plugin_env.N, plugin_env.LOGS = ws, URL, N, LOGS
device = 7; plugin(); device = 0
print("delivery", ws.delivery(), "global wake fn", rawget(_G, "verawebsockets_wake"))
local clients, t0 = {}, socket.gettime()
local limit = MODE == "404" and 2 or 10 * (tonumber(os.getenv("VWS_TEST_TIME_FACTOR")) or 1)
local function logged(s)
	for _, l in ipairs(logs) do if l:find(s, 1, true) then return true end end
end
while socket.gettime() - t0 < limit and (MODE == "404" or #plugin_env.got < N or (LOGS and not logged("server listening"))) do
	local r = socket.select({ srv, unpack(clients) }, nil, 0.2)
	for _, s in ipairs(r) do
		if s == srv then
			local c = srv:accept()
			if c then clients[#clients + 1] = c end
		else
			local line = s:receive("*l")
			if not line then
				for i, c in ipairs(clients) do if c == s then table.remove(clients, i) end end
				s:close()
			else
				repeat local h = s:receive("*l") until not h or h == ""
				reqs = reqs + 1
				local h = handlers[line:match("id=([%w_]+)")]
				local status, body = "404 Not Found", "No handler"
				if h and MODE ~= "404" then
					device = h.dev
					body = h.env[h.fname](line, {}, "")
					device = 0
					status = "200 OK"
				end
				local hdr = MODE == "close" and "Connection: close\r\n" or ""
				s:send("HTTP/1.1 " .. status .. "\r\n" .. hdr .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
				if MODE == "close" then
					for i, c in ipairs(clients) do if c == s then table.remove(clients, i) end end
					s:close()
				end
			end
		end
	end
end
print("got", #plugin_env.got, plugin_env.got[1], plugin_env.got[N], "requests", reqs)
if plugin_env.S then plugin_env.S:close() end
print("log", table.concat(logs, "\n"))
]]

;(has_socket and test or tap.skip)("in a Luup host: wakes on the host's request port run the plugin's handler (keep-alive)", has_socket and function()
	local out, okr = tap.run_lua_env({ MODE = "ok", URL = tap.url("/echo"), N = 200 }, mini_host)
	ok(okr, "child: " .. out)
	like(out, "delivery\tluup\tglobal wake fn\tnil")
	like(out, "got\t200\tm1\tm200\trequests\t%d+")
	ok(not out:find("failed", 1, true), "no wake failed")
	local reqs = tonumber(out:match("requests\t(%d+)"))
	ok(reqs and reqs >= 1 and reqs < 100, "200 messages in a few wakes, got " .. tostring(reqs))
	like(out, "7:verawebsockets: error in handler for event 8: [^\n]*plugin boom", "handler error in the plugin's luup.log, device 7")
end or "LuaSocket missing")

;(has_socket and test or tap.skip)("in a Luup host that closes each connection", has_socket and function()
	local out, okr = tap.run_lua_env({ MODE = "close", URL = tap.url("/echo"), N = 50 }, mini_host)
	ok(okr, "child: " .. out)
	like(out, "got\t50\tm1\tm50")
end or "LuaSocket missing")

;(has_socket and test or tap.skip)("a host that does not run the handler: wakes back off and are logged, no busy loop", has_socket and function()
	local out, okr = tap.run_lua_env({ MODE = "404", URL = tap.url("/echo"), N = 3 }, mini_host)
	ok(okr, "child: " .. out)
	local reqs = tonumber(out:match("requests\t(%d+)"))
	-- 2 s of backoff from 100 ms doubling: 100+200+400+800 -> about 5 requests
	ok(reqs and reqs >= 2 and reqs <= 8, "requests in 2 s: " .. tostring(reqs))
	like(out, "Luup wake lr_vws_%d+ to 127.0.0.1:%d+ failed: HTTP status 404; next try in %d+ ms")
end or "LuaSocket missing")

;(has_socket and test or tap.skip)("in a Luup host: the engine's log lines go to the plugin's luup.log, even with no event after them", has_socket and function()
	local url = tap.url("/echo")
	local out, okr = tap.run_lua_env({ MODE = "ok", URL = url, N = 5, LOGS = "1" }, mini_host)
	ok(okr, "child: " .. out)
	like(out, "got\t5\tm1\tm5")
	like(out, "[\t\n]7:verawebsockets: wsengine: connecting to " .. url:gsub("%p", "%%%0"), "a CLIENT line, device 7")
	like(out, "[\t\n]7:verawebsockets: wsengine: server listening on 127%.0%.0%.1:%d+", "the server's NOTICE line, with no event after it")
	like(out, "%[[%d/: ]+%] NOTICE: wsengine: server listening on 127%.0%.0%.1:%d+", "and on stderr")
end or "LuaSocket missing")

tap.done()
