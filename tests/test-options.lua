-- create options: protocols, headers, origin, keepalive, reconnect, proxies,
-- redirects, max_send_queue, compression.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

local open = tap.open

local function close(wso, rec)
	ws.close(wso)
	rec.wait(4, 5)
end

local function echo_once(wso, rec, msg)
	local n = rec.count(8)
	eq(ws.send(wso, msg), true)
	rec.wait(8, 5, n + 1)
	eq(rec.last(8), msg)
end

-- ------------------------------------------------------------------ addresses
if tap.env("HTTP6_PORT", "") ~= "" then
	test("IPv6 literal ws://[::1]:port/ connects and echoes", function()
		local wso, rec = open("ws://[::1]:" .. tap.env("HTTP6_PORT") .. "/echo")
		echo_once(wso, rec, "over IPv6")
		close(wso, rec)
	end)
else
	tap.skip("IPv6 literal ws://[::1]:port/ connects and echoes", "no IPv6 loopback here")
end

test("a host name (localhost) is resolved", function()
	local wso, rec = open("ws://localhost:" .. tap.env("HTTP_PORT") .. "/echo")
	echo_once(wso, rec, "by name")
	close(wso, rec)
end)

-- ------------------------------------------------------------------ subprotocols
test("protocols = {\"nope\", \"chat\"} -> event 3 \"chat\", ws.protocol \"chat\"", function()
	local wso, rec = open("/subproto", { protocols = { "nope", "chat" } })
	eq(rec.last(3), "chat")
	eq(ws.protocol(wso), "chat")
	eq(wso:protocol(), "chat")
	echo_once(wso, rec, "sub")
	close(wso, rec)
end)

test("protocols as a string", function()
	local wso, rec = open("/subproto", { protocols = "superchat" })
	eq(rec.last(3), "superchat")
	eq(ws.protocol(wso), "superchat")
	close(wso, rec)
end)

test("no protocols -> \"\"; ws.protocol before open is \"\"", function()
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url("/subproto"), event_handlers = rec.handlers }
	eq(ws.protocol(wso), "")
	ws.connect(wso)
	rec.wait(3)
	eq(rec.last(3), "")
	eq(ws.protocol(wso), "")
	close(wso, rec)
end)

test("server accepting none of the offered protocols -> connects with \"\"", function()
	local wso, rec = open("/subproto", { protocols = { "x-unknown" } })
	eq(rec.last(3), "")
	close(wso, rec)
end)

-- ------------------------------------------------------------------ headers, origin
test("headers and origin reach the server", function()
	local wso, rec = open("/headers", { headers = { ["X-Test"] = "v1", ["X-Other"] = "two words" },
		origin = "http://vera.local" })
	rec.wait(8)
	local h = tap.json(rec.nth(8, 1))
	eq(h["X-Test"], "v1")
	eq(h["X-Other"], "two words")
	eq(h["Origin"], "http://vera.local")
	eq(h["_uri"], "/headers")
	eq(h["_host"], "127.0.0.1:" .. tap.env("HTTP_PORT"))
	eq(h["Sec-Websocket-Version"], "13")
	eq(h["Sec-Websocket-Extensions"], nil, "no extension offered by default")
	close(wso, rec)
end)

test("query string is kept in the request URI", function()
	local wso, rec = open("/headers?a=1&b=two")
	rec.wait(8)
	eq(tap.json(rec.nth(8, 1))["_uri"], "/headers?a=1&b=two")
	close(wso, rec)
end)

test("header values with CR/LF and bad header names are refused", function()
	tap.raises(function() ws.create { url = tap.url(), headers = { ["X-Bad"] = "a\r\nX-Injected: 1" } } end,
		"bad argument #1 to 'create'", "CRLF in value")
	tap.raises(function() ws.create { url = tap.url(), headers = { ["X-Bad"] = "a\nb" } } end,
		"bad argument #1 to 'create'", "LF in value")
	tap.raises(function() ws.create { url = tap.url(), headers = { ["Bad Name"] = "v" } } end,
		"bad argument #1 to 'create'", "space in name")
	tap.raises(function() ws.create { url = tap.url(), headers = { ["X-A:b"] = "v" } } end,
		"bad argument #1 to 'create'", "colon in name")
	tap.raises(function() ws.create { url = tap.url(), origin = "http://x\r\nEvil: 1" } end,
		"bad argument #1 to 'create'", "CRLF in origin")
end)

test("compression = true against a server without permessage-deflate still works", function()
	local wso, rec = open("/headers", { compression = true })
	rec.wait(8)
	like(tap.json(rec.nth(8, 1))["Sec-Websocket-Extensions"] or "", "permessage%-deflate", "offered")
	echo_once(wso, rec, string.rep("compressible ", 1000))
	close(wso, rec)
end)

-- ------------------------------------------------------------------ keepalive
test("keepalive: server stops answering pings -> event 4 clean = false", function()
	local t0 = tap.now()
	local wso, rec = open("/noping", { ping_interval = 0.3, pong_timeout = 0.3 })
	rec.wait(4, 5)
	local dt = tap.now() - t0
	local clean, code = rec.last(4)
	eq(clean, false)
	ok(code ~= 1000, "code " .. tostring(code))
	ok(dt < 4 * tap.factor, "detected after " .. dt .. " s")
	eq(ws.state(wso), "closed")
end)

test("keepalive: an answering server keeps the connection open", function()
	local id = tap.uid("keepalive")
	local wso, rec = open("/echo?id=" .. id, { ping_interval = 0.2, pong_timeout = 2 * tap.factor })
	-- /closeinfo reports the pings of a live connection: wait (bounded) for 3 answered pings
	local pings = 0
	tap.wait(function()
		pings = tap.control("/closeinfo?id=" .. id).pings or 0
		if pings < 3 then tap.pump(0.1) end
		return pings >= 3
	end, 10, function() return "3 pings at the server (seen " .. pings .. ")" end)
	eq(rec.count(4), 0, "no close")
	eq(ws.state(wso), "open")
	echo_once(wso, rec, "alive")
	close(wso, rec)
	local seen = tap.closeinfo(id)
	ok(seen.pings >= 3, "the server received " .. tostring(seen.pings) .. " pings at ping_interval 0.2")
end)

-- ------------------------------------------------------------------ reconnect
test("reconnect after the server goes away: attempts increase, then open again; close stops it", function()
	local url = tap.url("/echo", "KILL_PORT")
	local wso, rec = open(url, { reconnect = { min_delay = 0.2, max_delay = 0.4, factor = 2, jitter = 0, max_attempts = 0 } })
	eq(select(2, rec.last(3)), 1, "first open: attempt 1")
	echo_once(wso, rec, "before")
	-- the port stays down (bounded by ms) until /revive, after a failed attempt was seen
	tap.control("/kill?ms=" .. tap.ms(60000))
	local okr, err = pcall(function()
		rec.wait(4, 5)
		local clean = rec.last(4)
		eq(clean, false, "dropped connection is not clean")
		rec.wait(1, 10)
	end)
	tap.control("/revive")
	if not okr then error(err, 0) end
	rec.wait(3, 10, 2)
	eq(ws.state(wso), "open")
	-- after the drop, the failed attempts and the reopen are numbered consecutively
	-- (a new series that starts at 1 or continues after the first open's 1)
	local series, dropped = {}, false
	for _, e in ipairs(rec.list) do
		if e.ev == 4 then dropped = true end
		if dropped and (e.ev == 1 or e.ev == 3) then series[#series + 1] = { ev = e.ev, attempt = e.args[2] } end
	end
	ok(#series >= 2, "at least one failed attempt while the server was down (" .. rec.summary() .. ")")
	ok(series[1].attempt == 1 or series[1].attempt == 2, "first reconnect attempt is 1 or 2, got " .. tostring(series[1].attempt))
	for i = 2, #series do
		eq(series[i].attempt, series[i - 1].attempt + 1, "attempt numbers increase by one")
	end
	eq(series[#series].ev, 3, "the series ends with the reopen")
	ok(series[#series].attempt > 1, "reopened with attempt > 1")
	echo_once(wso, rec, "after")
	ws.close(wso)
	rec.wait(4, 5, 2)
	local n = #rec.list
	tap.pump(1)
	eq(#rec.list, n, "no events after close")
	eq(ws.state(wso), "closed")
end)

test("ws.close stops reconnecting", function()
	local rec = tap.recorder()
	local wso = tap.create { url = "ws://127.0.0.1:" .. tap.env("CLOSED_PORT") .. "/",
		reconnect = { min_delay = 0.1, max_delay = 0.2, factor = 1, jitter = 0 }, event_handlers = rec.handlers }
	ws.connect(wso)
	rec.wait(1, 10, 2)
	ok(select(2, rec.nth(1, 2)) == 2, "second error is attempt 2")
	eq(ws.close(wso), true)
	tap.wait(function() return ws.state(wso) == "closed" end, 5, "closed")
	local n = rec.count(1)
	tap.pump(0.8)
	eq(rec.count(1), n, "no more attempts after close")
	eq(rec.count(3), 0)
end)

test("reconnect max_attempts bounds the attempts", function()
	local rec = tap.recorder()
	local wso = tap.create { url = "ws://127.0.0.1:" .. tap.env("CLOSED_PORT") .. "/",
		reconnect = { min_delay = 0.1, max_delay = 0.1, factor = 1, jitter = 0, max_attempts = 3 }, event_handlers = rec.handlers }
	ws.connect(wso)
	tap.wait(function() return ws.state(wso) == "closed" end, 10, "gives up")
	tap.pump(0.5)
	local n = rec.count(1)
	ok(n >= 3 and n <= 4, "event 1 count " .. n .. " for max_attempts 3")
	for i = 1, n do eq(select(2, rec.nth(1, i)), i, "attempt of error " .. i) end
	eq(rec.count(3), 0)
end)

test("reconnect = true is accepted and a clean close does not reconnect", function()
	local wso, rec = open("/closewith?code=1000", { reconnect = true })
	rec.wait(4)
	tap.pump(0.5)
	eq(rec.count(3), 1, "server's clean close: no reconnect")
	ws.close(wso)
	tap.wait(function() return ws.state(wso) == "closed" end, 5, "closed")
end)

-- ------------------------------------------------------------------ proxies
test("own CONNECT proxy: echo through it, one tunnel counted", function()
	local before = tap.control("/stats")
	local wso, rec = open("/echo", { proxy = "http://127.0.0.1:" .. tap.env("PROXY_PORT") })
	echo_once(wso, rec, "via proxy")
	close(wso, rec)
	local after = tap.control("/stats")
	eq(after.tunnels, before.tunnels + 1, "tunnels")
	eq(after.last_target, "127.0.0.1:" .. tap.env("HTTP_PORT"))
end)

test("CONNECT proxy with basic auth: right credentials pass", function()
	local before = tap.control("/stats")
	local wso, rec = open("/echo", { proxy = "http://" .. tap.env("PROXY_USER") .. ":" .. tap.env("PROXY_PASS") ..
		"@127.0.0.1:" .. tap.env("PROXY_AUTH_PORT") })
	echo_once(wso, rec, "via auth proxy")
	close(wso, rec)
	eq(tap.control("/stats").auth_tunnels, before.auth_tunnels + 1)
end)

test("CONNECT proxy with basic auth: no credentials -> event 1", function()
	local before = tap.control("/stats")
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url("/echo"), proxy = "http://127.0.0.1:" .. tap.env("PROXY_AUTH_PORT"),
		event_handlers = rec.handlers }
	ws.connect(wso)
	rec.wait(1, 10)
	eq(rec.count(3), 0)
	eq(tap.control("/stats").auth_rejected, before.auth_rejected + 1)
	eq(ws.state(wso), "closed")
end)

test("wss through the CONNECT proxy", function()
	local before = tap.control("/stats")
	local wso, rec = open(tap.url("/echo", "TLS_PORT"), { proxy = "http://127.0.0.1:" .. tap.env("PROXY_PORT"),
		ssl_settings = { client_ssl_ca_filepath = tap.cert("ca.pem") } })
	echo_once(wso, rec, "tls via proxy")
	close(wso, rec)
	eq(tap.control("/stats").tunnels, before.tunnels + 1)
end)

test("proxy = \"env\": a child interpreter with http_proxy set tunnels through it; no_proxy exempts", function()
	local code = [[
local ws = require "verawebsockets"
local got
local wso = ws.create{ url = os.getenv("URL"), proxy = "env", standalone = true, event_handlers = {
	open = function(w) ws.send(w, "via env proxy") end,
	message = function(w, data) got = data; ws.close(w) end,
	error = function(w, reason) print("ERROR " .. reason) end } }
ws.connect(wso)
print("loop", ws.loop(10000 * (tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1)))
print("GOT " .. tostring(got))
]]
	local url = tap.url("/echo")
	local proxy = "http://127.0.0.1:" .. tap.env("PROXY_PORT")
	local before = tap.control("/stats")
	local out, okk = tap.run_lua_env({ URL = url, http_proxy = proxy, no_proxy = "" }, code)
	ok(okk, out)
	like(out, "GOT via env proxy", out)
	eq(tap.control("/stats").tunnels, before.tunnels + 1, "one tunnel through the env proxy")
	out, okk = tap.run_lua_env({ URL = url, http_proxy = proxy, no_proxy = "127.0.0.1" }, code)
	ok(okk, out)
	like(out, "GOT via env proxy", out)
	eq(tap.control("/stats").tunnels, before.tunnels + 1, "no_proxy: no new tunnel")
end)

test("proxy that refuses to connect -> event 1", function()
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url("/echo"), proxy = "http://127.0.0.1:" .. tap.env("CLOSED_PORT"),
		event_handlers = rec.handlers }
	ws.connect(wso)
	rec.wait(1, 10)
	eq(rec.count(3), 0)
end)

local tp = os.getenv("VWS_TEST_TINYPROXY_PORT")
if tp and tp ~= "" then
	test("tinyproxy (Debian) as an independent CONNECT proxy", function()
		local function count()
			local f = io.open(tap.env("TINYPROXY_LOG"))
			if not f then return 0 end
			local s = f:read("*a")
			f:close()
			local n = 0
			for _ in s:gmatch("CONNECT 127%.0%.0%.1:" .. tap.env("HTTP_PORT")) do n = n + 1 end
			return n
		end
		local before = count()
		local wso, rec = open("/echo", { proxy = "http://127.0.0.1:" .. tp })
		echo_once(wso, rec, "via tinyproxy")
		echo_once(wso, rec, string.rep("b", 70000))
		close(wso, rec)
		eq(count(), before + 1, "tinyproxy logged one CONNECT")
	end)
else
	tap.skip("tinyproxy (Debian) as an independent CONNECT proxy", "tinyproxy not running")
end

-- ------------------------------------------------------------------ redirects
test("max_redirects = 2 follows two 302s to the echo route", function()
	local wso, rec = open("/redirect?hops=2", { max_redirects = 2 })
	echo_once(wso, rec, "redirected")
	close(wso, rec)
end)

test("max_redirects = 2 with three 302s -> event 1", function()
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url("/redirect?hops=3"), max_redirects = 2, event_handlers = rec.handlers }
	ws.connect(wso)
	rec.wait(1, 10)
	eq(rec.count(3), 0)
end)

test("302 without Location -> \"HS: Redirect code but no Location\"", function()
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url("/redirect_noloc"), max_redirects = 2, event_handlers = rec.handlers }
	ws.connect(wso)
	rec.wait(1, 10)
	eq(rec.last(1), "HS: Redirect code but no Location")
end)

-- ------------------------------------------------------------------ send queue
test("max_send_queue: a slow reader fills the queue -> nil, err; writeable after it drains", function()
	-- the server reads nothing until /release (bounded by ms), however long filling takes
	local key = tap.uid("slow")
	local wso, rec = open("/slow?hold=" .. key .. "&ms=" .. tap.ms(60000), { max_send_queue = 256 * 1024 })
	local chunk = string.rep("q", 64 * 1024)
	local full, err, sent = false, nil, 0
	local okf, ferr = pcall(function()
		for _ = 1, 1600 do -- the kernel's socket buffers take a few MiB first
			local r, e, name = ws.send(wso, chunk, "binary")
			if r == nil then
				err = e
				eq(name, "EFULL", "the stable error name")
				if ws.buffered(wso) > 0 then full = true break end
			else
				eq(r, true)
				sent = sent + 1
			end
		end
		ok(full, "a send was refused while data was queued (" .. sent .. " x 64 KiB accepted)")
		eq(type(err), "string")
		ok(ws.buffered(wso) <= 256 * 1024 + 64 * 1024 + 64, "buffered " .. ws.buffered(wso) .. " bounded by max_send_queue")
		eq(ws.state(wso), "open", "a full queue does not close")
	end)
	-- the reader wakes up: the queue drains, event 10 comes
	tap.control("/release?key=" .. key)
	if not okf then error(ferr, 0) end
	tap.wait(function() return ws.buffered(wso) == 0 end, 15, "queue drained")
	rec.wait(10, 5)
	eq(ws.send(wso, chunk, "binary"), true, "sending works again")
	close(wso, rec)
end)

test("a message over max_send_queue is refused by its send (in process) or the next send (out of process); none is lost unreported", function()
	local wso, rec = open("/echo", { max_send_queue = 1000 })
	local r1, e1, n1 = ws.send(wso, string.rep("b", 1200), "binary")
	-- out of process the send went without waiting; buffered is answered after
	-- the helper took it, and its report of the failure comes before the answer
	ws.buffered(wso)
	local r2, e2, n2 = ws.send(wso, "after")
	ok((r1 == nil) ~= (r2 == nil), "exactly one send refused: " .. tostring(r1) .. ", " .. tostring(r2))
	local err, name = e1 or e2, n1 or n2
	eq(name, "EFULL", "the stable error name")
	like(err, "queue is full")
	eq(ws.send(wso, "again"), true, "the next send is queued")
	rec.wait(8, 5, r2 and 2 or 1)
	tap.pump(0.2)
	local got = {}
	for i = 1, rec.count(8) do got[i] = rec.nth(8, i) end
	eq(table.concat(got, ","), r2 and "after,again" or "again", "echoed: only what was queued")
	eq(ws.state(wso), "open", "a refused message does not close")
	close(wso, rec)
end)

tap.done()
