-- Must NOT abort under the race interpreter (build/test-race.sh): threads enter this
-- lua_State only while its own thread waits in a C function (which has unlocked), and
-- every path of the VM leaves the state when it returns to C. TAP lines.
local racy = require "racy"

local function check(ok, desc, ...)
	print((ok and "ok - " or "not ok - ") .. desc, ...)
end

-- racy.join: a thread runs a function here while this thread waits in pthread_join; it
-- would abort if this thread were still inside the state.
local function entered(tag)
	return racy.join(function(x) return x .. "!" end, tag) == tag .. "!"
end

check(entered("first"), "a thread enters while this one waits in racy.join")

-- The VM's paths that unlock and lock: errors, coroutines, loaders, hooks, callbacks, gc.
local ok, err = pcall(error, { code = 7 })
check(not ok and err.code == 7 and entered("pcall"), "pcall(error) leaves the state")
ok, err = pcall(function() local t = nil return t.x end)
check(not ok and entered("runtime error"), "a runtime error inside pcall leaves the state")
ok, err = xpcall(function() error("deep") end, debug.traceback)
check(not ok and err:find("deep") and err:find("traceback") and entered("xpcall"), "xpcall with debug.traceback")
local co = coroutine.create(function(a)
	local b = coroutine.yield(a + 1)
	local c = coroutine.yield(racy.join(function(x) return x * 2 end, b))
	error("in coroutine " .. c)
end)
local r1 = { coroutine.resume(co, 1) }
local r2 = { coroutine.resume(co, 5) }
local r3 = { coroutine.resume(co, "x") }
check(r1[2] == 2 and r2[2] == 10 and r3[1] == false and tostring(r3[2]):find("in coroutine x") and entered("co"),
	"coroutines: resume, yield, a thread entering from inside one, an error in one")
local f = loadstring(string.dump(function(a) return a * 3 end))
check(f(4) == 12 and entered("dump"), "string.dump and loadstring of the dump")
local parts, k = { "return ", "1 + ", "41" }, 0
f = load(function() k = k + 1 return parts[k] end)
check(f() == 42 and entered("load"), "load with a Lua reader function")
local hooks = 0
debug.sethook(function() hooks = hooks + 1 end, "", 1000)
local s = 0
for i = 1, 100000 do s = s + i end
debug.sethook()
check(hooks > 10 and entered("hook"), "a count hook ran " .. hooks .. " times")
local t = { 5, 3, 9, 1 }
table.sort(t, function(a, b) return a > b end)
local g = ("abc"):gsub("%w", function(c) return c:upper() end)
check(t[1] == 9 and g == "ABC" and entered("callbacks"), "table.sort and gsub with Lua callbacks")
local mt = setmetatable({}, { __index = function(_, key) return key .. "?" end, __add = function() return 3 end })
check(mt.q == "q?" and mt + 1 == 3 and entered("meta"), "metamethods")
local collected = 0
for _ = 1, 50 do
	local p = newproxy(true)
	getmetatable(p).__gc = function() collected = collected + 1 end
end
collectgarbage()
check(collected == 50 and entered("gc"), "__gc metamethods ran during collectgarbage")
local n = 0
for _ = 1, 200 do if entered("again") then n = n + 1 end end
check(n == 200, "200 threads entered one after the other")

check(racy.handoff(function() end, 200) == 400, "racy.handoff: this thread and another take 400 turns calling Lua")
check(racy.states(4, 20) == 4 * 20 * 2000, "racy.states: 4 threads make, use and close 20 states each")

-- At lua_close (the end of the script): a __gc that lets a thread in.
CLOSE_PROXY = newproxy(true)
getmetatable(CLOSE_PROXY).__gc = function()
	check(entered("close"), "a thread entered from a __gc run by lua_close")
end
