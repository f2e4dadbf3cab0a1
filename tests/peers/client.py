#!/usr/bin/python3
"""Independent client peer for tests/test-server-peers.lua: Python `websockets` (Debian python3-websockets).

    client.py URL MESSAGE

Connects to URL, prints "ext <the negotiated Sec-WebSocket-Extensions>" ("ext " for
none), sends MESSAGE (text), prints every message it receives as
"text <data>" or "binary <hex>" until it got 2 (the echo, then a broadcast),
closes with 1000 "done" and prints "closed <the server's close code>".
Any failure prints "error <what>" (exit status 1); the whole run is bounded by 10 s
("timeout", exit status 2).
"""
import asyncio, sys
import websockets


async def run(url, message):
    async with websockets.connect(url, open_timeout=5, close_timeout=3, max_size=None) as ws:
        print("ext " + ws.response_headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        await ws.send(message)
        for _ in range(2):
            msg = await ws.recv()
            if isinstance(msg, bytes):
                print("binary " + msg.hex(), flush=True)
            else:
                print("text " + msg, flush=True)
        await ws.close(code=1000, reason="done")
        print("closed %s" % ws.close_code, flush=True)


def main():
    if len(sys.argv) != 3:
        print("usage: client.py URL MESSAGE", file=sys.stderr)
        sys.exit(64)
    try:
        asyncio.run(asyncio.wait_for(run(sys.argv[1], sys.argv[2]), 10))
    except asyncio.TimeoutError:
        print("timeout", flush=True)
        sys.exit(2)
    except Exception as e:  # connection refused, handshake refused, closed early, ...
        print("error %s: %s" % (type(e).__name__, e), flush=True)
        sys.exit(1)


main()
