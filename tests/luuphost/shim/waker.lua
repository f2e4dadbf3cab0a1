-- tests/luuphost/shim/waker.lua - the wake requests of the shim (verawebsockets.lua
-- here): GET /data_request?id=lr_vws_<N>&seq=<k> in one write, every 50 ms, on a
-- keep-alive connection to 127.0.0.1:PORT (reconnecting when the host closes it).
-- Exits after MAX_SECONDS, or when the host is gone (20 failed connects in a row).
--   lua5.1 waker.lua PORT N MAX_SECONDS
local socket = require "socket"
local port, n, max = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]) or 120
local t_end = socket.gettime() + max
local sock, seq, refused = nil, 0, 0

-- read_answer(s) -> true when a whole response came (Content-Length or chunked), and
-- whether the host said Connection: close.
local function read_answer(s)
	local line = s:receive("*l")
	if not line then return false end
	local len, chunked, close
	for _ = 1, 50 do
		local l = s:receive("*l")
		if not l then return false end
		if l == "" then break end
		local k, v = l:lower():match("^([^:]+):%s*(.-)%s*$")
		if k == "content-length" then len = tonumber(v) end
		if k == "transfer-encoding" and v == "chunked" then chunked = true end
		if k == "connection" and v == "close" then close = true end
	end
	if chunked then
		for _ = 1, 1000 do
			local size = tonumber(s:receive("*l") or "", 16)
			if not size then return false end
			if size == 0 then s:receive("*l"); break end
			if not s:receive(size) or not s:receive("*l") then return false end
		end
	elseif len and len > 0 then
		if not s:receive(len) then return false end
	end
	return true, close
end

while socket.gettime() < t_end do
	if not sock then
		sock = socket.tcp()
		sock:settimeout(5)
		if not sock:connect("127.0.0.1", port) then
			sock:close(); sock = nil
			refused = refused + 1
			if refused >= 20 then break end
			socket.sleep(0.1)
		else
			refused = 0
		end
	end
	if sock then
		seq = seq + 1
		local ok = sock:send("GET /data_request?id=lr_vws_" .. n .. "&seq=" .. seq .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\n\r\n")
		local got, close = false, false
		if ok then got, close = read_answer(sock) end
		if not got or close then sock:close(); sock = nil end
		socket.sleep(0.05)
	end
end
if sock then sock:close() end
