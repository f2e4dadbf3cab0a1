-- Latency of Luup-mode delivery in a plain interpreter (hook delivery): the time from
-- ws.send to the handler of its echo (send -> echo server -> handler), 20 messages/s,
-- while the script either runs Lua (delivery through the count hook) or waits in
-- ws.dispatch (delivery inside the wait), or sleeps in a C call (socket.sleep 10 ms
-- steps: delivery when it returns).
--   lua5.1 tests/bench/luup-latency.lua ECHO_URL [N] [MODE]    MODE: spin | dispatch | csleep
-- Prints: mode, n, median and p99 in ms.
local ws = require "verawebsockets"
local socket = require "socket"
local url, N, mode = arg[1], tonumber(arg[2] or "200"), arg[3] or "spin"
local now = socket.gettime
local sent, lat, i = {}, {}, 0
local wso
function lat_open() end
function lat_msg(data)
	local t = sent[data]
	if t then lat[#lat + 1] = (now() - t) * 1000 end
end
wso = ws.create { url = url, event_handlers = { [3] = "lat_open", [8] = "lat_msg" } }
ws.connect(wso)
local function spin(seconds)
	local deadline = now() + seconds
	while now() < deadline do local t = {}; for k = 1, 50 do t[k] = k end end
end
if jit then jit.off(spin, true) end
local function idle(seconds)
	if mode == "spin" then spin(seconds)
	elseif mode == "dispatch" then local d = now() + seconds; repeat ws.dispatch(math.max(0, (d - now()) * 1000)) until now() >= d
	else local d = now() + seconds; repeat socket.sleep(0.01) until now() >= d end
end
local deadline = now() + 30
while ws.state(wso) ~= "open" and now() < deadline do idle(0.05) end
while i < N do
	i = i + 1
	local msg = "m" .. i
	sent[msg] = now()
	ws.send(wso, msg)
	idle(0.05)
end
idle(0.5)
table.sort(lat)
local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] or -1 end
print(string.format("%-8s n=%d received=%d median=%.2f ms p99=%.2f ms", mode, N, #lat, pct(0.5), pct(0.99)))
ws.close(wso)
