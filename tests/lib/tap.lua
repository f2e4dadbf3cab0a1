-- tests/lib/tap.lua - a small TAP-like runner for the verawebsockets Lua suite
-- (after luv's tests/run.lua + lib/tap.lua).
--
--   local tap = require "tap"
--   local ws, test, ok, eq = tap.ws, tap.test, tap.ok, tap.eq
--   test("name", function() ... end)   -- runs at once; prints "ok N - name" / "not ok N - name"
--   tap.done()                         -- prints "N passed, N failed[, N skipped]" and exits (1 on failure)
--
-- Assertions (ok, eq, like, ...) raise: the first failing one ends the test.
-- expect(fn, n) wraps fn and checks at the end of the test that it ran n times.
-- wait(cond, seconds, what) pumps ws.dispatch until cond() is true (bounded).
-- After each test, every connection made through tap.create/tap.track must be
-- "closed" or "created" (else the test fails as a leak), and the Lua heap must be sane.
-- Test addresses come from the environment (build/test-lua.sh exports VWS_TEST_*).

local tap = {}

-- Lua 5.1 (LuaJIT) .. 5.4: the suite is written in 5.1 style; on 5.2+ these
-- globals come back as what replaced them (setfenv has no equivalent: use
-- tap.load_env, which gives a chunk its globals the way each version can).
unpack = unpack or table.unpack
loadstring = loadstring or load
tap.lua = _VERSION:match("%d+%.%d+") -- "5.1" .. "5.4" (LuaJIT: "5.1")

-- execute(cmd) -> true when cmd exited with status 0 (os.execute gives 0 on 5.1, true on 5.2+).
function tap.execute(cmd)
	local r = os.execute(cmd)
	return r == 0 or r == true
end

-- load_env(code, env[, name]) -> chunk whose globals are env: setfenv on 5.1,
-- load's env (the chunk's _ENV upvalue) on 5.2+, as a Luup host loads a plugin.
function tap.load_env(code, env, name)
	if setfenv then
		return setfenv(assert(loadstring(code, name)), env)
	end
	return assert(load(code, name, "t", env))
end

local okreq, ws = pcall(require, "verawebsockets")
tap.ws = okreq and ws or nil
tap.load_error = not okreq and tostring(ws) or nil

local passed, failed, skipped, n = 0, 0, 0, 0
local current -- state of the running test
local heap0

-- ---------------------------------------------------------------- environment
function tap.env(name, default)
	local v = os.getenv("VWS_TEST_" .. name)
	if v == nil or v == "" then
		if default ~= nil then return default end
		error("environment variable VWS_TEST_" .. name .. " is not set (run through build/test-lua.sh)", 2)
	end
	return v
end

-- url(path [, portkey [, scheme]]) -> "ws://127.0.0.1:<VWS_TEST_<portkey>><path>"
function tap.url(path, portkey, scheme)
	portkey = portkey or "HTTP_PORT"
	scheme = scheme or ((portkey == "TLS_PORT" or portkey == "MTLS_PORT" or portkey == "SELF_PORT") and "wss" or "ws")
	return scheme .. "://127.0.0.1:" .. tap.env(portkey) .. (path or "/echo")
end

function tap.cert(name) return tap.env("CERT_DIR") .. "/" .. name end

-- ---------------------------------------------------------------- time
-- factor: every bounded wait and every "took less than" check is multiplied by
-- VWS_TEST_TIME_FACTOR (default 1; build/test-lua.sh uses 4 under an emulator).
tap.factor = tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1

-- now() -> seconds (0.01 s resolution, wall clock, from /proc/uptime).
function tap.now()
	local f = io.open("/proc/uptime", "r")
	if f then
		local s = f:read("*n")
		f:close()
		if s then return s end
	end
	return os.time()
end

-- ms(milliseconds) -> milliseconds * factor (an integer): for ws.loop/ws.dispatch
-- timeouts that are the whole budget for something to happen.
function tap.ms(ms)
	return math.floor(ms * tap.factor + 0.5)
end

-- sleep(seconds): a blocking sleep that does NOT dispatch events (not scaled:
-- use it for "nothing happens meanwhile" checks, never to wait for an event).
function tap.sleep(s)
	os.execute(string.format("sleep %.3f", s))
end

-- ---------------------------------------------------------------- reporting
local function diag(msg)
	for line in (tostring(msg) .. "\n"):gmatch("(.-)\n") do
		print("#   " .. line)
	end
end
tap.diag = diag

local function fail(msg, level)
	error({ tap_failure = true, msg = msg }, (level or 1) + 1)
end

local function where(level)
	local info = debug.getinfo((level or 2) + 1, "Sl")
	if info then return (info.short_src or "?") .. ":" .. (info.currentline or 0) .. ": " end
	return ""
end

local function show(v)
	if type(v) == "string" then
		if #v > 200 then return string.format("%q...(%d bytes)", v:sub(1, 200), #v) end
		return string.format("%q", v)
	end
	return tostring(v)
end
tap.show = show

function tap.ok(cond, msg)
	if not cond then fail(where(2) .. (msg or "assertion failed"), 2) end
	return cond
end

function tap.eq(got, want, msg)
	if got ~= want then
		fail(where(2) .. (msg and (msg .. ": ") or "") .. "got " .. show(got) .. ", want " .. show(want), 2)
	end
	return got
end

function tap.like(s, pattern, msg)
	if type(s) ~= "string" or not s:find(pattern) then
		fail(where(2) .. (msg and (msg .. ": ") or "") .. show(s) .. " does not match " .. show(pattern), 2)
	end
	return s
end

-- raises(fn, pattern [, msg]) -> the error message; fn must raise an error matching pattern (plain find).
function tap.raises(fn, pattern, msg)
	local okc, err = pcall(fn)
	if okc then fail(where(2) .. (msg and (msg .. ": ") or "") .. "expected an error matching " .. show(pattern), 2) end
	err = tostring(err)
	if pattern and not err:find(pattern, 1, true) then
		fail(where(2) .. (msg and (msg .. ": ") or "") .. "error " .. show(err) .. " does not contain " .. show(pattern), 2)
	end
	return err
end

-- expect(fn, n [, name]) -> a function that calls fn and counts; at the end of the
-- test the count must be n (a number, or {min=a, max=b}).
function tap.expect(fn, count, name)
	assert(current, "expect() outside a test")
	local e = { n = 0, want = count, name = name or ("expect#" .. (#current.expects + 1)) }
	current.expects[#current.expects + 1] = e
	return function(...)
		e.n = e.n + 1
		if fn then return fn(...) end
	end, e
end

-- ---------------------------------------------------------------- waiting
-- wait_loop: the loop of wait and wait_nodispatch; `step` runs between checks.
-- A failure names the line that called wait or wait_nodispatch (level 3).
local function wait_loop(cond, seconds, what, step, note)
	local limit = (seconds or 5) * tap.factor
	local deadline = tap.now() + limit
	while true do
		if cond() then return true end
		if tap.now() > deadline then
			if type(what) == "function" then what = what() end
			fail(where(3) .. "timeout (" .. limit .. " s) waiting for " .. (what or "condition") .. note, 3)
		end
		step()
	end
end

local function dispatch_step() ws.dispatch(20) end
local function sleep_step() tap.sleep(0.05) end

-- wait(cond, seconds, what): calls ws.dispatch(20) until cond() is true; fails after `seconds`.
function tap.wait(cond, seconds, what)
	wait_loop(cond, seconds, what, dispatch_step, "")
	return true -- not a tail call: wait_loop's level 3 is this function's caller
end

-- wait_nodispatch(cond, seconds, what): as wait, but never dispatches (Luup mode:
-- events must arrive by themselves); sleeps 50 ms between checks.
function tap.wait_nodispatch(cond, seconds, what)
	wait_loop(cond, seconds, what, sleep_step, " (no dispatch)")
	return true -- not a tail call, as in wait
end

-- pump(seconds): dispatches events for that long (not scaled: for "nothing
-- happens meanwhile" checks; to wait for something use tap.wait with a condition).
function tap.pump(seconds)
	local deadline = tap.now() + seconds
	while tap.now() < deadline do ws.dispatch(20) end
end

-- ---------------------------------------------------------------- connections
-- tracked() -> the connections tap.track recorded for the running test.
function tap.tracked() return current and current.conns or {} end

function tap.track(wso)
	if current and wso then current.conns[#current.conns + 1] = wso end
	return wso
end

-- create(opts): ws.create with standalone=true unless given, tracked for the leak check.
function tap.create(opts)
	if opts.standalone == nil then opts.standalone = true end
	return tap.track(ws.create(opts))
end

-- open(url_or_path[, opts[, portkey]]) -> wso, rec: creates a tracked connection
-- with a recorder's handlers (url_or_path: a ws:// or wss:// URL, or a path on
-- the test server, default "/echo"), connects it and waits (bounded) until it is
-- open; a connection error fails the test.
function tap.open(url, opts, portkey)
	local rec = tap.recorder()
	opts = opts or {}
	opts.url = (url and url:match("^wss?://")) and url or tap.url(url or "/echo", portkey)
	opts.event_handlers = opts.event_handlers or rec.handlers
	local wso = tap.create(opts)
	tap.eq(tap.ws.connect(wso), true, "connect")
	tap.wait(function() return rec.count(3) + rec.count(1) > 0 end, 10, "open")
	tap.eq(rec.count(1), 0, "connection error: " .. tostring(rec.last(1)))
	return wso, rec
end

-- events(): a recorder: handlers that append {ev, ...} to a list, plus helpers.
--   local rec = tap.recorder(); ws.create{url=..., event_handlers = rec.handlers}
--   rec.list, rec.count(ev), rec.last(ev), rec.wait(ev, seconds[, n])
function tap.recorder()
	local rec = { list = {} }
	local function add(ev)
		return function(...)
			rec.list[#rec.list + 1] = { ev = ev, args = { ... }, n = select("#", ...) }
		end
	end
	rec.handlers = { [1] = add(1), [3] = add(3), [4] = add(4), [8] = add(8), [9] = add(9), [10] = add(10) }
	function rec.count(ev)
		local c = 0
		for _, e in ipairs(rec.list) do if e.ev == ev then c = c + 1 end end
		return c
	end
	function rec.last(ev)
		for i = #rec.list, 1, -1 do
			if rec.list[i].ev == ev then return unpack(rec.list[i].args, 1, rec.list[i].n) end
		end
		return nil
	end
	function rec.nth(ev, k)
		local c = 0
		for _, e in ipairs(rec.list) do
			if e.ev == ev then
				c = c + 1
				if c == k then return unpack(e.args, 1, e.n) end
			end
		end
		return nil
	end
	function rec.wait(ev, seconds, count)
		count = count or 1
		return tap.wait(function() return rec.count(ev) >= count end, seconds or 5, function()
			return "event " .. ev .. (count > 1 and (" x" .. count) or "") .. " (seen: " .. rec.summary() .. ")"
		end)
	end
	function rec.summary()
		local t = {}
		for _, e in ipairs(rec.list) do t[#t + 1] = tostring(e.ev) end
		return #t == 0 and "none" or table.concat(t, ",")
	end
	return rec
end

-- close_and_wait(wso [, seconds]): ws.close then dispatch until "closed".
function tap.close_and_wait(wso, seconds)
	local st = ws.state(wso)
	if st ~= "closed" and st ~= "created" then ws.close(wso) end
	tap.wait(function() return ws.state(wso) == "closed" end, seconds or 5, "state closed")
end

-- ---------------------------------------------------------------- JSON and HTTP control
-- A small JSON decoder (objects, arrays, strings, numbers, true/false/null).
function tap.json(s)
	local pos = 1
	local function ws_() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
	local value
	local function str()
		local out, i = {}, pos + 1
		while true do
			local c = s:sub(i, i)
			if c == "" then error("json: unterminated string") end
			if c == '"' then pos = i + 1; return table.concat(out) end
			if c == "\\" then
				local e = s:sub(i + 1, i + 1)
				local map = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
				if e == "u" then
					local cp = tonumber(s:sub(i + 2, i + 5), 16)
					if cp < 128 then out[#out + 1] = string.char(cp)
					elseif cp < 2048 then out[#out + 1] = string.char(192 + math.floor(cp / 64), 128 + cp % 64)
					else out[#out + 1] = string.char(224 + math.floor(cp / 4096), 128 + math.floor(cp / 64) % 64, 128 + cp % 64) end
					i = i + 6
				else
					out[#out + 1] = map[e] or e
					i = i + 2
				end
			else
				out[#out + 1] = c
				i = i + 1
			end
		end
	end
	function value()
		ws_()
		local c = s:sub(pos, pos)
		if c == "{" then
			local t = {}
			pos = pos + 1; ws_()
			if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
			while true do
				ws_()
				local k = str(); ws_()
				pos = pos + 1 -- ':'
				t[k] = value(); ws_()
				local d = s:sub(pos, pos); pos = pos + 1
				if d == "}" then return t end
			end
		elseif c == "[" then
			local t = {}
			pos = pos + 1; ws_()
			if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
			while true do
				t[#t + 1] = value(); ws_()
				local d = s:sub(pos, pos); pos = pos + 1
				if d == "]" then return t end
			end
		elseif c == '"' then
			return str()
		elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
		elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
		elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
		else
			local num = s:match("^-?[%d%.eE+-]+", pos)
			if not num then error("json: bad value at " .. pos .. " in " .. s) end
			pos = pos + #num
			return tonumber(num)
		end
	end
	return value()
end

-- control(path [, portkey]) -> decoded JSON of a plain HTTP GET to the test server
-- (curl or wget; independent of the library under test).
function tap.control(path, portkey)
	local url = "http://127.0.0.1:" .. tap.env(portkey or "HTTP_PORT") .. path
	local p = io.popen("curl -s --max-time 5 '" .. url .. "' 2>/dev/null || wget -q -T 5 -O - '" .. url .. "' 2>/dev/null")
	local body = p:read("*a")
	p:close()
	if body == "" then error("control " .. url .. ": no answer (is curl or wget installed?)", 2) end
	return tap.json(body)
end

-- closeinfo(id [, seconds]) -> what the test server saw when /echo?id=<id> ended (waits for it).
function tap.closeinfo(id, seconds)
	local deadline = tap.now() + (seconds or 5) * tap.factor
	while true do
		local r = tap.control("/closeinfo?id=" .. id)
		if r.seen or tap.now() > deadline then return r end
		ws.dispatch(50)
	end
end

-- readfile(name) -> the file's contents, "" when it cannot be opened.
function tap.readfile(name)
	local f = io.open(name, "rb")
	if not f then return "" end
	local s = f:read("*a")
	f:close()
	return s
end

-- browse(url, dir) -> outcome, dom, load: headless Chromium loads url?load=N (with a
-- profile in dir) and dumps its DOM; outcome is the text of <p id="r"> after "OUTCOME:",
-- or "PENDING"; load is N of the load that gave it (a page can tell its loads apart by
-- location.search). Events are dispatched while it runs (tap.wait).
function tap.browse(url, dir)
	local readfile = tap.readfile
	local out, done = dir .. "/dom.out", dir .. "/dom.done"
	local outcome, dom, load
	-- PENDING: the browser's virtual time ran out before the page's WebSocket finished (a
	-- busy machine: WebSockets do not hold virtual time back); no outcome, so load it again
	for n = 1, 3 do
		load = n
		os.remove(done)
		os.execute(string.format("(mkdir -p %s/profile; timeout %d chromium --headless --no-sandbox --disable-gpu " ..
			"--disable-background-networking --disable-component-update --disable-sync --no-first-run " ..
			"--user-data-dir=%s/profile --virtual-time-budget=5000 --dump-dom %s > %s 2>%s/chromium.err; " ..
			"rm -rf %s/profile; echo done > %s) &", dir, 60 * tap.factor, dir,
			url .. (url:find("?", 1, true) and "&" or "?") .. "load=" .. n, out, dir, dir, done))
		tap.wait(function() return readfile(done) ~= "" end, 70, "headless chromium")
		dom = readfile(out)
		outcome = dom:match("<p id=\"r\">OUTCOME:([^<]*)</p>") or dom:match("<p id=\"r\">(PENDING)</p>")
		if outcome ~= "PENDING" then break end
		print("# the page had no outcome yet (PENDING): loading it again")
	end
	return outcome, dom .. readfile(dir .. "/chromium.err"), load
end

local idn = 0
function tap.uid(prefix)
	idn = idn + 1
	return (prefix or "id") .. os.time() .. "x" .. math.random(1, 1e9) .. "n" .. idn
end

-- run_lua_env(env, code[, timeout]): run_lua with extra environment
-- variables (a table of NAME = value; values are single-quoted for the shell).
function tap.run_lua_env(env, code, timeout)
	local parts = {}
	for k, v in pairs(env) do
		parts[#parts + 1] = k .. "='" .. tostring(v):gsub("'", "'\\''") .. "'"
	end
	return tap.run_lua(code, timeout, table.concat(parts, " "))
end

-- run_lua(code) -> output (stdout+stderr), ok: runs code in a new interpreter
-- (VWS_TEST_LUA, default lua5.1) with the same LUA_CPATH/LUA_PATH, and
-- VWS_TEST_TIME_FACTOR = tap.factor: a child scales its own waits by
-- tonumber(os.getenv("VWS_TEST_TIME_FACTOR")), or requires "tap" (LUA_PATH).
function tap.run_lua(code, timeout, envprefix)
	local name = os.tmpname()
	local f = assert(io.open(name, "w"))
	f:write(code)
	f:close()
	local lua = os.getenv("VWS_TEST_LUA") or "lua5.1"
	local p = io.popen(string.format("env VWS_TEST_TIME_FACTOR=%s %s timeout %d %s %s 2>&1; echo \"__exit=$?\"",
		tostring(tap.factor), envprefix or "", (timeout or 20) * tap.factor, lua, name))
	local out = p:read("*a")
	p:close()
	os.remove(name)
	local status = tonumber(out:match("__exit=(%d+)%s*$"))
	out = out:gsub("__exit=%d+%s*$", "")
	return out, status == 0, status
end

-- ---------------------------------------------------------------- tests
local function report(okk, name, msgs, directive)
	n = n + 1
	print((okk and "ok " or "not ok ") .. n .. " - " .. name .. (directive or ""))
	for _, m in ipairs(msgs or {}) do diag(m) end
	io.stdout:flush()
end

function tap.skip(name, why)
	skipped = skipped + 1
	report(true, name, nil, " # SKIP " .. (why or ""))
end

local function leak_check(t)
	local msgs = {}
	for _, wso in ipairs(t.conns) do
		local okst, st = pcall(ws.state, wso)
		if okst and st ~= "closed" and st ~= "created" then
			msgs[#msgs + 1] = "leak: connection left in state " .. st .. ": " .. tostring(wso)
			pcall(ws.close, wso)
			local deadline = tap.now() + 5 * tap.factor
			while ws.state(wso) ~= "closed" and tap.now() < deadline do ws.dispatch(20) end
			if ws.state(wso) ~= "closed" then
				msgs[#msgs + 1] = "leak: still " .. ws.state(wso) .. " " .. 5 * tap.factor .. " s after ws.close"
			end
		end
	end
	-- Drain what is left for this test's connections so it does not leak into the next one.
	for _ = 1, 50 do if ws.dispatch(0) == 0 then break end end
	collectgarbage("collect")
	collectgarbage("collect")
	local kb = collectgarbage("count")
	heap0 = heap0 or kb
	if kb > heap0 + 64 * 1024 then
		msgs[#msgs + 1] = string.format("heap: %.0f KiB after collect (started at %.0f KiB)", kb, heap0)
	end
	return msgs
end

-- test(name, fn): runs fn now, then the expect() counts and the leak check.
function tap.test(name, fn)
	if not ws then
		failed = failed + 1
		report(false, name, { "require 'verawebsockets' failed: " .. tostring(tap.load_error) })
		return
	end
	heap0 = heap0 or (function() collectgarbage("collect"); return collectgarbage("count") end)()
	current = { name = name, conns = {}, expects = {} }
	local t = current
	local msgs = {}
	local okr, err = xpcall(fn, function(e)
		if type(e) == "table" and e.tap_failure then return e.msg end
		return debug.traceback(tostring(e), 2)
	end)
	if not okr then msgs[#msgs + 1] = tostring(err) end
	for _, e in ipairs(t.expects) do
		local good
		if type(e.want) == "table" then
			good = e.n >= (e.want.min or 0) and e.n <= (e.want.max or math.huge)
		else
			good = e.n == e.want
		end
		if not good then
			local w = type(e.want) == "table" and ((e.want.min or 0) .. ".." .. (e.want.max or "inf")) or tostring(e.want)
			msgs[#msgs + 1] = e.name .. " called " .. e.n .. " times, expected " .. w
		end
	end
	local okl, lmsgs = pcall(leak_check, t)
	if not okl then lmsgs = { "leak check failed: " .. tostring(lmsgs) } end
	for _, m in ipairs(lmsgs) do msgs[#msgs + 1] = m end
	current = nil
	if #msgs == 0 then
		passed = passed + 1
		report(true, name)
	else
		failed = failed + 1
		report(false, name, msgs)
	end
end

-- ---------------------------------------------------------------- server tests
-- tap.servers: the servers the running server_test made (nil outside one); tap.listen adds to it.
-- server_test(name, fn[, o]): tap.test; afterwards every server of the test is closed
-- and its clients are waited for (bounded), then o.after() runs, whether fn failed or not.
--   o.skip     a reason: tap.skip(name, o.skip) instead
--   o.before   run before fn (per-test state)
--   o.tracked  also wait for the test's tracked connections (tap.tracked()), which
--              close once their server's 1001 arrives; "created" ones count as done
function tap.server_test(name, fn, o)
	o = o or {}
	if o.skip then return tap.skip(name, o.skip) end
	tap.test(name, function()
		tap.servers = {}
		if o.before then o.before() end
		local okf, err = xpcall(fn, function(e)
			if type(e) == "table" then return e end
			return { tap_failure = true, msg = debug.traceback(tostring(e), 2) }
		end)
		local left = {}
		for _, s in ipairs(tap.servers) do
			local okc, list = pcall(ws.clients, s)
			if okc and type(list) == "table" then
				for _, c in ipairs(list) do left[#left + 1] = c end
			end
			pcall(ws.close, s)
		end
		if o.tracked then
			for _, c in ipairs(tap.tracked()) do left[#left + 1] = c end
		end
		local deadline = tap.now() + 5 * tap.factor
		while tap.now() < deadline do
			local busy = false
			for _, c in ipairs(left) do
				local oks, st = pcall(ws.state, c)
				if oks and st ~= "closed" and not (o.tracked and st == "created") then busy = true end
			end
			if not busy then break end
			ws.dispatch(20)
		end
		if o.after then o.after() end
		tap.servers = nil
		if not okf then error(err, 0) end
	end)
end

-- listen(opts) -> srv: ws.listen of a server on 127.0.0.1, port 0, standalone unless
-- opts say otherwise; a failure fails the test; closed after the running server_test.
function tap.listen(opts)
	opts = opts or {}
	if opts.port == nil then opts.port = 0 end
	if opts.host == nil then opts.host = "127.0.0.1" end
	if opts.standalone == nil then opts.standalone = true end
	local srv, err = ws.listen(opts)
	tap.ok(srv, "ws.listen failed: " .. tostring(err))
	tap.servers[#tap.servers + 1] = srv
	return srv
end

-- done(): the summary line, then exit (status 1 when anything failed).
function tap.done()
	local line = passed .. " passed, " .. failed .. " failed"
	if skipped > 0 then line = line .. ", " .. skipped .. " skipped" end
	print(line)
	io.stdout:flush()
	os.exit(failed == 0 and 0 or 1)
end

math.randomseed(os.time())
return tap
