-- A server safe to put on a home network (ws.listen): the Origin policy (raw
-- clients with forged Origin/Host pairs, and a headless Chromium page of another
-- port), client certificates on wss:// servers, per-address limits.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

local LISTEN = "bad argument #1 to 'listen'"

-- ---------------------------------------------------------------- helpers
local skip_reason
if not ws or type(ws.listen) ~= "function" then
	test("ws.listen exists", function()
		ok(ws, "require 'verawebsockets' failed: " .. tostring(tap.load_error))
		eq(type(ws.listen), "function", "ws.listen")
	end)
	tap.done()
end
local has_socket, socket = pcall(require, "socket")

-- stest(name, fn[, needs_socket]): tap.server_test (skipped when needs_socket and
-- LuaSocket is missing).
local function stest(name, fn, needs_socket)
	if skip_reason then return tap.skip(name, skip_reason) end
	if needs_socket and not has_socket then return tap.skip(name, "LuaSocket missing (the raw client needs it)") end
	tap.server_test(name, fn)
end

-- listen(opts) -> srv, opened: a standalone server on 127.0.0.1, port 0; opened
-- is the list of {wso, path} its open handler got (unless opts.event_handlers).
local function listen(opts)
	local opened = {}
	opts.event_handlers = opts.event_handlers or {
		open = function(wso, path) opened[#opened + 1] = { wso = wso, path = path } end,
	}
	return tap.listen(opts), opened
end

-- handshake(port, host, extra) -> status, tcp: a raw LuaSocket client sends a
-- complete opening handshake (Host: host, plus the extra header lines) and reads
-- the status code; tcp is open after a 101 (close it), nil otherwise.
local function handshake(port, host, extra)
	local tcp = assert(socket.tcp())
	tcp:settimeout(5 * tap.factor)
	assert(tcp:connect("127.0.0.1", port))
	assert(tcp:send("GET /raw HTTP/1.1\r\nHost: " .. host .. "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" .. (extra or "") .. "\r\n"))
	local line, err = tcp:receive("*l")
	ok(line, "no status line: " .. tostring(err))
	local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d)"))
	if status == 101 then
		repeat local l = assert(tcp:receive("*l")) until l == ""
		return status, tcp
	end
	tcp:close()
	return status
end

-- settle(): lets events that might (wrongly) come be delivered.
local function settle() tap.pump(0.3) end

-- ---------------------------------------------------------------- Origin policy
stest("origin: forged Origin/Host pairs get 403 before the upgrade; nothing reaches Lua", function()
	local srv, opened = listen({})
	local port = srv:port()
	local here = "127.0.0.1:" .. port
	for _, pair in ipairs({
		{ here, "Origin: http://evil.example" },
		{ here, "Origin: http://127.0.0.1:1" },              -- a page of another port
		{ here, "Origin: http://127.0.0.1" },                -- ... or of port 80
		{ "evil.example", "Origin: http://127.0.0.1:" .. port }, -- Host and Origin disagree
		{ here, "Origin: null" },                             -- sandboxed frame, file:// page
		{ here, "Origin: https://" .. here .. ".evil.example" },
	}) do
		eq(handshake(port, pair[1], pair[2] .. "\r\n"), 403, "Host " .. pair[1] .. ", " .. pair[2])
	end
	settle()
	eq(#opened, 0, "no open event")
end, true)

stest("origin: no Origin (native clients) and an Origin of the same host are accepted", function()
	local srv, opened = listen({})
	local port = srv:port()
	local status, tcp = handshake(port, "anything")
	eq(status, 101, "no Origin")
	tcp:close()
	status, tcp = handshake(port, "127.0.0.1:" .. port, "Origin: http://127.0.0.1:" .. port .. "\r\n")
	eq(status, 101, "same host and port")
	tcp:close()
	local wso = tap.open("ws://127.0.0.1:" .. port .. "/native")
	tap.wait(function() return #opened == 3 end, 5, "three open events")
	-- open events of different connections come in the order their handshakes
	-- finished on the server's side, not in the order the client saw the 101s
	local native = 0
	for _, o in ipairs(opened) do if o.path == "/native" then native = native + 1 end end
	eq(native, 1, "the library client's open event")
	tap.close_and_wait(wso)
end, true)

stest("origins: listed origins are accepted, others still refused; '*' allows every origin", function()
	local srv, opened = listen({ origins = { "http://192.168.1.5:8080", "https://example.com" } })
	local port = srv:port()
	local here = "127.0.0.1:" .. port
	local wso = tap.open("ws://" .. here .. "/listed", { origin = "https://example.com" })
	tap.close_and_wait(wso)
	local status, tcp = handshake(port, here, "Origin: http://192.168.1.5:8080\r\n")
	eq(status, 101, "listed origin")
	tcp:close()
	eq(handshake(port, here, "Origin: http://example.com\r\n"), 403, "scheme differs")
	eq(handshake(port, here, "Origin: https://example.com:8443\r\n"), 403, "port differs")
	eq(handshake(port, here, "Origin: http://evil.example\r\n"), 403, "not listed")
	tap.wait(function() return #opened == 2 end, 5, "two open events")
	settle()
	eq(#opened, 2, "only the listed origins opened")

	local any = listen({ origins = "*" })
	status, tcp = handshake(any:port(), "x", "Origin: http://evil.example\r\n")
	eq(status, 101, "origins = '*'")
	tcp:close()
end, true)

stest("origins, max_clients_per_ip, handshake_rate, ssl_settings: bad values raise", function()
	local function raises(opts, what)
		opts.port, opts.standalone = 0, true
		return tap.raises(function() ws.listen(opts) end, LISTEN, what)
	end
	like(raises({ origins = 5 }, "origins a number"), "origins")
	like(raises({ origins = { "example.com" } }, "origin without a scheme"), "origins")
	like(raises({ origins = { "http://a/path" } }, "origin with a path"), "origins")
	like(raises({ origins = { "http://a,http://b" } }, "a comma inside"), "origins")
	like(raises({ origins = {} }, "an empty list"), "origins")
	like(raises({ max_clients_per_ip = -1 }, "max_clients_per_ip < 0"), "max_clients_per_ip")
	like(raises({ max_clients_per_ip = 1.5 }, "max_clients_per_ip not an integer"), "max_clients_per_ip")
	like(raises({ handshake_rate = 0 }, "rate 0"), "handshake_rate")
	like(raises({ handshake_rate = "fast" }, "rate a string"), "handshake_rate")
	like(raises({ handshake_rate = { rate = 1, burst = 0 } }, "burst 0"), "handshake_rate")
	like(raises({ handshake_rate = { burst = 2 } }, "no rate"), "handshake_rate")
	like(raises({ ssl_settings = { require_client_cert = "yes" } }, "require_client_cert a string"), "require_client_cert")
	like(raises({ ssl_settings = { ssl_ca_filepath = 1 } }, "ssl_ca_filepath a number"), "ssl_ca_filepath")
	-- Checked by the engine when listening (misuse raises, as a bad certificate does).
	like(raises({ ssl_settings = { require_client_cert = true } }, "require_client_cert without a CA"),
		"require_client_cert: needs ssl_ca_filepath")
	like(raises({ ssl_settings = { ssl_ca_filepath = tap.cert("ca.pem") } }, "ssl_ca_filepath on a ws:// server"),
		"ssl_ca_filepath: client certificates need a TLS server")
	like(raises({ ssl_settings = { ssl_cert_filepath = tap.cert("server.pem"), ssl_private_key_filepath = tap.cert("server.key"),
		ssl_ca_filepath = tap.cert("garbage.pem") } }, "a CA file without PEM"), "no PEM certificate")
end)

-- ---------------------------------------------------------------- a browser
-- A page served from one port (python3 -m http.server on 127.0.0.1) opens a
-- WebSocket to a ws.listen server on another port and writes the outcome into
-- its DOM, which headless Chromium dumps.
local chromium
do
	local function has(cmd) return tap.execute("command -v " .. cmd .. " >/dev/null 2>&1") end
	if not has("chromium") then -- installs with apt-get when run as root (bounded)
		os.execute("cd " .. (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/.. && timeout 600 build/deps.sh chromium >/dev/null 2>&1")
	end
	if has("chromium") and has("python3") then
		chromium = true
	else
		chromium = "chromium (or python3) not installed and build/deps.sh chromium could not install it"
	end
end
-- Under qemu (the cross tests) the browser's virtual time outruns the emulated
-- server; the server code is the same as on amd64, where this test runs.
do
	local arch = os.getenv("VWS_TEST_ARCH")
	if arch and arch ~= "amd64" and chromium == true then
		chromium = "skipped under emulation (" .. arch .. "): runs on amd64"
	end
end

local readfile = tap.readfile

-- page_server() -> port, dir, stop: python3's http.server on 127.0.0.1 serving a new directory.
local function page_server()
	local dir = os.tmpname()
	os.remove(dir)
	assert(tap.execute("mkdir -p " .. dir .. "/www"))
	os.execute(string.format("(timeout %d python3 -u -m http.server 0 --bind 127.0.0.1 --directory %s/www > %s/http.out 2>&1 & echo $! > %s/http.pid)",
		120 * tap.factor, dir, dir, dir))
	local port
	tap.wait_nodispatch(function()
		port = tonumber(readfile(dir .. "/http.out"):match("port (%d+)"))
		return port ~= nil
	end, 10, "python3 -m http.server")
	local function stop()
		local pid = tonumber(readfile(dir .. "/http.pid"):match("%d+"))
		if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
		os.execute("rm -rf " .. dir)
	end
	return port, dir, stop
end

-- browse(http_port, dir, ws_port) -> outcome ("OPEN" | "REFUSED:code" | "PENDING" | nil), dom:
-- headless Chromium loads a page of http_port that connects to ws_port; the
-- server's events are dispatched meanwhile.
local function browse(http_port, dir, ws_port)
	local f = assert(io.open(dir .. "/www/page.html", "w"))
	f:write(([[<!doctype html><html><head><title>origin test</title></head><body><p id="r">PENDING</p><script>
var r = document.getElementById("r"), s = new WebSocket("ws://127.0.0.1:WSPORT/browser" + location.search);
s.onopen = function () { r.textContent = "OUT" + "COME:OPEN"; s.close(); };
s.onclose = function (e) { if (r.textContent === "PENDING") r.textContent = "OUT" + "COME:REFUSED:" + e.code; };
</script></body></html>
]]):gsub("WSPORT", tostring(ws_port)))
	f:close()
	return tap.browse("http://127.0.0.1:" .. http_port .. "/page.html", dir)
end

local function btest(name, fn)
	if chromium ~= true then return tap.skip(name, chromium) end
	stest(name, fn)
end

btest("browser: a page of another port is refused by default, accepted when origins lists it", function()
	local http_port, dir, stop = page_server()
	local okf, err = pcall(function()
		local srv, opened = listen({})
		local outcome, dom = browse(http_port, dir, srv:port())
		eq(outcome, "REFUSED:1006", "default policy: " .. dom:sub(1, 2000))
		settle()
		eq(#opened, 0, "no open event for the refused page")

		local srv2, opened2 = listen({ origins = { "http://127.0.0.1:" .. http_port } })
		local load
		outcome, dom, load = browse(http_port, dir, srv2:port())
		eq(outcome, "OPEN", "origins lists the page: " .. dom:sub(1, 2000))
		-- the open event of the load that reported OPEN (an earlier PENDING load may have opened too)
		local mine = "/browser?load=" .. load
		local function of_load()
			local found = {}
			for _, o in ipairs(opened2) do if o.path == mine then found[#found + 1] = o end end
			return found
		end
		tap.wait(function() return #of_load() == 1 end, 5, "open event of " .. mine)
		settle()
		eq(#of_load(), 1, "one open event for " .. mine)
		like(ws.headers(of_load()[1].wso).origin, "^http://127%.0%.0%.1:" .. http_port .. "$", "the page's Origin")
	end)
	stop()
	if not okf then error(err, 0) end
end)

-- ---------------------------------------------------------------- client certificates
local function tls_listen(extra)
	local ssl = { ssl_cert_filepath = tap.cert("server.pem"), ssl_private_key_filepath = tap.cert("server.key"),
		ssl_ca_filepath = tap.cert("ca.pem"), require_client_cert = true }
	for k, v in pairs(extra or {}) do ssl[k] = v end
	return listen({ ssl_settings = ssl })
end

-- client_ssl(name) -> ssl_settings of a client trusting the test CA, with the
-- certificate name.pem/name.key (none if nil).
local function client_ssl(name)
	local s = { client_ssl_ca_filepath = tap.cert("ca.pem") }
	if name then
		s.client_ssl_cert_filepath, s.client_ssl_private_key_filepath = tap.cert(name .. ".pem"), tap.cert(name .. ".key")
	end
	return s
end

-- refused(url, opts) -> reason: a client gets event 1 and never opens.
local function refused(u, opts)
	local rec = tap.recorder()
	opts.url, opts.event_handlers = u, rec.handlers
	local wso = tap.create(opts)
	eq(ws.connect(wso), true, "connect")
	tap.wait(function() return rec.count(1) + rec.count(3) > 0 end, 10, "open or error")
	eq(rec.count(3), 0, "must not open")
	tap.wait(function() return ws.state(wso) == "closed" end, 5, "state closed")
	return rec.last(1)
end

stest("mutual TLS: a client certificate the CA signed is accepted and its subject readable", function()
	local srv, opened = tls_listen()
	local wso = tap.open("wss://127.0.0.1:" .. srv:port() .. "/mtls", { ssl_settings = client_ssl("client") })
	tap.wait(function() return #opened == 1 end, 5, "open event")
	local acc = opened[1].wso
	eq(ws.peer_cert(acc), "CN=vws test client", "ws.peer_cert")
	eq(acc:peer_cert(), "CN=vws test client", "wso:peer_cert")
	local none, err = ws.peer_cert(wso)
	eq(none, nil, "a client wso has no peer certificate")
	like(err, "not a connection accepted by a server")
	tap.close_and_wait(wso)
end)

stest("mutual TLS: no client certificate, or one of another CA, is refused at the TLS handshake", function()
	local srv, opened = tls_listen()
	local u = "wss://127.0.0.1:" .. srv:port() .. "/mtls"
	like(refused(u, { ssl_settings = client_ssl(nil) }), ".", "no certificate: a reason")
	like(refused(u, { ssl_settings = client_ssl("wrongclient") }), ".", "another CA: a reason")
	settle()
	eq(#opened, 0, "no open event")
end)

stest("client certificates optional (ssl_ca_filepath alone); plain servers have none", function()
	local srv, opened = tls_listen({ require_client_cert = false })
	local u = "wss://127.0.0.1:" .. srv:port() .. "/"
	local a = tap.open(u, { ssl_settings = client_ssl(nil) })
	local b = tap.open(u, { ssl_settings = client_ssl("client") })
	tap.wait(function() return #opened == 2 end, 5, "two open events")
	local subjects = {}
	for _, o in ipairs(opened) do subjects[#subjects + 1] = tostring(ws.peer_cert(o.wso)) end
	table.sort(subjects)
	eq(table.concat(subjects, "|"), "CN=vws test client|nil", "one with a subject, one without")
	tap.close_and_wait(a)
	tap.close_and_wait(b)

	local plain, popened = listen({})
	local c = tap.open("ws://127.0.0.1:" .. plain:port() .. "/")
	tap.wait(function() return #popened == 1 end, 5, "open event")
	local subj, err = ws.peer_cert(popened[1].wso)
	eq(subj, nil, "no TLS: nil")
	eq(err, nil, "no TLS: no error")
	tap.close_and_wait(c)
end)

-- ---------------------------------------------------------------- per-address limits
stest("max_clients_per_ip = 3: a 4th connection from 127.0.0.1 gets 503, before the upgrade", function()
	local srv, opened = listen({ max_clients_per_ip = 3 })
	local port = srv:port()
	local tcps = {}
	for i = 1, 3 do
		local status, tcp = handshake(port, "x")
		eq(status, 101, "client " .. i)
		tcps[i] = tcp
	end
	eq(handshake(port, "x"), 503, "4th client")
	tap.wait(function() return #opened == 3 end, 5, "three open events")
	settle()
	eq(#opened, 3, "the 4th never reached Lua")
	tcps[1]:close()
	local status, tcp
	tap.wait(function()
		status, tcp = handshake(port, "x")
		return status == 101
	end, 5, "a place again after one left")
	tcp:close()
	for i = 2, 3 do tcps[i]:close() end
end, true)

stest("handshake_rate = {rate = 1, burst = 2}: a burst of handshakes gets 429", function()
	local srv, opened = listen({ handshake_rate = { rate = 1, burst = 2 } })
	local port = srv:port()
	local got = {}
	for i = 1, 4 do
		local status, tcp = handshake(port, "x")
		got[i] = status
		if tcp then tcp:close() end
	end
	eq(table.concat(got, ","), "101,101,429,429", "statuses")
	tap.wait(function() return #opened == 2 end, 5, "two open events")
	settle()
	eq(#opened, 2, "refused handshakes never reached Lua")
	local n = listen({ handshake_rate = 1000 })
	local status, tcp = handshake(n:port(), "x")
	eq(status, 101, "a number form")
	tcp:close()
end, true)

-- ---------------------------------------------------------------- handshake filter
-- answer(port, target, extra[, no_dispatch]) -> status, headers (lower-case names), body,
-- tcp: a raw handshake whose whole answer is read while this script dispatches
-- (the filter runs in ws.dispatch); tcp is open after a 101 (close it).
local function answer(port, target, extra, no_dispatch)
	local tcp = assert(socket.tcp())
	tcp:settimeout(5 * tap.factor)
	assert(tcp:connect("127.0.0.1", port))
	assert(tcp:send("GET " .. target .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\nUpgrade: websocket\r\n" ..
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" ..
		(extra or "") .. "\r\n"))
	tcp:settimeout(no_dispatch and 5 * tap.factor or 0)
	local parts, deadline = {}, tap.now() + 10 * tap.factor
	while true do
		local d, e, part = tcp:receive(no_dispatch and "*l" or "*a")
		if d and no_dispatch then d = d .. "\r\n" end
		if d and d ~= "" then parts[#parts + 1] = d end
		if part and part ~= "" then parts[#parts + 1] = part end
		local res = table.concat(parts)
		local status = tonumber(res:match("^HTTP/1%.1 (%d%d%d)"))
		if status == 101 and res:find("\r\n\r\n", 1, true) then return 101, {}, "", tcp end
		if (d and not no_dispatch) or e == "closed" or (no_dispatch and e) then break end
		if tap.now() > deadline then break end
		if not no_dispatch then ws.dispatch(10) end
	end
	tcp:close()
	local res = table.concat(parts)
	local head, body = res:match("^(.-)\r\n\r\n(.*)$")
	local h = {}
	for k, v in (head or ""):gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do h[k:lower()] = v end
	return tonumber(res:match("^HTTP/1%.1 (%d%d%d)")), h, body
end

local function token_filter(calls)
	return function(req)
		calls[#calls + 1] = req
		if req.headers.authorization == "Bearer good" or req.query == "token=good" then return true end
		if req.path == "/forbidden" then return false end
		if req.path == "/boom" then error("the filter broke") end
		return 401, { ["WWW-Authenticate"] = 'Bearer realm="vera"' }, "token please\n"
	end
end

for _, standalone in ipairs({ true, false }) do
	local mode = standalone and "standalone" or "Luup mode (hook delivery)"
	stest("filter (" .. mode .. "): 401 with WWW-Authenticate and body before the upgrade; a token gets in; req fields", function()
		local calls = {}
		local srv, opened = listen({ filter = token_filter(calls), standalone = standalone })
		local port = srv:port()
		local status, h, body = answer(port, "/raw?x=1", "Sec-WebSocket-Protocol: chat, superchat\r\nX-Test: yes\r\n")
		eq(status, 401, "no token")
		eq(h["www-authenticate"], 'Bearer realm="vera"', "its header")
		eq(body, "token please\n", "its body")
		local r = calls[1]
		ok(r, "the filter ran")
		eq(r.method, "GET")
		eq(r.path, "/raw")
		eq(r.query, "x=1")
		eq(r.target, "/raw?x=1")
		like(r.peer, "^127%.0%.0%.1:%d+$", "peer")
		eq(r.headers["x-test"], "yes", "a request header")
		eq(r.headers.host, "127.0.0.1:" .. port, "Host")
		eq(table.concat(r.protocols, ","), "chat,superchat", "offered subprotocols")
		eq(r.peer_cert, nil, "no client certificate on ws://")
		eq(r.body, nil, "no body field")
		settle()
		eq(#opened, 0, "a refused client never reaches the open handler")
		local st, _, _, tcp = answer(port, "/raw?token=good")
		eq(st, 101, "a token in the query")
		tcp:close()
		local wso = tap.open("ws://127.0.0.1:" .. port .. "/lib", { headers = { Authorization = "Bearer good" } })
		tap.wait(function() return #opened == 2 end, 5, "two open events")
		tap.close_and_wait(wso)
	end, true)
end

stest("filter: false refuses with 403; an error refuses with 500 (reported) and the next client still gets in", function()
	local calls = {}
	local srv, opened = listen({ filter = token_filter(calls) })
	local port = srv:port()
	eq((answer(port, "/forbidden")), 403, "false")
	eq((answer(port, "/boom")), 500, "a filter that raises lets nobody in")
	local st, _, _, tcp = answer(port, "/ok", "Authorization: Bearer good\r\n")
	eq(st, 101, "delivery goes on after the error")
	tcp:close()
	tap.wait(function() return #opened == 1 end, 5, "open event")
end, true)

stest("filter: no answer within handshake_timeout (1 s) refuses with 503", function()
	local calls = {}
	local srv, opened = listen({ filter = token_filter(calls), handshake_timeout = 1 })
	local port = srv:port()
	local t0 = tap.now()
	-- this script does not dispatch while it waits: the filter cannot run
	local status = answer(port, "/late", "Authorization: Bearer good\r\n", true)
	eq(status, 503, "no answer in time")
	ok(tap.now() - t0 < 5 * tap.factor, "answered after the handshake timeout, not later")
	tap.pump(0.3) -- the late event is delivered; its answer goes nowhere
	eq(#opened, 0, "no open event")
	local st, _, _, tcp = answer(port, "/ok", "Authorization: Bearer good\r\n")
	eq(st, 101, "the next client gets in")
	tcp:close()
end, true)

stest("filter + mutual TLS: the verified certificate's subject is in req.peer_cert", function()
	local subjects = {}
	local srv, opened = listen({
		ssl_settings = { ssl_cert_filepath = tap.cert("server.pem"), ssl_private_key_filepath = tap.cert("server.key"),
			ssl_ca_filepath = tap.cert("ca.pem") },
		filter = function(req)
			subjects[#subjects + 1] = req.peer_cert or "none"
			if req.peer_cert == "CN=vws test client" then return true end
			return 401, nil, "certificate please\n"
		end,
	})
	local u = "wss://127.0.0.1:" .. srv:port() .. "/mtls"
	local wso = tap.open(u, { ssl_settings = client_ssl("client") })
	tap.wait(function() return #opened == 1 end, 5, "open event")
	eq(subjects[1], "CN=vws test client", "the subject given to the filter")
	tap.close_and_wait(wso)
	like(refused(u, { ssl_settings = client_ssl() }), "401", "no certificate: the filter refuses")
	eq(subjects[2], "none", "no certificate, no subject")
end)

stest("origins as a function: asked only for an Origin the policy refuses; true accepts, false 403; with a filter", function()
	local asked, filtered = {}, 0
	local srv, opened = listen({
		origins = function(origin, req)
			asked[#asked + 1] = origin .. " " .. req.path
			return origin:match("^https://[%w%.]*trusted%.example$") ~= nil
		end,
		filter = function(req) filtered = filtered + 1 end,
	})
	local port = srv:port()
	local here = "127.0.0.1:" .. port
	local st, _, body, tcp = answer(port, "/a", "Origin: https://app.trusted.example\r\n")
	eq(st, 101, "an origin the function allows")
	tcp:close()
	st, _, body = answer(port, "/b", "Origin: http://evil.example\r\n")
	eq(st, 403, "an origin the function refuses")
	eq(body, "origin not allowed\n")
	st, _, _, tcp = answer(port, "/c", "Origin: http://" .. here .. "\r\n")
	eq(st, 101, "the server's own host: not asked")
	tcp:close()
	st, _, _, tcp = answer(port, "/d")
	eq(st, 101, "no Origin: not asked")
	tcp:close()
	eq(table.concat(asked, "|"), "https://app.trusted.example /a|http://evil.example /b", "what the function was asked")
	eq(filtered, 3, "the filter ran for the three admitted handshakes")
	tap.wait(function() return #opened == 3 end, 5, "three open events")
	-- without a filter; an error in the function refuses with 500
	local srv2 = listen({ origins = function(origin) if origin:find("boom") then error("origins broke") end return false end })
	eq((answer(srv2:port(), "/e", "Origin: http://boom.example\r\n")), 500, "an error: 500")
	eq((answer(srv2:port(), "/f", "Origin: http://other.example\r\n")), 403, "false: 403")
	st, _, _, tcp = answer(srv2:port(), "/g")
	eq(st, 101, "no Origin, no filter: accepted")
	tcp:close()
end, true)

stest("filter: bad values raise; a bad answer refuses with 500 (child: reported with its traceback)", function()
	local okl, err = pcall(ws.listen, { port = 0, standalone = true, filter = "token_filter" })
	ok(not okl and tostring(err):find("filter: function expected", 1, true), tostring(err))
	local out, okr = tap.run_lua([[
		local ws = require "verawebsockets"
		local socket = require "socket"
		local srv = assert(ws.listen{port = 0, standalone = true, filter = function(req)
			if req.path == "/boom" then error("the filter broke") end
			return 200 -- not a refusal's status
		end})
		for _, path in ipairs({"/boom", "/twohundred"}) do
			local t = assert(socket.tcp())
			t:settimeout(0)
			t:connect("127.0.0.1", srv:port())
			t:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
			local line
			for _ = 1, 200 do
				line = t:receive("*l")
				if line then break end
				ws.dispatch(20)
			end
			print("STATUS " .. path .. " " .. tostring(line))
			t:close()
		end
		ws.close(srv)
		ws.loop(2000)
	]])
	ok(okr, "child failed: " .. out)
	like(out, "STATUS /boom HTTP/1.1 500", "an error: 500")
	like(out, "STATUS /twohundred HTTP/1.1 500", "status 200: 500")
	like(out, "error in handler for event 20: [^\n]*the filter broke\nstack traceback:", "the error with its traceback")
	like(out, "error in handler for event 20: filter: status 300%.%.599 expected", "the bad answer reported")
end, true)

stest("refusals are logged at notice level (child)", function()
	local out, okr = tap.run_lua([[
		local ws = require "verawebsockets"
		local socket = require "socket"
		ws.set_log_level(4)
		local srv = assert(ws.listen{port = 0, host = "127.0.0.1", standalone = true, max_clients_per_ip = 1})
		local function hs(origin)
			local t = assert(socket.tcp())
			t:settimeout(5)
			assert(t:connect("127.0.0.1", srv:port()))
			t:send("GET / HTTP/1.1\r\nHost: 127.0.0.1:" .. srv:port() .. "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" .. origin .. "\r\n")
			print("STATUS " .. tostring(t:receive("*l")))
			return t
		end
		hs("Origin: http://evil.example\r\n"):close()
		local keep = hs("")
		hs(""):close()
		ws.dispatch(100)
		keep:close()
		ws.close(srv)
		ws.loop(2000)
	]])
	ok(okr, "child failed: " .. out)
	like(out, "STATUS HTTP/1.1 403", "403")
	like(out, "STATUS HTTP/1.1 503", "503")
	like(out, "NOTICE: [^\n]*refused 127%.0%.0%.1:%d+ %(HTTP 403%)[^\n]*evil%.example", "403 logged at notice")
	like(out, "NOTICE: [^\n]*refused 127%.0%.0%.1:%d+ %(HTTP 503%)[^\n]*max_clients_per_ip", "503 logged at notice")
end, true)

tap.done()
