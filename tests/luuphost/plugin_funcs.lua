-- tests/luuphost/plugin_funcs.lua - a Luup plugin of the original verawebsockets API,
-- handlers given as FUNCTION VALUES (local closures), Luup mode (standalone left out).
-- It connects to the echo server at $VWS_LUUPHOST_ECHO_URL and sends $LUUPHOST_RATE
-- (default 20) messages a second in bursts, from a one-shot luup.call_timer (interval
-- "1s") that re-arms itself, as many plugins poll: a sequence number, the send time and
-- pseudo-random bytes, text and binary in turn. The message handler checks every echo
-- comes back in order and byte-exact and keeps the latency (send -> handler).
--
-- It also defines DECOY globals with the names plugin_names.lua uses (on_open,
-- on_message, ...): they must never run. A module that looked handler names up in the
-- wrong environment (this plugin's, or a shared one) would call them.

local ws = require "verawebsockets"
local socket = require "socket"
local lib = require "luuphost_lib"

local TAG = "[funcs]"
local URL = os.getenv("VWS_LUUPHOST_ECHO_URL")
local RATE = tonumber(os.getenv("LUUPHOST_RATE") or "") or 20
local STOP_BEFORE_END = 3
local LOG_EVERY = 25 -- messages between two luup.log lines of the message handler (and the first)

local st = lib.new_stats()
local count = { open = 0, error = 0, close = 0, ctx_bad = 0, wrong_wso = 0, send_fail = 0, handler_calls = 0, decoy = 0 }
local seq, finished, t_first, device = 0, false, nil, nil
local wso

local function decoy(name)
	return function()
		count.decoy = count.decoy + 1
		luup.log(TAG .. " ERROR: decoy global " .. name .. " of plugin_funcs was called", 1)
	end
end
on_open, on_message, on_close, on_error = decoy("on_open"), decoy("on_message"), decoy("on_close"), decoy("on_error")

local function context(w)
	count.handler_calls = count.handler_calls + 1
	if host_current_device() ~= luup.device then
		count.ctx_bad = count.ctx_bad + 1
		if count.ctx_bad == 1 then
			luup.log(TAG .. " ERROR: handler ran with current device " .. host_current_device(), 1)
		end
	end
	if w ~= wso then count.wrong_wso = count.wrong_wso + 1 end
end

local function handle_open(protocol, attempt, w)
	context(w)
	count.open = count.open + 1
	luup.log(TAG .. " open: connected to " .. URL .. " (attempt " .. tostring(attempt) .. ")")
	t_first = socket.gettime()
	burst_tick("")
end

local function handle_message(data, kind, w)
	context(w)
	local ok, why = lib.echo(st, data, kind, socket.gettime())
	if not ok and st.bad <= 5 then luup.log(TAG .. " ERROR: " .. why, 1) end
	if st.received % LOG_EVERY == 0 or st.received == 1 then
		luup.log(string.format("%s message: %d echoes back, %d bad, last latency %.1f ms", TAG, st.received, st.bad,
			st.lat[#st.lat] or -1))
	end
end

local function handle_close(clean, code, reason, w)
	context(w)
	count.close = count.close + 1
	luup.log(TAG .. " close: clean=" .. tostring(clean) .. " code=" .. tostring(code) .. " reason=" .. tostring(reason))
	host_report("closed", count.close)
	host_report("close_code", code)
	host_report("close_after_finish", tostring(finished))
end

local function handle_error(reason, attempt, w)
	context(w)
	count.error = count.error + 1
	luup.log(TAG .. " error: " .. tostring(reason) .. " (attempt " .. tostring(attempt) .. ")", 1)
	host_report("errors", count.error)
end

-- burst_tick: a global (call_timer takes a name); sends what is due at RATE since the
-- open (about RATE messages a tick), re-arms the one-shot timer.
function burst_tick(data)
	if finished or host_time_left() < STOP_BEFORE_END then return end
	local due = math.floor((socket.gettime() - t_first) * RATE) + 1
	for _ = 1, math.min(3 * RATE, due - seq) do
		local t = socket.gettime()
		local msg, kind = lib.message(device, seq + 1, t)
		local ok, err = ws.send(wso, msg, kind == "binary" and "binary" or "text")
		if not ok then
			count.send_fail = count.send_fail + 1
			if count.send_fail <= 3 then luup.log(TAG .. " ERROR: ws.send: " .. tostring(err), 1) end
			break
		end
		seq = seq + 1
		lib.sent(st, seq, msg, kind, t)
	end
	luup.call_timer("burst_tick", 1, "1s", "", "")
end

function host_finish()
	finished = true
	local s = lib.summary(st)
	for k, v in pairs(s) do host_report(k, v) end
	for k, v in pairs(count) do host_report(k, v) end
	host_report("send_seconds", t_first and string.format("%.1f", socket.gettime() - t_first) or "0")
	luup.log(string.format("%s finished: sent %d, received %d, bad %d, missing %d, latency median %s ms, p99 %s ms",
		TAG, s.sent, s.received, s.bad, s.missing, s.lat_median_ms, s.lat_p99_ms))
	if wso then wso:close(1000, "host finished") end
end

function startup(lul_device)
	device = lul_device
	if not URL then
		luup.log(TAG .. " ERROR: VWS_LUUPHOST_ECHO_URL is not set", 1)
		return false, "no echo URL", "plugin_funcs"
	end
	wso = ws.create {
		url = URL,
		event_handlers = { [1] = handle_error, [3] = handle_open, [4] = handle_close, [8] = handle_message },
	}
	local ok, err = ws.connect(wso)
	luup.log(TAG .. " startup: device " .. lul_device .. ", ws.connect -> " .. tostring(ok) .. " " .. tostring(err or ""))
	return ok == true, ok and "ok" or tostring(err), "plugin_funcs"
end
