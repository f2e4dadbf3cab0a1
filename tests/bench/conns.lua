-- The idle-connection rows of `make bench` (build/bench.sh): N idle connections through the
-- real module, standalone mode, in phases the bench script measures from outside (RSS from
-- /proc, context switches per task). Each phase is announced on stdout; a line on stdin
-- (or its end) starts the next one where the script waits for the measurement.
--   lua5.1 conns.lua client URL N SECS   "BASE" (module loaded, N connections created, none
--                                        open; waits for a line), opens them all, "OPEN N",
--                                        stays idle in ws.loop for SECS seconds, closes them
--                                        all, "CLOSED", waits for a line, exits
--   lua5.1 conns.lua server SECS         listens on 127.0.0.1 (free port), prints its URL,
--                                        accepts clients for SECS seconds in ws.loop (idle:
--                                        no handler sends), then closes and exits
-- Every wait is bounded: opening by 60 s, closing by 30 s.
local ws = require "verawebsockets"
local mode = arg[1]

if mode == "server" then
	local secs = tonumber(arg[2] or "60")
	local srv = assert(ws.listen { port = 0, max_clients = 100000, standalone = true, event_handlers = {} })
	print("ws://127.0.0.1:" .. srv:port() .. "/")
	io.stdout:flush()
	ws.loop(secs * 1000)
	ws.close(srv)
	return
end

assert(mode == "client", "usage: conns.lua client URL N SECS | conns.lua server SECS")
local url, n, secs = arg[2], tonumber(arg[3]), tonumber(arg[4] or "10")
local opened, closed, failed = 0, 0, nil
local conns = {}
for i = 1, n do
	conns[i] = ws.create {
		url = url,
		standalone = true,
		event_handlers = {
			open = function() opened = opened + 1 end,
			close = function() closed = closed + 1 end,
			error = function(_, reason) failed = failed or ("connection error: " .. tostring(reason)) end,
		},
	}
end
print("BASE")
io.stdout:flush()
io.read()
for i = 1, n do assert(ws.connect(conns[i])) end
local t = os.time()
while opened < n and not failed and os.time() - t < 60 do ws.loop(100) end
if opened < n then
	io.stderr:write("conns.lua: ", failed or "timeout", ": ", opened, " of ", n, " open\n")
	os.exit(1)
end
print("OPEN " .. opened)
io.stdout:flush()
ws.loop(secs * 1000) -- idle: nothing is sent; returns after secs (connections stay open)
for i = 1, n do ws.close(conns[i]) end
t = os.time()
while closed < n and os.time() - t < 30 do ws.loop(1000) end
print("CLOSED " .. closed)
io.stdout:flush()
io.read()
