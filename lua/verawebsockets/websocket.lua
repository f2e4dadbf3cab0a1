-- verawebsockets.websocket: the module table of lua-websockets (require "websocket"),
-- on verawebsockets' engine. Scripts written for lua-websockets change one line:
--   local websocket = require "verawebsockets.websocket"
-- or keep `require "websocket"` after  require "verawebsockets.websocket.alias".
-- See the README's "lua-websockets compatibility" section for what differs.
local core = require "verawebsockets.websocket.core"

return {
	client = require "verawebsockets.websocket.client",
	server = require "verawebsockets.websocket.server",
	CONTINUATION = core.CONTINUATION,
	TEXT = core.TEXT,
	BINARY = core.BINARY,
	CLOSE = core.CLOSE,
	PING = core.PING,
	PONG = core.PONG,
}
