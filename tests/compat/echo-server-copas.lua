-- lua-websockets' API document (API.md, "Server Copas"), its example as written, with
-- the require line changed and the comma the document lacks after `protocols = {...}`
-- added (without it the example does not compile). The document's example ends at
-- listen(): whoever runs it drives copas (tests/test-compat.lua runs copas.step).
local websocket = require'verawebsockets.websocket'
local config = {
  port = 8080,
  interface = '*',
  protocols = {
    ['echo'] = function(ws)
      while true do
        local message = ws:receive()
        if message then
          ws:send(message)
        else
          ws:close()
          return
        end
      end
    end,
    ['echo-uppercase'] = function(ws)
      while true do
        local message = ws:receive()
        if message then
          ws:send(message:upper())
        else
          ws:close()
          return
        end
      end
    end,
  },
  default = function(ws)
    ws:send('goodbye strange client')
    ws:close()
  end
}
local server = websocket.server.copas.listen(config)
