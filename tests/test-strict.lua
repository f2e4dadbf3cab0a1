-- Strictness at the edges of a connection (issue 11): a bounded handshake
-- response (32 KiB, 100 header lines) and a clear reason for a server that
-- speaks only TLS 1.0/1.1.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq = tap.test, tap.ok, tap.eq

-- rss_kb() -> this process's resident set size in KiB (/proc/self/status VmRSS).
local function rss_kb()
	local f = io.open("/proc/self/status", "r")
	if not f then return nil end
	local s = f:read("*a")
	f:close()
	return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- fails(url, want[, opts]) -> reason, seconds: connecting gives event 1 whose
-- reason is exactly want; no event 3 or 4.
local function fails(url, want, opts)
	local rec = tap.recorder()
	opts = opts or {}
	opts.url, opts.event_handlers = url, rec.handlers
	local wso = tap.create(opts)
	local t0 = tap.now()
	eq(ws.connect(wso), true, "connect")
	rec.wait(1, 30)
	local dt = tap.now() - t0
	local reason = rec.last(1)
	eq(reason, want, "reason")
	tap.pump(0.1)
	eq(rec.count(3), 0, "no event 3")
	eq(rec.count(4), 0, "no event 4")
	eq(ws.state(wso), "closed")
	return reason, dt
end

test("101 then an endless header line: \"HS: response headers exceed 32768 bytes\" at once, memory bounded", function()
	-- 64 MiB of header line offered; connect_timeout far away. Before the
	-- limit the client buffered all of it until connect_timeout.
	local before = rss_kb()
	local _, dt = fails(tap.url("/endlessheader?mb=64"), "HS: response headers exceed 32768 bytes", { connect_timeout = 60 })
	ok(dt < 5 * tap.factor, "failed after " .. dt .. " s, want at once")
	local after = rss_kb()
	if os.getenv("VWS_TEST_VARIANT") == "oop" then
		tap.diag("out-of-process: the helper's memory is not visible here; reason checked only")
	elseif before and after then
		tap.diag(string.format("VmRSS %d KiB -> %d KiB", before, after))
		ok(after - before < 8 * 1024, string.format("VmRSS grew by %d KiB (want < 8 MiB)", after - before))
	end
end)

test("101 with 200 extra header lines: \"HS: response has more than 100 header lines\"", function()
	fails(tap.url("/manyheaders?n=200"), "HS: response has more than 100 header lines")
end)

test("101 with 97 extra header lines (100 in all) still opens and echoes", function()
	local wso, rec = tap.open("/manyheaders?n=97")
	eq(ws.send(wso, "a hundred headers"), true)
	rec.wait(8)
	eq(rec.last(8), "a hundred headers")
	tap.close_and_wait(wso)
end)

test("wss to a TLS 1.0/1.1-only server (protocol_version alert): the reason says so", function()
	fails(tap.url("/echo", "TLS11_PORT", "wss"),
		"TLS: handshake failed: server supports only TLS versions before 1.2 (protocol_version alert); 1.2 or later required",
		{ ssl_settings = { client_ssl_ca_filepath = tap.cert("ca.pem") } })
end)

test("wss to a server answering with a TLS 1.1 ServerHello: \"server offered only TLS 1.1\"", function()
	fails(tap.url("/echo", "TLS11_HELLO_PORT", "wss"),
		"TLS: handshake failed: server offered only TLS 1.1; 1.2 or later required",
		{ ssl_settings = { client_ssl_ca_filepath = tap.cert("ca.pem") } })
end)

tap.done()
