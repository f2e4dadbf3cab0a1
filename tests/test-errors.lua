-- Bad input (raises "bad argument"), runtime errors (nil, err) and failed
-- handshakes (event 1 with the libwebsockets reason strings).
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

local CREATE = "bad argument #1 to 'create'"

test("create: wrong argument types raise bad argument #1 to 'create'", function()
	tap.raises(function() ws.create() end, CREATE, "no argument")
	tap.raises(function() ws.create(42) end, CREATE, "number")
	tap.raises(function() ws.create(true) end, CREATE, "boolean")
	tap.raises(function() ws.create { url = 42 } end, CREATE, "url number")
	tap.raises(function() ws.create {} end, CREATE, "no url")
	tap.raises(function() ws.create { url = tap.url(), event_handlers = "nope" } end, CREATE, "event_handlers string")
	tap.raises(function() ws.create { url = tap.url(), ssl_settings = 5 } end, CREATE, "ssl_settings number")
	tap.raises(function() ws.create { url = tap.url(), event_handlers = { [3] = 42 } } end, CREATE, "handler number")
end)

test("create: bad URLs raise", function()
	for _, u in ipairs { "", "http://127.0.0.1/", "127.0.0.1:80", "ws://", "ws:///path", "wss//x", "ftp://h/",
		"ws://[::1", "ws://host:notaport/" } do
		tap.raises(function() ws.create { url = u } end, CREATE, "url " .. tap.show(u))
		tap.raises(function() ws.create(u, {}, nil, true) end, CREATE, "positional url " .. tap.show(u))
	end
end)

test("create: unknown option and unknown ssl key raise, naming them", function()
	local e = tap.raises(function() ws.create { url = tap.url(), bogus_option = 1 } end, CREATE)
	like(e, "bogus_option")
	e = tap.raises(function() ws.create { url = tap.url(), ssl_settings = { client_ssl_nope = "x" } } end, CREATE)
	like(e, "client_ssl_nope")
	e = tap.raises(function() ws.create { url = tap.url(), reconnect = { min_delay = 1, nope = 2 } } end, CREATE)
	like(e, "nope")
end)

test("create: bad option values raise", function()
	tap.raises(function() ws.create { url = tap.url(), max_redirects = 11 } end, CREATE, "max_redirects 11")
	tap.raises(function() ws.create { url = tap.url(), max_redirects = -1 } end, CREATE, "max_redirects -1")
	tap.raises(function() ws.create { url = tap.url(), connect_timeout = "soon" } end, CREATE, "connect_timeout string")
	tap.raises(function() ws.create { url = tap.url(), connect_timeout = -1 } end, CREATE, "connect_timeout -1")
	tap.raises(function() ws.create { url = tap.url(), max_message_size = "big" } end, CREATE, "max_message_size")
	tap.raises(function() ws.create { url = tap.url(), headers = "X: y" } end, CREATE, "headers string")
	tap.raises(function() ws.create { url = tap.url(), proxy = "socks5://127.0.0.1:1" } end, CREATE, "proxy scheme")
end)

test("create: NUL bytes in a header value, the URL or other strings are refused like CR/LF", function()
	local e = tap.raises(function() ws.create { url = tap.url(), headers = { X = "a\0b" } } end, CREATE)
	like(e, "option header: value of X contains CR, LF, NUL or control bytes")
	e = tap.raises(function() ws.create { url = tap.url() .. "\0/evil" } end, CREATE)
	like(e, "option url: contains CR, LF, NUL or control bytes")
	e = tap.raises(function() ws.create(tap.url() .. "\0", {}, nil, true) end, CREATE)
	like(e, "option url: contains CR, LF, NUL or control bytes")
	e = tap.raises(function() ws.create { url = tap.url(), origin = "http://a\0b" } end, CREATE)
	like(e, "option origin: contains")
	e = tap.raises(function() ws.create { url = tap.url(), protocols = { "chat\0x" } } end, CREATE)
	e = tap.raises(function() ws.create { url = tap.url(), headers = { X = "a\rb" } } end, CREATE)
	like(e, "CR, LF, NUL or control bytes", "CR as before")
end)

test("create and listen: standalone = 1 and allow_self_signed = 1 read as the original library read them", function()
	local w = ws.create { url = tap.url(), standalone = 1, ssl_settings = { allow_self_signed = 1 } }
	eq(ws.state(w), "created")
	w = ws.create(tap.url(), {}, nil, 1) -- positional, as old plugins pass it
	eq(ws.state(w), "created")
	local srv = assert(ws.listen { port = 0, standalone = 1 })
	ok(srv:port() > 0)
	srv:close()
	tap.raises(function() ws.create { url = tap.url(), standalone = "yes" } end, CREATE, "a string is not a flag")
end)

test("create: unreadable or invalid cert/key/CA files raise", function()
	local missing = "/nonexistent/vws/none.pem"
	tap.raises(function()
		ws.create { url = tap.url("/echo", "TLS_PORT"), ssl_settings = { client_ssl_ca_filepath = missing } }
	end, CREATE, "missing CA")
	tap.raises(function()
		ws.create { url = tap.url("/echo", "MTLS_PORT"), ssl_settings = {
			client_ssl_cert_filepath = missing, client_ssl_private_key_filepath = tap.cert("client.key") } }
	end, CREATE, "missing cert")
	tap.raises(function()
		ws.create { url = tap.url("/echo", "MTLS_PORT"), ssl_settings = {
			client_ssl_cert_filepath = tap.cert("client.pem"), client_ssl_private_key_filepath = missing } }
	end, CREATE, "missing key")
	tap.raises(function()
		ws.create { url = tap.url("/echo", "TLS_PORT"), ssl_settings = { client_ssl_ca_filepath = tap.cert("garbage.pem") } }
	end, CREATE, "garbage CA")
	tap.raises(function()
		ws.create { url = tap.url("/echo", "MTLS_PORT"), ssl_settings = {
			client_ssl_cert_filepath = tap.cert("client.pem"), client_ssl_private_key_filepath = tap.cert("wrongclient.key") } }
	end, CREATE, "key does not match cert")
end)

test("wrong self / argument types raise bad argument for the other functions", function()
	tap.raises(function() ws.send({}, "x") end, "bad argument #1 to 'send'")
	tap.raises(function() ws.connect("ws://x") end, "bad argument #1 to 'connect'")
	tap.raises(function() ws.state(io.stdout) end, "bad argument #1 to 'state'")
	tap.raises(function() ws.close(nil) end, "bad argument #1 to 'close'")
	local wso = tap.create { url = tap.url() }
	tap.raises(function() ws.send(wso, {}) end, "bad argument #2 to 'send'")
	tap.raises(function() ws.send(wso, "x", "utf16") end, "bad argument #3 to 'send'")
	tap.raises(function() ws.close(wso, "x") end, "bad argument #2 to 'close'")
	tap.raises(function() ws.dispatch("x") end, "bad argument #1 to 'dispatch'")
	tap.raises(function() ws.loop("x") end, "bad argument #1 to 'loop'")
end)

test("send before open and after close -> nil, err", function()
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url(), event_handlers = rec.handlers }
	local r, err = ws.send(wso, "too early")
	eq(r, nil, "send before connect")
	eq(type(err), "string")
	ws.connect(wso)
	r, err = ws.send(wso, "still connecting") -- may race with the open; only checks the shape
	ok(r == true or (r == nil and type(err) == "string"), "send while connecting: true or nil, err")
	rec.wait(3)
	eq(ws.send(wso, "now"), true)
	ws.close(wso)
	r, err = ws.send(wso, "while closing")
	eq(r, nil, "send while closing")
	eq(type(err), "string")
	rec.wait(4)
	r, err = ws.send(wso, "after close")
	eq(r, nil, "send after close")
	eq(type(err), "string")
	eq(ws.close(wso), true, "close of a closed connection")
	r, err = ws.ping(wso, "x")
	eq(r, nil, "ping after close")
end)

-- fails(path, want, opts): connecting to path gives event 1 whose reason matches `want`
-- (plain substring when `plain`), no event 3 or 4, state closed.
local function fails(path, want, opts, plain, portkey)
	local rec = tap.recorder()
	opts = opts or {}
	opts.url = path:match("^wss?://") and path or tap.url(path, portkey)
	opts.event_handlers = rec.handlers
	local wso = tap.create(opts)
	eq(ws.connect(wso), true, "connect")
	rec.wait(1, 15)
	local reason, attempt, w = rec.last(1)
	eq(type(reason), "string", "reason")
	if want then
		ok(reason:find(want, 1, plain), "reason " .. tap.show(reason) .. " should contain " .. tap.show(want))
	else
		ok(#reason > 0, "non-empty reason")
	end
	eq(attempt, 1, "attempt")
	ok(rawequal(w, wso), "wso last")
	tap.pump(0.2)
	eq(rec.count(3), 0, "no event 3")
	eq(rec.count(4), 0, "no event 4 after a connection error")
	eq(rec.count(1), 1, "one event 1")
	eq(ws.state(wso), "closed")
	return reason
end

test("HTTP 200 instead of 101 -> \"HS: ws upgrade response not 101\"", function()
	fails("/status200", "HS: ws upgrade response not 101", nil, true)
end)
test("HTTP 404 -> \"HS: ws upgrade response not 101\"", function()
	fails("/status404", "HS: ws upgrade response not 101", nil, true)
end)
test("bad Sec-WebSocket-Accept -> \"HS: Accept hash wrong\"", function()
	fails("/badaccept", "HS: Accept hash wrong", nil, true)
end)
test("101 without Upgrade -> \"HS: UPGRADE missing\"", function()
	fails("/noupgrade", "HS: UPGRADE missing", nil, true)
end)
test("101 without Connection -> \"HS: CONNECTION missing\"", function()
	fails("/noconnection", "HS: CONNECTION missing", nil, true)
end)
test("101 without Sec-WebSocket-Accept -> \"HS: ACCEPT missing\"", function()
	fails("/noaccept", "HS: ACCEPT missing", nil, true)
end)
test("101 with Upgrade: h2c -> \"HS: Upgrade to something other than websocket\"", function()
	fails("/upgradeother", "HS: Upgrade to something other than websocket", nil, true)
end)
test("server picks a protocol we did not offer -> \"HS: Cannot match protocol\"", function()
	fails("/badproto", "HS: Cannot match protocol", { protocols = { "chat" } }, true)
end)
test("server closes during the handshake -> \"Peer hung up\"", function()
	fails("/hangup", "Peer hung up", nil, true)
end)
test("server closes in the middle of its 101 -> event 1", function()
	local r = fails("/halfhs", nil)
	ok(r:find("Peer hung up", 1, true) or r:find("read failed", 1, true), "reason " .. tap.show(r))
end)
test("garbage instead of HTTP -> event 1", function()
	fails("/garbage", nil)
end)
test("connection refused -> \"connect failed: ...\"", function()
	fails("ws://127.0.0.1:" .. tap.env("CLOSED_PORT") .. "/", "^connect failed")
end)
test("unresolvable host -> \"getaddrinfo (ipv4) failed\"", function()
	fails("ws://no-such-host.invalid/", "getaddrinfo", { connect_timeout = 8 }, true)
end)
test("server never answers the handshake: connect_timeout -> \"timeout ...\"", function()
	local t0 = tap.now()
	fails("ws://127.0.0.1:" .. tap.env("BLACKHOLE_PORT") .. "/", "^timeout", { connect_timeout = 0.5 })
	local dt = tap.now() - t0
	ok(dt >= 0.4 and dt < 4 * tap.factor, "took " .. dt .. " s for connect_timeout 0.5")
end)
test("slow 101 over connect_timeout -> \"timeout ...\"", function()
	fails("/delay?ms=" .. tap.ms(3000), "^timeout", { connect_timeout = 0.5 })
end)
test("redirect while max_redirects = 0 (default) -> event 1", function()
	fails("/redirect", nil)
end)

tap.done()
