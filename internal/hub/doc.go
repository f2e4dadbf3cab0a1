// Package hub keeps the handle tables behind the C ABI (include/verawebsockets.h):
// contexts, each owning an unbounded FIFO event queue, and the wsengine
// connections created in them. capi/ (in process) and cmd/vws-helper (out of
// process) call only this package.
//
// Handles are uint64 values from monotonic counters starting at 1; they are
// never reused, so a stale handle is always detected as unknown. Every function
// is safe for concurrent use, returns within milliseconds (NextEvent waits at
// most its timeout) and turns a panic into an error that Status maps to
// EInternal.
//
//	ctx := hub.NewContext()
//	defer hub.FreeContext(ctx)
//	c, err := hub.NewConn(ctx, "ws://127.0.0.1:8080/")
//	if err != nil { ... }
//	_ = hub.Connect(c)
//	for {
//		ev, ok, err := hub.NextEvent(ctx, time.Second)
//		if err != nil || !ok { break }
//		// ev.Conn, ev.Type, ev.Data ...
//	}
package hub
