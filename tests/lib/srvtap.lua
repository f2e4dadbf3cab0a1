-- tests/lib/srvtap.lua - helpers shared by the server tests (tests/test-server.lua,
-- tests/test-server-peers.lua), on top of tap.lua:
--   local st = require "srvtap"
--   st.stest, st.srecorder, st.listen, st.echo, st.url, st.connect, st.refused
-- Requiring it checks once that the variant has servers (see below).
local tap = require "tap"
local ws = tap.ws
local test, ok, eq = tap.test, tap.ok, tap.eq

local st = {}

-- One check at the top: no ws.listen at all fails; a variant without servers
-- (ws.listen -> nil, "... not supported ...") skips every test with that reason.
local skip_reason
if not ws or type(ws.listen) ~= "function" then
	test("ws.listen exists", function()
		ok(ws, "require 'verawebsockets' failed: " .. tostring(tap.load_error))
		eq(type(ws.listen), "function", "ws.listen")
	end)
	tap.done()
end
if ws then
	local okp, s, err = pcall(ws.listen, { port = 0, standalone = true })
	if okp and s then
		pcall(ws.close, s)
		for _ = 1, 10 do ws.dispatch(10) end
	elseif okp and tostring(err):find("not supported", 1, true) then
		skip_reason = "servers not supported by this variant: " .. tostring(err)
	end
end

-- stest(name, fn): tap.server_test, or tap.skip when the variant has no servers; it
-- also waits for the test's own clients of these servers (they close once their
-- server's 1001 arrives; the leak check runs right after).
function st.stest(name, fn)
	tap.server_test(name, fn, { skip = skip_reason, tracked = true })
end

-- srecorder(): a recorder (tap.recorder's helpers) whose handlers are the server
-- events under numeric keys: 0 (path, protocol, wso), 4 (clean, code, reason, wso),
-- 6 (data, kind, wso), 7 (payload, wso).
function st.srecorder()
	local rec = tap.recorder()
	local function add(ev)
		return function(...)
			rec.list[#rec.list + 1] = { ev = ev, args = { ... }, n = select("#", ...) }
		end
	end
	rec.handlers = { [0] = add(0), [4] = add(4), [6] = add(6), [7] = add(7) }
	-- then(ev, fn): after recording event ev, also call fn with its arguments.
	function rec.on(ev, fn)
		local prev = rec.handlers[ev]
		rec.handlers[ev] = function(...)
			prev(...)
			return fn(...)
		end
	end
	-- wsos(): the client wsos the open events gave, in order.
	function rec.wsos()
		local t = {}
		for _, e in ipairs(rec.list) do if e.ev == 0 then t[#t + 1] = e.args[3] end end
		return t
	end
	return rec
end

-- listen(opts) -> srv, rec: a standalone server on 127.0.0.1, port 0, with a
-- server recorder's handlers (unless opts.event_handlers); closed after the test.
function st.listen(opts, rec)
	opts = opts or {}
	rec = rec or st.srecorder()
	opts.event_handlers = opts.event_handlers or rec.handlers
	return tap.listen(opts), rec
end

-- echo(rec): the server echoes every message with its kind.
function st.echo(rec)
	rec.on(6, function(data, kind, c) ws.send(c, data, kind) end)
	return rec
end

function st.url(srv, path, scheme)
	return (scheme or "ws") .. "://127.0.0.1:" .. srv:port() .. (path or "/")
end

-- connect(srv, path, opts) -> wso, rec: a tracked standalone client, open.
function st.connect(srv, path, opts, scheme)
	return tap.open(st.url(srv, path, scheme), opts)
end

-- refused(u[, opts]) -> reason: a client to u gets event 1 and never opens.
function st.refused(u, opts)
	local rec = tap.recorder()
	opts = opts or {}
	opts.url, opts.event_handlers = u, rec.handlers
	local wso = tap.create(opts)
	eq(ws.connect(wso), true, "connect")
	tap.wait(function() return rec.count(1) + rec.count(3) > 0 end, 10, "open or error")
	eq(rec.count(3), 0, "must not open")
	local reason = rec.last(1)
	eq(type(reason), "string", "event 1 reason")
	tap.wait(function() return ws.state(wso) == "closed" end, 5, "state closed")
	return reason
end

return st
