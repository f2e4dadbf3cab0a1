-- tests/luuphost/luuphost_lib.lua - pure helpers shared by the echo plugins of the
-- Luup host test (plugin_names.lua, plugin_funcs.lua): message payloads, the echo
-- check, percentiles. No luup, no ws: the plugins keep those in their own environments.
--
--   local lib = require "luuphost_lib"
--   local data, kind = lib.message(dev, seq, t)   -- seq odd: binary, even: text
--   local st = lib.new_stats()
--   lib.sent(st, seq, data, kind, t)
--   local ok, why = lib.echo(st, data, kind, now)  -- in order, byte-exact; latency kept
--   lib.summary(st) -> {sent=, received=, bad=, missing=, lat_median_ms=, lat_p99_ms=, ...}

local M = {}

-- A Park-Miller generator: deterministic per (dev, seq), exact in doubles.
local function rng(seed)
	local x = seed % 2147483646 + 1
	return function()
		x = (x * 16807) % 2147483647
		return x
	end
end

-- Sizes around the frame-length boundaries (7-bit, 16-bit, 64-bit lengths) every
-- 25th message; otherwise 16..1500 bytes.
local SPECIAL = { 125, 126, 127, 65535, 65536, 70000, 1, 4096 }

function M.size(dev, seq)
	if seq % 25 == 0 then return SPECIAL[(seq / 25) % #SPECIAL + 1] end
	return 16 + rng(dev * 100003 + seq)() % 1485
end

-- UTF-8 pieces for text messages: ASCII, 2-, 3- and 4-byte sequences.
local PIECES = { "a", "b", "Z", " ", "0", "~", "\195\169", "\195\159", "\230\151\165", "\226\130\172", "\240\159\152\128" }

-- message(dev, seq, t) -> data, kind: "<T|B>|dev|seq|time|" then bytes. Binary ones
-- hold every byte value at random, starting with NUL and 0xFF; text ones are valid
-- UTF-8 with multi-byte characters. The header may make a message longer than size().
function M.message(dev, seq, t)
	local kind = (seq % 2 == 1) and "binary" or "text"
	local head = string.format("%s|%d|%d|%.6f|", kind == "binary" and "B" or "T", dev, seq, t)
	local left = M.size(dev, seq) - #head
	local r = rng(dev * 7919 + seq * 104729)
	local out = { head }
	if kind == "binary" then
		local batch = {}
		if left > 0 then batch[1] = 0 end
		if left > 1 then batch[2] = 255 end
		for i = #batch + 1, left do
			batch[#batch + 1] = r() % 256
			if #batch == 4000 or i == left then
				out[#out + 1] = string.char(unpack(batch))
				batch = {}
			end
		end
		if #batch > 0 then out[#out + 1] = string.char(unpack(batch)) end
	else
		while left > 0 do
			local p = PIECES[r() % #PIECES + 1]
			if #p > left then p = "x" end
			out[#out + 1] = p
			left = left - #p
		end
	end
	return table.concat(out), kind
end

-- parse(data) -> dev, seq, t (nil when the header is not there)
function M.parse(data)
	local k, dev, seq, t = data:match("^([TB])|(%d+)|(%d+)|([%d%.]+)|")
	if not k then return nil end
	return tonumber(dev), tonumber(seq), tonumber(t)
end

function M.new_stats()
	return { sent = 0, received = 0, bad = 0, next = 1, pending = {}, lat = {}, first_bad = nil, bytes = 0 }
end

function M.sent(st, seq, data, kind, t)
	st.pending[seq] = { data = data, kind = kind, t = t }
	st.sent = st.sent + 1
	st.bytes = st.bytes + #data
end

local function bad(st, why)
	st.bad = st.bad + 1
	st.first_bad = st.first_bad or why
	return false, why
end

-- echo(st, data, kind, now) -> true, or false and why: the echo must be the next
-- message sent, byte for byte, with the same kind.
function M.echo(st, data, kind, now)
	local _, seq = M.parse(data)
	if not seq then return bad(st, "unparseable message of " .. #data .. " bytes") end
	local p = st.pending[seq]
	if seq ~= st.next then
		local expected = st.next
		st.next = seq + 1
		if p then st.pending[seq] = nil; st.received = st.received + 1 end
		return bad(st, "out of order: got seq " .. seq .. ", expected " .. expected)
	end
	st.next = seq + 1
	if not p then return bad(st, "seq " .. seq .. " not pending (duplicate?)") end
	st.pending[seq] = nil
	st.received = st.received + 1
	if kind ~= p.kind then return bad(st, "seq " .. seq .. ": kind " .. tostring(kind) .. ", sent " .. p.kind) end
	if data ~= p.data then
		local i = 1
		while i <= #data and data:byte(i) == p.data:byte(i) do i = i + 1 end
		return bad(st, string.format("seq %d corrupted: %d bytes back, %d sent, first difference at %d", seq, #data, #p.data, i))
	end
	st.lat[#st.lat + 1] = (now - p.t) * 1000
	return true
end

-- percentile(list, q) -> the q-quantile (nearest rank), nil for an empty list
function M.percentile(list, q)
	if #list == 0 then return nil end
	local s = {}
	for i, v in ipairs(list) do s[i] = v end
	table.sort(s)
	local i = math.ceil(q * #s)
	if i < 1 then i = 1 end
	return s[i]
end

function M.summary(st)
	local missing = 0
	for _ in pairs(st.pending) do missing = missing + 1 end
	local function ms(v) return v and string.format("%.1f", v) or "nan" end
	return {
		sent = st.sent, received = st.received, bad = st.bad, missing = missing, bytes = st.bytes,
		lat_median_ms = ms(M.percentile(st.lat, 0.5)), lat_p99_ms = ms(M.percentile(st.lat, 0.99)),
		lat_max_ms = ms(M.percentile(st.lat, 1)), first_bad = st.first_bad or "",
	}
end

return M
