-- require "verawebsockets.websocket.alias": makes require "websocket" (and its
-- submodules) load the compatible modules, for scripts written for lua-websockets
-- that should run unchanged after this one line.
local map = {
	["websocket"] = "verawebsockets.websocket",
	["websocket.client"] = "verawebsockets.websocket.client",
	["websocket.server"] = "verawebsockets.websocket.server",
	["websocket.client_sync"] = "verawebsockets.websocket.client_sync",
	["websocket.client_copas"] = "verawebsockets.websocket.client_copas",
	["websocket.server_copas"] = "verawebsockets.websocket.server_copas",
}
for name, target in pairs(map) do
	package.preload[name] = function() return require(target) end
end
return require "verawebsockets.websocket"
