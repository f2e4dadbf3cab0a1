// Package wsengine is the WebSocket engine of verawebsockets: a strict RFC 6455
// client and server on github.com/gobwas/ws, with permessage-deflate (RFC 7692),
// TLS, and for clients HTTP CONNECT proxies, redirects, keepalive pings and
// reconnects; a Server accepts connections that are Conns like the clients'.
//
// It is pure Go (no cgo, no Lua). internal/hub drives it for the C ABI of
// include/verawebsockets.h; events are libwebsockets callback reasons.
//
//	c, err := wsengine.NewConn("wss://example.com/feed", func(ev wsengine.Event) {
//		switch ev.Type {
//		case wsengine.EventEstablished: // ev.Data = subprotocol
//		case wsengine.EventReceive:     // ev.Opcode, ev.Data = whole message
//		case wsengine.EventClosed:      // ev.Clean, ev.Code, ev.Data = reason
//		case wsengine.EventConnectionError: // ev.Data = reason, ev.Attempt
//		}
//	})
//	if err != nil { ... }                       // bad URL: *OptionError
//	_ = c.SetOption("protocols", "chat")        // text options, before Connect
//	_ = c.Connect()                             // returns at once
//	_ = c.Send(wsengine.OpText, []byte("hi"))   // once EventEstablished came
//	_ = c.Close(1000, "bye")                    // EventClosed follows
//
// Concurrency: every Conn method is safe for concurrent use and returns at
// once. Each Conn runs two goroutines while connected (the run loop and a
// reader) and a writer while frames are queued: all end when the connection
// ends. An idle connection holds no buffer (see readbuf.go).
// The emit function gets the events of one Conn one at a time, in order.
//
// Servers: NewServer, SetOption, Listen; each accepted connection is announced
// to the server's accept function as a *Conn whose events follow (see server.go).
//
// Reading is strict: protocol violations fail the connection at once with
// close code 1002, invalid UTF-8 (checked incrementally, across frames) with
// 1007, and messages over max_message_size with 1009 (checked on frame
// headers, before the payload is read).
package wsengine
