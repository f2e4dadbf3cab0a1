-- The Lua side of `make bench` (build/bench.sh), through the real module, standalone mode.
--   lua5.1 bench.lua rtt URL N SIZE   N round trips of a SIZE byte text message, the handler
--                                     sends the next one on receipt; prints "rtt N SECONDS"
--   lua5.1 bench.lua mib URL N        N echoes of a 1 MiB binary message; prints "mib N SECONDS"
--   lua5.1 bench.lua ingest URL N SIZE  N text messages of SIZE bytes pushed by the server
--                                     (URL .. "push?n=N&size=SIZE"); prints "ingest N SECONDS"
--   lua5.1 bench.lua idle URL SECS    connects, prints "READY", stays idle SECS seconds, closes
-- BENCH_PING_INTERVAL=S sets ping_interval (keepalive timers running, as in most real use).
-- Times are wall clock from the open event to the last echo (socket.gettime when LuaSocket
-- is installed, else /proc/uptime, 10 ms resolution).
local ws = require "verawebsockets"
local mode, url, n, size = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4] or 100)

local now
local ok, socket = pcall(require, "socket")
if ok and socket.gettime then
	now = socket.gettime
else
	now = function()
		local f = assert(io.open("/proc/uptime"))
		local t = f:read("*n")
		f:close()
		return t
	end
end

local msg, kind
if mode == "rtt" then
	msg, kind = string.rep("x", size), "text"
elseif mode == "mib" then
	msg, kind = string.rep("\165", 1048576), "binary"
elseif mode == "ingest" then
	url = string.format("%spush?n=%d&size=%d", url, n, size)
elseif mode ~= "idle" then
	error("usage: bench.lua rtt|mib|ingest|idle URL N [SIZE]")
end

local count, start, failed = 0, nil, nil
local conn = ws.create {
	url = url,
	standalone = true,
	ping_interval = tonumber(os.getenv("BENCH_PING_INTERVAL") or "0"), -- keepalive (0: off)
	event_handlers = {
		error = function(wso, reason) failed = "connection error: " .. tostring(reason) end,
		open = function(wso)
			if mode == "idle" then
				print("READY")
				io.stdout:flush()
				return
			end
			start = now()
			if mode ~= "ingest" then assert(ws.send(wso, msg, kind)) end
		end,
		message = function(wso, data, k)
			count = count + 1
			if mode == "ingest" then
				if #data ~= size then
					failed = "message " .. count .. " has " .. #data .. " bytes"
					ws.close(wso)
				elseif count == n then
					print(string.format("%s %d %.6f", mode, count, now() - start))
					io.stdout:flush()
					ws.close(wso)
				end
				return
			end
			if data ~= msg or k ~= kind then
				failed = "echo " .. count .. " differs"
				ws.close(wso)
			elseif count < n then
				assert(ws.send(wso, msg, kind))
			else
				print(string.format("%s %d %.6f", mode, count, now() - start))
				io.stdout:flush()
				ws.close(wso)
			end
		end,
		close = function(wso, clean, code)
			if mode ~= "idle" and count < n and not failed then
				failed = "closed early (" .. tostring(code) .. ") after " .. count
			end
		end,
	},
}
assert(ws.connect(conn))
if mode == "idle" then
	ws.loop(n * 1000)
	ws.close(conn)
end
local done, err = ws.loop(120000)
if failed or not done then
	io.stderr:write("bench.lua: ", failed or tostring(err), "\n")
	os.exit(1)
end
