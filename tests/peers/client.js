// Independent client peer for tests/test-server-peers.lua: Node `ws` (npm install in tests/peers).
//   node client.js URL MESSAGE
// Connects to URL, prints "ext <the negotiated extensions>" ("ext " for none), sends
// MESSAGE (text), prints every message it receives as
// "text <data>" or "binary <hex>" until it got 2 (the echo, then a broadcast),
// closes with 1000 "done" and prints "closed <the server's close code>".
// Any failure prints "error <what>" (exit status 1); bounded by 10 s ("timeout", exit status 2).
'use strict';
const WebSocket = require('ws');

const [url, message] = process.argv.slice(2);
if (url === undefined || message === undefined) {
  process.stderr.write('usage: node client.js URL MESSAGE\n');
  process.exit(64);
}
const timer = setTimeout(() => { console.log('timeout'); process.exit(2); }, 10000);
const ws = new WebSocket(url, { handshakeTimeout: 5000 });
let got = 0;
ws.on('open', () => {
  console.log('ext ' + ws.extensions);
  ws.send(message);
});
ws.on('message', (data, isBinary) => {
  console.log(isBinary ? 'binary ' + Buffer.from(data).toString('hex') : 'text ' + data.toString());
  if (++got === 2) ws.close(1000, 'done');
});
ws.on('close', (code) => {
  clearTimeout(timer);
  console.log('closed ' + code);
  process.exit(got === 2 ? 0 : 1);
});
ws.on('error', (e) => {
  clearTimeout(timer);
  console.log('error ' + e.message);
  process.exit(1);
});
