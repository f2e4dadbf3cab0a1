-- tests/luuphost/plugin_names.lua - a Luup plugin of the original verawebsockets API,
-- handlers given by GLOBAL NAME (they live in this plugin's environment), Luup mode
-- (standalone left out = false). It connects to the echo server at
-- $VWS_LUUPHOST_ECHO_URL and sends $LUUPHOST_RATE (default 20) messages a second,
-- paced by a luup.call_delay chain (fractional seconds, as openLuup allows): a
-- sequence number, the send time and pseudo-random bytes, text and binary in turn
-- (binary ones with NUL and every byte value). on_message checks every echo comes back
-- in order and byte-exact and keeps the latency (send -> handler). The handlers log
-- with luup.log now and then, so the host log shows which device ran them.
-- host_finish (called by tests/luuphost/host.lua at the end) reports the figures with
-- host_report and closes the connection.

local ws = require "verawebsockets"
local socket = require "socket"
local lib = require "luuphost_lib"

local TAG = "[names]"
local URL = os.getenv("VWS_LUUPHOST_ECHO_URL")
local RATE = tonumber(os.getenv("LUUPHOST_RATE") or "") or 20
local STOP_BEFORE_END = 3 -- seconds before the run ends: stop sending, let echoes drain
local LOG_EVERY = 25 -- messages between two luup.log lines of the message handler (and the first)

local st = lib.new_stats()
local count = { open = 0, error = 0, close = 0, ctx_bad = 0, wrong_wso = 0, send_fail = 0, handler_calls = 0 }
local seq, finished, t_first, device = 0, false, nil, nil

g_wso = nil -- a global, as plugins keep it

-- context(w): every handler checks it runs in this plugin's device context, for this wso.
local function context(w)
	count.handler_calls = count.handler_calls + 1
	if host_current_device() ~= luup.device then
		count.ctx_bad = count.ctx_bad + 1
		if count.ctx_bad == 1 then
			luup.log(TAG .. " ERROR: handler ran with current device " .. host_current_device(), 1)
		end
	end
	if w ~= g_wso then count.wrong_wso = count.wrong_wso + 1 end
end

function on_open(protocol, attempt, w)
	context(w)
	count.open = count.open + 1
	luup.log(TAG .. " on_open: connected to " .. URL .. " (attempt " .. tostring(attempt) .. ")")
	t_first = socket.gettime()
	luup.call_delay("send_tick", 0, "")
end

function on_message(data, kind, w)
	context(w)
	local ok, why = lib.echo(st, data, kind, socket.gettime())
	if not ok and st.bad <= 5 then luup.log(TAG .. " ERROR: " .. why, 1) end
	if st.received % LOG_EVERY == 0 or st.received == 1 then
		luup.log(string.format("%s on_message: %d echoes back, %d bad, last latency %.1f ms", TAG, st.received, st.bad,
			st.lat[#st.lat] or -1))
	end
end

function on_close(clean, code, reason, w)
	context(w)
	count.close = count.close + 1
	luup.log(TAG .. " on_close: clean=" .. tostring(clean) .. " code=" .. tostring(code) .. " reason=" .. tostring(reason))
	host_report("closed", count.close)
	host_report("close_code", code)
	host_report("close_after_finish", tostring(finished))
end

function on_error(reason, attempt, w)
	context(w)
	count.error = count.error + 1
	luup.log(TAG .. " on_error: " .. tostring(reason) .. " (attempt " .. tostring(attempt) .. ")", 1)
	host_report("errors", count.error)
end

-- send_tick: keeps the count sent at RATE * elapsed (a late tick catches up, at most
-- 5 at once), then schedules itself for the next one.
function send_tick()
	if finished or host_time_left() < STOP_BEFORE_END then return end
	local due = math.floor((socket.gettime() - t_first) * RATE) + 1
	for _ = 1, math.min(5, due - seq) do
		local t = socket.gettime()
		local data, kind = lib.message(device, seq + 1, t)
		local ok, err = ws.send(g_wso, data, kind == "binary" and "binary" or nil)
		if not ok then
			count.send_fail = count.send_fail + 1
			if count.send_fail <= 3 then luup.log(TAG .. " ERROR: ws.send: " .. tostring(err), 1) end
			break
		end
		seq = seq + 1
		lib.sent(st, seq, data, kind, t)
	end
	local next_at = t_first + seq / RATE
	luup.call_delay("send_tick", math.max(0, next_at - socket.gettime()), "")
end

function host_finish()
	finished = true
	local s = lib.summary(st)
	for k, v in pairs(s) do host_report(k, v) end
	for k, v in pairs(count) do host_report(k, v) end
	host_report("send_seconds", t_first and string.format("%.1f", socket.gettime() - t_first) or "0")
	luup.log(string.format("%s finished: sent %d, received %d, bad %d, missing %d, latency median %s ms, p99 %s ms",
		TAG, s.sent, s.received, s.bad, s.missing, s.lat_median_ms, s.lat_p99_ms))
	if g_wso then ws.close(g_wso, 1000, "host finished") end
end

function startup(lul_device)
	device = lul_device
	if not URL then
		luup.log(TAG .. " ERROR: VWS_LUUPHOST_ECHO_URL is not set", 1)
		return false, "no echo URL", "plugin_names"
	end
	g_wso = ws.create {
		url = URL,
		event_handlers = { [1] = "on_error", [3] = "on_open", [4] = "on_close", [8] = "on_message" },
	}
	local ok, err = ws.connect(g_wso)
	luup.log(TAG .. " startup: device " .. lul_device .. ", ws.connect -> " .. tostring(ok) .. " " .. tostring(err or ""))
	return ok == true, ok and "ok" or tostring(err), "plugin_names"
end
