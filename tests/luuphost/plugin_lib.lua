-- tests/luuphost/plugin_lib.lua - what the echo plugins of the Luup host test
-- (plugin_names.lua, plugin_funcs.lua) have in common: settings, counters, the
-- handler bodies, the paced sending, host_finish's reports and the startup log line.
-- Each plugin keeps its own part: how it gives the module its handlers (global names
-- or function values), how it paces itself (call_delay or call_timer), and every
-- ws.* call (the module finds a plugin's environment from its caller: they must be
-- made from the plugin's own code, not from here).
--
--   local p = require("plugin_lib").new(_G, "[tag]", { send = function(data, kind) ... end })
--   p.handlers("on_" or "", after_open) -> { open=, message=, close=, error= }
--
-- A module is loaded once for the whole host (package.loaded): everything a plugin
-- owns lives in the table new() returns, and luup and host_* are its environment's
-- (env: the plugin's _G, which host.lua sets to the environment itself).

local socket = require "socket"
local lib = require "luuphost_lib"

local M = {}

-- new(env, tag, o) -> p: o.send(data, kind) -> ok, err sends on the plugin's wso,
-- o.count: extra counters (reported by finish).
function M.new(env, tag, o)
	local p = {
		TAG = tag,
		URL = os.getenv("VWS_LUUPHOST_ECHO_URL"),
		RATE = tonumber(os.getenv("LUUPHOST_RATE") or "") or 20,
		STOP_BEFORE_END = 3, -- seconds before the run ends: stop sending, let echoes drain
		LOG_EVERY = 25, -- messages between two luup.log lines of the message handler (and the first)
		st = lib.new_stats(),
		count = { open = 0, error = 0, close = 0, ctx_bad = 0, wrong_wso = 0, send_fail = 0, handler_calls = 0 },
		seq = 0, finished = false, t_first = nil, device = nil,
		wso = nil, -- the plugin's connection (set by the plugin)
	}
	for k, v in pairs(o.count or {}) do p.count[k] = v end
	local count, st = p.count, p.st

	-- context(w): every handler checks it runs in this plugin's device context, for this wso.
	function p.context(w)
		count.handler_calls = count.handler_calls + 1
		if env.host_current_device() ~= env.luup.device then
			count.ctx_bad = count.ctx_bad + 1
			if count.ctx_bad == 1 then
				env.luup.log(tag .. " ERROR: handler ran with current device " .. env.host_current_device(), 1)
			end
		end
		if w ~= p.wso then count.wrong_wso = count.wrong_wso + 1 end
	end

	-- handlers(prefix, after_open): the four handlers; their log lines read
	-- "<tag> <prefix>open: ..." and so on; after_open() starts the sending.
	function p.handlers(prefix, after_open)
		local h = {}
		function h.open(protocol, attempt, w)
			p.context(w)
			count.open = count.open + 1
			env.luup.log(tag .. " " .. prefix .. "open: connected to " .. p.URL .. " (attempt " .. tostring(attempt) .. ")")
			p.t_first = socket.gettime()
			after_open()
		end
		function h.message(data, kind, w)
			p.context(w)
			local ok, why = lib.echo(st, data, kind, socket.gettime())
			if not ok and st.bad <= 5 then env.luup.log(tag .. " ERROR: " .. why, 1) end
			if st.received % p.LOG_EVERY == 0 or st.received == 1 then
				env.luup.log(string.format("%s %smessage: %d echoes back, %d bad, last latency %.1f ms", tag, prefix,
					st.received, st.bad, st.lat[#st.lat] or -1))
			end
		end
		function h.close(clean, code, reason, w)
			p.context(w)
			count.close = count.close + 1
			env.luup.log(tag .. " " .. prefix .. "close: clean=" .. tostring(clean) .. " code=" .. tostring(code) ..
				" reason=" .. tostring(reason))
			env.host_report("closed", count.close)
			env.host_report("close_code", code)
			env.host_report("close_after_finish", tostring(p.finished))
		end
		function h.error(reason, attempt, w)
			p.context(w)
			count.error = count.error + 1
			env.luup.log(tag .. " " .. prefix .. "error: " .. tostring(reason) .. " (attempt " .. tostring(attempt) .. ")", 1)
			env.host_report("errors", count.error)
		end
		return h
	end

	-- send_due(most) -> false when the plugin has finished or the run nearly ended;
	-- else sends what is due at RATE since the open (at most `most` now) and -> true.
	function p.send_due(most)
		if p.finished or env.host_time_left() < p.STOP_BEFORE_END then return false end
		local due = math.floor((socket.gettime() - p.t_first) * p.RATE) + 1
		for _ = 1, math.min(most, due - p.seq) do
			local t = socket.gettime()
			local data, kind = lib.message(p.device, p.seq + 1, t)
			local ok, err = o.send(data, kind)
			if not ok then
				count.send_fail = count.send_fail + 1
				if count.send_fail <= 3 then env.luup.log(tag .. " ERROR: ws.send: " .. tostring(err), 1) end
				break
			end
			p.seq = p.seq + 1
			lib.sent(st, p.seq, data, kind, t)
		end
		return true
	end

	-- finish(): host_finish's reports and log line (the plugin closes its wso after).
	function p.finish()
		p.finished = true
		local s = lib.summary(st)
		for k, v in pairs(s) do env.host_report(k, v) end
		for k, v in pairs(count) do env.host_report(k, v) end
		env.host_report("send_seconds", p.t_first and string.format("%.1f", socket.gettime() - p.t_first) or "0")
		env.luup.log(string.format("%s finished: sent %d, received %d, bad %d, missing %d, latency median %s ms, p99 %s ms",
			tag, s.sent, s.received, s.bad, s.missing, s.lat_median_ms, s.lat_p99_ms))
	end

	-- start(lul_device) -> false when there is no echo URL (logged).
	function p.start(lul_device)
		p.device = lul_device
		if not p.URL then
			env.luup.log(tag .. " ERROR: VWS_LUUPHOST_ECHO_URL is not set", 1)
			return false
		end
		return true
	end

	-- connected(lul_device, ok, err, name) -> startup's results, after the startup log line.
	function p.connected(lul_device, ok, err, name)
		env.luup.log(tag .. " startup: device " .. lul_device .. ", ws.connect -> " .. tostring(ok) .. " " ..
			tostring(err or ""))
		return ok == true, ok and "ok" or tostring(err), name
	end

	return p
end

return M
