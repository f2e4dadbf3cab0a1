-- lua-websockets' API document (API.md, "Client Sync and Copas"): its sync client
-- snippets in the order a script runs them, with the require line changed.
local websocket = require'verawebsockets.websocket'
local client = websocket.client.sync({timeout=2})
-- websocket.client.new is alias to websocket.client.sync

local ok,err = client:connect('ws://localhost:12345','echo')
if not ok then
   print('could not connect',err)
end

local ok,close_was_clean,close_code,close_reason = client:send('hello',websocket.TEXT)

local message,opcode,close_was_clean,close_code,close_reason = client:receive()
print('msg',message,opcode)

local ok = client:send('hello')
if ok then
   print('msg sent')
else
   print('connection closed')
end

local message,opcode = client:receive()
if message then
   print('msg',message,opcode)
else
   print('connection closed')
end

local close_was_clean,close_code,close_reason = client:close(4001,'lost interest')
print('close',close_was_clean,close_code,close_reason)

client:close()
