-- Must abort under the race interpreter (build/test-race.sh): racy.race starts a
-- thread that calls into this lua_State while this script keeps running Lua.
-- Usage: lua5.1 race.lua push|pcall   (prints "not aborted" if the race went unseen)
local racy = require "racy"
local hits = 0
racy.race(function() hits = hits + 1 end, arg[1] or "push", 3)
local x, t0 = 0, os.clock()
for _ = 1, 200 do -- pure Lua in between: this thread stays inside the state
	for i = 1, 1000000 do x = x + i end
	if os.clock() - t0 > 4 then break end
end
print("not aborted", hits, x)
