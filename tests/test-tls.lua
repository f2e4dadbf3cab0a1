-- wss://: verification on by default, CA file, allow_self_signed, client certificates.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

-- echo_ok(url, ssl): opens, echoes a text and a 100 KiB binary message, closes cleanly.
local function echo_ok(url, ssl, extra)
	local rec = tap.recorder()
	local opts = { url = url, ssl_settings = ssl, event_handlers = rec.handlers }
	for k, v in pairs(extra or {}) do opts[k] = v end
	local wso = tap.create(opts)
	eq(ws.connect(wso), true)
	tap.wait(function() return rec.count(3) + rec.count(1) > 0 end, 10, "open or error")
	eq(rec.count(1), 0, "connection error: " .. tostring(rec.last(1)))
	eq(ws.send(wso, "over tls"), true)
	local big = string.rep("\0\1\2\255", 25600)
	eq(ws.send(wso, big, "binary"), true)
	rec.wait(8, 10, 2)
	eq(rec.nth(8, 1), "over tls")
	local data, kind = rec.nth(8, 2)
	eq(kind, "binary")
	ok(data == big, "100 KiB binary echo intact")
	ws.close(wso, 1000)
	rec.wait(4)
	local clean, code = rec.last(4)
	eq(clean, true)
	eq(code, 1000)
end

local function tls_fails(url, ssl, want)
	local rec = tap.recorder()
	local wso = tap.create { url = url, ssl_settings = ssl, event_handlers = rec.handlers }
	eq(ws.connect(wso), true)
	tap.wait(function() return rec.count(3) + rec.count(1) > 0 end, 10, "open or error")
	eq(rec.count(3), 0, "must not open")
	local reason = rec.last(1)
	eq(type(reason), "string")
	if want then like(reason:lower(), want, "reason") end
	tap.pump(0.1)
	eq(ws.state(wso), "closed")
	return reason
end

test("wss to a server with an unknown CA fails by default (reason mentions certificate)", function()
	tls_fails(tap.url("/echo", "TLS_PORT"), nil, "certificate")
end)

test("wss to a self-signed server fails by default", function()
	tls_fails(tap.url("/echo", "SELF_PORT"), nil, "certificate")
end)

test("wss with client_ssl_ca_filepath = test CA works", function()
	echo_ok(tap.url("/echo", "TLS_PORT"), { client_ssl_ca_filepath = tap.cert("ca.pem") })
end)

test("wss://localhost with the test CA works (name verification)", function()
	echo_ok("wss://localhost:" .. tap.env("TLS_PORT") .. "/echo", { client_ssl_ca_filepath = tap.cert("ca.pem") })
end)

test("wss with the wrong CA fails", function()
	tls_fails(tap.url("/echo", "TLS_PORT"), { client_ssl_ca_filepath = tap.cert("wrongca.pem") }, "certificate")
end)

test("allow_self_signed = true accepts a self-signed server", function()
	echo_ok(tap.url("/echo", "SELF_PORT"), { allow_self_signed = true })
end)

test("allow_self_signed = false keeps verification on", function()
	tls_fails(tap.url("/echo", "SELF_PORT"), { allow_self_signed = false }, "certificate")
end)

test("client certificate accepted by a server that requires one", function()
	echo_ok(tap.url("/echo", "MTLS_PORT"), {
		client_ssl_ca_filepath = tap.cert("ca.pem"),
		client_ssl_cert_filepath = tap.cert("client.pem"),
		client_ssl_private_key_filepath = tap.cert("client.key"),
	})
end)

test("missing client certificate rejected", function()
	tls_fails(tap.url("/echo", "MTLS_PORT"), { client_ssl_ca_filepath = tap.cert("ca.pem") })
end)

test("client certificate from the wrong CA rejected", function()
	tls_fails(tap.url("/echo", "MTLS_PORT"), {
		client_ssl_ca_filepath = tap.cert("ca.pem"),
		client_ssl_cert_filepath = tap.cert("wrongclient.pem"),
		client_ssl_private_key_filepath = tap.cert("wrongclient.key"),
	})
end)

test("positional create with ssl_settings (wiki style)", function()
	local rec = tap.recorder()
	local wso = tap.track(ws.create(tap.url("/echo", "MTLS_PORT"), rec.handlers, {
		client_ssl_ca_filepath = tap.cert("ca.pem"),
		client_ssl_cert_filepath = tap.cert("client.pem"),
		client_ssl_private_key_filepath = tap.cert("client.key"),
	}, true))
	ws.connect(wso)
	rec.wait(3, 10)
	ws.close(wso)
	rec.wait(4)
end)

test("ping/pong and close code over TLS", function()
	local rec = tap.recorder()
	local wso = tap.create { url = tap.url("/echo", "TLS_PORT"), ssl_settings = { client_ssl_ca_filepath = tap.cert("ca.pem") },
		event_handlers = rec.handlers }
	ws.connect(wso)
	rec.wait(3, 10)
	eq(ws.ping(wso, "tls-ping"), true)
	rec.wait(9)
	eq(rec.last(9), "tls-ping")
	ws.close(wso, 4005, "tls bye")
	rec.wait(4)
	local clean, code, reason = rec.last(4)
	eq(clean, true)
	eq(code, 4005)
	eq(reason, "tls bye")
end)

test("TLS through a redirect to a wss:// Location (max_redirects = 1)", function()
	echo_ok(tap.url("/redirect?hops=1", "TLS_PORT"), { client_ssl_ca_filepath = tap.cert("ca.pem") }, { max_redirects = 1 })
end)

tap.done()
