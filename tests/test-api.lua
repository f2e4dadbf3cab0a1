-- The original verawebsockets API, exactly as the MiOS wiki describes it:
-- create (table and positional), connect, send, loop in standalone mode,
-- set_log_level, events 1/3/4/8 with handlers by global NAME and by function.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

test("module table, constants, no globals", function()
	eq(type(ws), "table")
	eq(ws._NAME, "verawebsockets", "_NAME")
	eq(type(ws._VERSION), "string", "_VERSION")
	eq(ws.TEXT, 1, "TEXT")
	eq(ws.BINARY, 2, "BINARY")
	eq(type(ws.EVENTS), "table", "EVENTS")
	local want = { CONNECTION_ERROR = 1, ESTABLISHED = 3, CLOSED = 4, RECEIVE = 8, RECEIVE_PONG = 9, WRITEABLE = 10 }
	for k, v in pairs(want) do eq(ws.EVENTS[k], v, "EVENTS." .. k) end
	for _, f in ipairs { "create", "connect", "send", "loop", "set_log_level", "close", "ping", "state",
		"buffered", "protocol", "dispatch", "event_fd" } do
		eq(type(ws[f]), "function", "ws." .. f)
	end
	eq(type(ws.client), "table", "ws.client")
	eq(type(ws.client.sync), "function", "ws.client.sync")
	eq(type(ws.client.new), "function", "ws.client.new")
	eq(rawget(_G, "verawebsockets"), nil, "require must not create a global")
	eq(package.loaded.verawebsockets, ws)
end)

test("set_log_level: numbers and \"all\" return true, bad types raise", function()
	eq(ws.set_log_level(0), true)
	eq(ws.set_log_level(3), true)
	eq(ws.set_log_level(2047), true)
	eq(ws.set_log_level("all"), true)
	eq(ws.set_log_level(0), true)
	tap.raises(function() ws.set_log_level({}) end, "bad argument #1 to 'set_log_level'")
	tap.raises(function() ws.set_log_level() end, "bad argument #1 to 'set_log_level'")
	tap.raises(function() ws.set_log_level("some") end, "bad argument #1 to 'set_log_level'")
end)

test("set_log_level(\"all\") writes lws-style lines to stderr, 0 writes none", function()
	local code = [[
		local ws = require "verawebsockets"
		ws.set_log_level(%s)
		local w = ws.create{url = %q, standalone = true, event_handlers = {
			[3] = function(p, a, wso) ws.close(wso) end }}
		ws.connect(w)
		print("loop", ws.loop(5000 * (tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1)))
	]]
	local url = tap.url("/echo")
	local out, okr = tap.run_lua(code:format('"all"', url))
	ok(okr, "child failed: " .. out)
	like(out, "loop\ttrue", "loop result")
	like(out, "%[%d%d%d%d/%d%d/%d%d %d%d:%d%d:%d%d:%d%d%d%d%] %u+: ", "an lws-style log line")
	local out0, ok0 = tap.run_lua(code:format("0", url))
	ok(ok0, "child failed: " .. out0)
	eq(out0, "loop\ttrue\n", "nothing but the script's own output at level 0")
end)

-- The wiki's example, adapted to the local echo server: handlers by global name.
test("wiki example: table create, handlers by global NAME, send from handlers, loop", function()
	local seen = {}
	_G.t_open = tap.expect(function(...)
		seen.open = { n = select("#", ...), ... }
		eq(ws.send(_G.t_wso, "Hello world!"), true, "send in open handler")
	end, 1, "open")
	_G.t_incoming = tap.expect(function(data, kind, wso)
		seen[#seen + 1] = data
		eq(kind, "text")
		ok(rawequal(wso, _G.t_wso), "last arg is the wso")
		if data:match("^Hello world!") then
			ws.send(_G.t_wso, "Hello again!")
		else
			ws.close(_G.t_wso)
		end
	end, 2, "incoming")
	_G.t_close = tap.expect(function(clean, code, reason, wso)
		seen.close = { clean, code, reason, wso }
	end, 1, "close")
	_G.t_connerror = tap.expect(nil, 0, "connerror")
	local wso = ws.create {
		["url"] = tap.url("/echo"),
		["event_handlers"] = { [1] = "t_connerror", [3] = "t_open", [4] = "t_close", [8] = "t_incoming" },
		["standalone"] = true,
	}
	tap.track(wso)
	_G.t_wso = wso
	eq(type(wso), "userdata")
	eq(ws.state(wso), "created")
	eq(ws.connect(wso), true, "connect")
	local r1, r2 = ws.loop(tap.ms(10000))
	eq(r1, true, "loop returns true when the connection is done (" .. tostring(r2) .. ")")
	eq(seen[1], "Hello world!")
	eq(seen[2], "Hello again!")
	eq(seen.open[1], "", "established: protocol")
	eq(seen.open[2], 1, "established: attempt")
	ok(rawequal(seen.open[3], wso), "established: wso last")
	eq(seen.close[1], true, "clean")
	eq(seen.close[2], 1000, "code")
	ok(rawequal(seen.close[4], wso), "closed: wso last")
	eq(ws.state(wso), "closed")
	_G.t_open, _G.t_incoming, _G.t_close, _G.t_connerror, _G.t_wso = nil, nil, nil, nil, nil
end)

test("positional create(url, handlers, ssl, standalone) with function handlers", function()
	local got = {}
	local wso
	wso = tap.track(ws.create(tap.url("/echo"), {
		[3] = tap.expect(function(proto, attempt, w) eq(ws.send(w, "positional"), true) end, 1),
		[8] = tap.expect(function(data, kind, w) got[#got + 1] = data; ws.close(w, 4000, "done") end, 1),
		[4] = tap.expect(function(clean, code, reason, w)
			got.close = { clean, code, reason }
			ok(rawequal(w, wso))
		end, 1),
	}, nil, true))
	eq(ws.connect(wso), true)
	eq(ws.loop(tap.ms(10000)), true)
	eq(got[1], "positional")
	eq(got.close[1], true)
	eq(got.close[2], 4000)
	eq(got.close[3], "done")
end)

test("positional create with an empty ssl_settings table and standalone", function()
	local wso = tap.track(ws.create(tap.url("/echo"), { [3] = function(_, _, w) ws.close(w) end }, {}, true))
	eq(ws.connect(wso), true)
	eq(ws.loop(tap.ms(10000)), true)
	eq(ws.state(wso), "closed")
end)

test("named handler keys get the wso FIRST", function()
	local wso
	local got = {}
	wso = tap.create {
		url = tap.url("/echo"),
		event_handlers = {
			open = tap.expect(function(w, proto, attempt)
				ok(rawequal(w, wso), "open: wso first")
				eq(proto, "")
				eq(attempt, 1)
				ws.send(w, "\0bin\255", "binary")
			end, 1, "open"),
			message = tap.expect(function(w, data, kind)
				ok(rawequal(w, wso), "message: wso first")
				got.data, got.kind = data, kind
				ws.close(w, 4001, "bye")
			end, 1, "message"),
			close = tap.expect(function(w, clean, code, reason)
				ok(rawequal(w, wso), "close: wso first")
				got.close = { clean, code, reason }
			end, 1, "close"),
			error = tap.expect(nil, 0, "error"),
		},
	}
	ws.connect(wso)
	eq(ws.loop(tap.ms(10000)), true)
	eq(got.data, "\0bin\255")
	eq(got.kind, "binary")
	eq(got.close[1], true)
	eq(got.close[2], 4001)
	eq(got.close[3], "bye")
end)

test("global handler name is looked up when the event fires", function()
	local calls = {}
	local wso = tap.create { url = tap.url("/echo"), event_handlers = { [3] = "t_late_open", [8] = "t_late_msg" } }
	-- defined only after create
	_G.t_late_open = function(_, _, w) calls[#calls + 1] = "open1"; ws.send(w, "a") end
	ws.connect(wso)
	tap.wait(function() return #calls >= 1 end, 5, "open")
	_G.t_late_msg = function(data, _, w) calls[#calls + 1] = "msg:" .. data; ws.close(w) end
	eq(ws.loop(tap.ms(10000)), true)
	eq(calls[1], "open1")
	eq(calls[2], "msg:a")
	_G.t_late_open, _G.t_late_msg = nil, nil
end)

test("missing handlers are skipped silently", function()
	local closed = tap.expect(nil, 1, "close")
	-- no [3], no [8]: the echo of our message has no handler; a name with no global neither
	local wso = tap.create { url = tap.url("/echo"), event_handlers = { [4] = closed, [8] = "t_no_such_global_fn" } }
	ws.connect(wso)
	tap.wait(function() return ws.state(wso) == "open" end, 5, "open")
	eq(ws.send(wso, "nobody listens"), true)
	tap.pump(0.3)
	ws.close(wso)
	eq(ws.loop(tap.ms(10000)), true)
end)

test("no event_handlers at all", function()
	local wso = tap.create { url = tap.url("/echo") }
	ws.connect(wso)
	tap.wait(function() return ws.state(wso) == "open" end, 5, "open")
	eq(ws.send(wso, "x"), true)
	ws.close(wso)
	eq(ws.loop(tap.ms(10000)), true)
	eq(ws.state(wso), "closed")
end)

test("an error in a handler is written to stderr and later events still come", function()
	local code = [[
		local ws = require "verawebsockets"
		ws.set_log_level(0)
		local w
		w = ws.create{url = %q, standalone = true, event_handlers = {
			[3] = function(p, a, wso) ws.send(wso, "hello"); error("boom in open") end,
			[8] = function(data, kind, wso) print("GOT " .. data); ws.close(wso, 1000); local x = nil; x.field = 1 end,
			[4] = function(clean, code) print("CLOSED " .. tostring(code)) end,
		}}
		ws.connect(w)
		print("loop", ws.loop(5000 * (tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1)))
	]]
	local out, okr = tap.run_lua(code:format(tap.url("/echo")))
	ok(okr, "child failed: " .. out)
	like(out, "verawebsockets: error in handler for event 3: [^\n]*boom in open", "event 3 error on stderr")
	like(out, "stack traceback", "with a traceback")
	like(out, "verawebsockets: error in handler for event 8: ", "event 8 error on stderr")
	like(out, "GOT hello", "later event 8 delivered")
	like(out, "CLOSED 1000", "later event 4 delivered")
	like(out, "loop\ttrue", "loop")
end)

test("an error while finding a handler (its environment's __index raises) is written to stderr, and the events behind it still come", function()
	local code = [[
		local ws = require "verawebsockets"
		local url, ms = %q, 5000 * (tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1)
		local env = setmetatable({}, { __index = function(_, k) error("boom looking up " .. k) end })
		-- A chunk run in env (5.1: setfenv; 5.2+: load's env, the chunk's _ENV), as
		-- a Luup plugin is; not a tail call, so ws.create sees the chunk as its caller.
		local src = "local o = ws.create{url = url, standalone = true, event_handlers = {[8] = 'on_msg'}} return o"
		local f = setfenv and setfenv(assert(loadstring(src)), env) or assert(load(src, "bad", "t", env))
		rawset(env, "ws", ws); rawset(env, "url", url)
		local bad = f()
		local got = {}
		local good = ws.create{url = url, standalone = true, event_handlers = {
			[8] = function(data) got[#got + 1] = data end,
		}}
		ws.connect(bad)
		ws.connect(good)
		local t0 = os.time()
		while (ws.state(bad) ~= "open" or ws.state(good) ~= "open") and os.time() - t0 < 10 do ws.dispatch(50) end
		for i = 1, 5 do ws.send(bad, "b" .. i); ws.send(good, "g" .. i) end
		t0 = os.time()
		while #got < 5 and os.time() - t0 < 10 do ws.dispatch(50) end
		print("GOT " .. table.concat(got, " "))
		ws.close(bad)
		ws.close(good)
		print("loop", ws.loop(ms))
	]]
	local out, okr = tap.run_lua(code:format(tap.url("/echo")))
	ok(okr, "child failed: " .. out)
	like(out, "verawebsockets: error in handler for event 8: [^\n]*boom looking up on_msg", "the lookup's error on stderr")
	like(out, "GOT g1 g2 g3 g4 g5\n", "the other connection's messages, all and in order")
	like(out, "loop\ttrue", "loop")
end)

test("loop without connections returns true at once", function()
	local t0 = tap.now()
	eq(ws.loop(), true)
	eq(ws.loop(5000), true)
	ok(tap.now() - t0 < 1 * tap.factor, "returned at once")
end)

test("loop(timeout) returns false, \"timeout\" while a connection stays open", function()
	local wso = tap.create { url = tap.url("/echo") }
	ws.connect(wso)
	local t0 = tap.now()
	local r, why = ws.loop(600)
	local dt = tap.now() - t0
	eq(r, false)
	eq(why, "timeout")
	ok(dt >= 0.45 and dt < 3 * tap.factor, "took " .. dt .. " s for 600 ms")
	eq(ws.state(wso), "open")
	ws.close(wso)
	eq(ws.loop(tap.ms(5000)), true)
end)

test("connect twice -> nil, err; connect after close reconnects", function()
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url("/echo"), event_handlers = rec.handlers }
	eq(ws.connect(wso), true)
	local r, err = ws.connect(wso)
	eq(r, nil, "second connect")
	eq(type(err), "string")
	rec.wait(3)
	ws.close(wso)
	rec.wait(4)
	eq(ws.state(wso), "closed")
	eq(ws.connect(wso), true, "connect after close")
	rec.wait(3, 5, 2)
	ws.close(wso)
	rec.wait(4, 5, 2)
end)

test("the wiki's example script, nearly verbatim (ws.loop() without timeout), in a child", function()
	local script = [=[
local ws = require("verawebsockets")
if not ws then
	print("ERROR: Failed to load the verawebsockets library")
end
local g_wso
local eventHandlers = {
	[3] = "open",
	[4] = "close",     -- LWS_CALLBACK_CLOSED
	[8] = "incoming"   -- LWS_CALLBACK_CLIENT_RECEIVE
}
function main()
	-- Log only errors and warnings.
	ws.set_log_level(3)
	-- This script is meant to be run standalone, so we set "standalone" to "true".
	g_wso = ws.create {
		["url"] = "URL",
		["event_handlers"] = eventHandlers,
		["standalone"] = true
	}
	if not g_wso then
		print("ERROR: Failed to create connection")
		return 1
	end
	ws.connect(g_wso)
	-- Because we're in standalone mode, call the "loop" function
	-- to prevent the main thread from terminating.
	ws.loop()
	return 0
end
function connerror (reason)
	print("Connection error: "..(reason or nil))
end
function open()
	local message = "Hello world!"
	print("Connection successful, send message: ".. message)
	ws.send(g_wso, message);
end
function close()
	print("Connection closed")
end
function incoming (data)
	data = data or "nil"
	print("Received message: ".. data)
	if data:match("^Hello world!") then
		ws.send(g_wso, "Hello again!");
	else
		ws.close(g_wso)
	end
end
os.exit(main())
]=]
	local out, okr = tap.run_lua((script:gsub("URL", tap.url("/echo"))))
	ok(okr, "child failed: " .. out)
	eq(out, "Connection successful, send message: Hello world!\n" ..
		"Received message: Hello world!\n" ..
		"Received message: Hello again!\n" ..
		"Connection closed\n")
end)

test("a close handler may connect the same wso again", function()
	local opens, closes = 0, 0
	local wso
	wso = tap.create { url = tap.url("/echo"), event_handlers = {
		[3] = function(_, attempt, w) opens = opens + 1; ws.close(w, 4000 + opens) end,
		[4] = function(clean, code, reason, w)
			closes = closes + 1
			eq(code, 4000 + closes)
			if closes == 1 then eq(ws.connect(w), true, "connect from the close handler") end
		end,
	} }
	ws.connect(wso)
	eq(ws.loop(tap.ms(10000)), true)
	eq(opens, 2)
	eq(closes, 2)
	eq(ws.state(wso), "closed")
end)

test("ws.loop returns only after the close event was delivered (100 rounds)", function()
	local missing = 0
	for round = 1, 100 do
		local closed = false
		local wso = tap.create { url = tap.url("/echo"), event_handlers = {
			open = function(w) ws.send(w, "r" .. round) end,
			message = function(w) ws.close(w) end,
			close = function() closed = true end,
		} }
		ws.connect(wso)
		local r, why = ws.loop(tap.ms(5000))
		eq(r, true, "loop round " .. round .. ": " .. tostring(why))
		if not closed then missing = missing + 1 end
		ws.dispatch(0)
	end
	eq(missing, 0, "rounds where loop returned before the close handler ran")
end)

test("runtime failures return nil, message, stable name", function()
	local wso = tap.create { url = tap.url("/echo") }
	local r, msg, name = ws.send(wso, "before connect")
	eq(r, nil)
	eq(msg, "connection is not open")
	eq(name, "ESTATE")
	r, msg, name = ws.ping(wso)
	eq(name, "ESTATE")
	local srv = assert(ws.listen { port = 0, standalone = true })
	srv:close()
	r, msg, name = srv:port()
	eq(r, nil)
	eq(name, "ESTATE", "port of a closed server: " .. tostring(msg))
end)

tap.done()
