package hub

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// Event is an engine event of connection Conn.
type Event struct {
	Conn uint64
	wsengine.Event
	// Final is set on an EventClosed or EventConnectionError that ends the
	// connection's run for good (it was closed when the event was queued: no
	// reconnect follows); the out-of-process helper tells the proxy.
	Final bool
	src   *conn // the connection, while queued
}

// conn is a registered connection.
type conn struct {
	id     uint64
	cx     *context
	ws     *wsengine.Conn
	server uint64 // the server that accepted it; 0 for a client connection
	// unsettled: from Connect until the event that ends the run (CLOSED, or a
	// final CONNECTION_ERROR) is queued, or until it is freed. The engine marks
	// a connection closed just before it emits that event: Active counts it
	// until then. It changes with context.live (see setUnsettled, settle).
	unsettled atomic.Bool
	// Guarded by cx.mu: its events in the queue, and the call of the
	// consumer that last took one (context.calls, from 1; 0: none taken).
	queued int
	taken  uint64
	// Under direct.mu: the gen of the last rebuild that polled it, and its
	// index in polled then; the ReadReady that last read it (direct.reads);
	// the epoll instance it is in (epollSet.epoch; 0: none), with its
	// descriptor then and that file's device and inode.
	drGen, drSeen, drEp, drDev, drIno uint64
	drIdx                             int
	drFD                              int32
}

// The handle tables. Handles come from monotonic counters and are never reused.
var reg = struct {
	mu       sync.Mutex
	ctxs     map[uint64]*context
	conns    map[uint64]*conn
	servers  map[uint64]*server
	requests map[uint64]*request // HTTP requests waiting for HTTPRespond
}{ctxs: make(map[uint64]*context), conns: make(map[uint64]*conn), servers: make(map[uint64]*server),
	requests: make(map[uint64]*request)}

// Connection, server and HTTP request handles come from one counter: a
// handle names one of them, never two.
var lastCtx, lastConn atomic.Uint64

func lookupContext(id uint64) (*context, error) {
	reg.mu.Lock()
	cx := reg.ctxs[id]
	reg.mu.Unlock()
	if cx == nil {
		return nil, &HandleError{Kind: "context", Handle: id}
	}
	return cx, nil
}

func lookupConn(id uint64) (*conn, error) {
	reg.mu.Lock()
	c := reg.conns[id]
	reg.mu.Unlock()
	if c == nil {
		return nil, &HandleError{Kind: "connection", Handle: id}
	}
	return c, nil
}

// NewContext creates a context with an empty event queue and returns its
// handle (never 0, except after a recovered panic). A protocol violation of
// one of its connections fails it in order (wsengine.Conn.SetFailInOrder):
// its close frame goes out once the consumer has handled the events queued
// before the violation and is back for more (NextEvent, NextEvents), or after
// close_timeout when it does not come back.
func NewContext() (id uint64) { return newCtx(false) }

// NewRelayContext is NewContext for a consumer that forwards the events to
// an application elsewhere (the helper's pump): its queue hands out the
// wsengine.EventFailPending markers (Code, Data: the close code and reason)
// like events, and the consumer calls FailNow when the application is done
// with the events before one.
func NewRelayContext() (id uint64) { return newCtx(true) }

func newCtx(relay bool) (id uint64) {
	defer func() {
		if r := recover(); r != nil {
			lwslog.Printf(lwslog.Err, "verawebsockets: recovered panic: %v\n%s", r, debug.Stack())
			id = 0
		}
	}()
	id = lastCtx.Add(1)
	cx := newContext(id, relay)
	reg.mu.Lock()
	reg.ctxs[id] = cx
	reg.mu.Unlock()
	return id
}

// FreeContext abandons every connection of ctx (they emit nothing more), drops
// its pending events, closes its event pipe and releases blocked NextEvent
// calls. The handle and those of its connections are invalid afterwards.
func FreeContext(ctx uint64) (err error) {
	defer recoverTo(&err)
	reg.mu.Lock()
	cx := reg.ctxs[ctx]
	if cx == nil {
		reg.mu.Unlock()
		return &HandleError{Kind: "context", Handle: ctx}
	}
	delete(reg.ctxs, ctx)
	conns := make([]*conn, 0, len(cx.conns))
	for id, c := range cx.conns {
		delete(reg.conns, id)
		conns = append(conns, c)
	}
	cx.conns = nil
	servers := make([]*server, 0, len(cx.servers))
	for id, sv := range cx.servers {
		delete(reg.servers, id)
		servers = append(servers, sv)
	}
	cx.servers = nil
	reg.mu.Unlock()
	cx.free() // first, so that events emitted while abandoning are dropped
	for _, sv := range servers {
		sv.srv.Abandon()
	}
	for _, c := range conns {
		c.ws.Abandon()
	}
	cx.dr.free()
	return nil
}

// NextEvent returns the oldest pending event of ctx, waiting up to timeout
// (none if <= 0) for one. ok is false on timeout and after Wake. A call that
// finds ctx freed while it waits returns a *HandleError.
func NextEvent(ctx uint64, timeout time.Duration) (ev Event, ok bool, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return Event{}, false, err
	}
	ev, ok, alive := cx.next(timeout)
	if !alive {
		return Event{}, false, &HandleError{Kind: "context", Handle: ctx}
	}
	return ev, ok, nil
}

// NextEvents pops up to len(dst) events of ctx into dst, waiting up to
// timeout (none if <= 0) for the first, as NextEvent. Events after the first
// are taken while the data of all fit in budget bytes, where data of hold
// bytes or more (hold > 0), which the caller does not copy, count nothing. It
// returns the number taken and the number still pending.
func NextEvents(ctx uint64, timeout time.Duration, dst []Event, budget, hold int) (n, left int, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return 0, 0, err
	}
	if len(dst) == 0 {
		return 0, 0, argf("hub: no room for events")
	}
	n, left, alive := cx.nextBatch(timeout, dst, budget, hold)
	if !alive {
		return 0, 0, &HandleError{Kind: "context", Handle: ctx}
	}
	return n, left, nil
}

// Pending returns the number of pending events of ctx.
func Pending(ctx uint64) (n int, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return 0, err
	}
	n, alive := cx.pending()
	if !alive {
		return 0, &HandleError{Kind: "context", Handle: ctx}
	}
	return n, nil
}

// Wake makes every NextEvent blocked on ctx return ok=false at once. If none
// is blocked, the next NextEvent that finds the queue empty returns at once
// instead of waiting (a wake is never lost, and never hides an event).
func Wake(ctx uint64) (err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return err
	}
	if !cx.wake() {
		return &HandleError{Kind: "context", Handle: ctx}
	}
	return nil
}

// EventFD returns the read end of a nonblocking pipe that is readable exactly
// while ctx has pending events. It is created on the first call and closed by
// FreeContext; callers must neither read nor close it.
func EventFD(ctx uint64) (fd int, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return -1, err
	}
	fd, alive, err := cx.eventFD()
	if !alive {
		return -1, &HandleError{Kind: "context", Handle: ctx}
	}
	if err != nil {
		return -1, fmt.Errorf("hub: failed to create event pipe: %w", err)
	}
	return fd, nil
}

// Active returns the number of connections of ctx that are connecting, open
// or closing, or closed with their last event not yet queued (created but
// unconnected and settled ones are not counted: see conn.unsettled), plus
// its listening servers. It does not look at each connection: a wait of a
// context with 1,000 connections asks it for every message.
func Active(ctx uint64) (n int, err error) {
	defer recoverTo(&err)
	reg.mu.Lock()
	cx := reg.ctxs[ctx]
	var servers []*server
	if cx != nil {
		for _, sv := range cx.servers {
			servers = append(servers, sv)
		}
	}
	reg.mu.Unlock()
	if cx == nil {
		return 0, &HandleError{Kind: "context", Handle: ctx}
	}
	for _, sv := range servers {
		if sv.srv.Listening() {
			n++
		}
	}
	return n + int(cx.live.Load()), nil
}

// setUnsettled counts c in Active from now (reg.mu held, c in its context):
// false if it was counted already.
func (c *conn) setUnsettled() bool {
	if !c.unsettled.CompareAndSwap(false, true) {
		return false
	}
	c.cx.live.Add(1)
	return true
}

// settle stops counting c in Active (once).
func (c *conn) settle() {
	if c.unsettled.CompareAndSwap(true, false) {
		c.cx.live.Add(-1)
	}
}

// NewConn creates an unconnected client connection to url in ctx; its events
// go to the queue of ctx. A bad URL is a bad argument (EArg).
func NewConn(ctx uint64, url string) (id uint64, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return 0, err
	}
	cid := lastConn.Add(1)
	c := &conn{id: cid, cx: cx}
	ws, err := wsengine.NewConn(url, c.emit) // no event before Connect: c.ws is set first
	if err != nil {
		return 0, asArg(err)
	}
	ws.SetFlowControl(cx.room)
	ws.SetFailInOrder(true)
	ws.SetHandover(cx.dr.handed)
	c.ws = ws
	reg.mu.Lock()
	if reg.ctxs[ctx] != cx { // freed meanwhile
		reg.mu.Unlock()
		ws.Abandon()
		return 0, &HandleError{Kind: "context", Handle: ctx}
	}
	reg.conns[cid] = c
	cx.conns[cid] = c
	reg.mu.Unlock()
	lwslog.Printf(lwslog.Client, "verawebsockets: conn %d in context %d: %s", cid, ctx, url)
	return cid, nil
}

// emit queues an engine event of c in its context. Events of a connection
// accepted by a server take the libwebsockets server reasons (0, 6, 7, 11).
func (c *conn) emit(ev wsengine.Event) {
	defer func() {
		if r := recover(); r != nil {
			lwslog.Printf(lwslog.Err, "verawebsockets: recovered panic in emit: %v\n%s", r, debug.Stack())
		}
	}()
	var settle func()
	if ev.Type == wsengine.EventClosed || ev.Type == wsengine.EventConnectionError {
		// The run ended for good: no longer active. Done under the queue's lock
		// with the push, so Active never counts it once the event can be read,
		// and never stops counting it before the event is queued.
		settle = func() { // cx.mu held, ev the queue's last
			if c.ws.State() == wsengine.StateClosed {
				c.settle()
				c.cx.q[len(c.cx.q)-1].Final = true
			}
		}
	}
	if ev.Type == wsengine.EventEstablished || ev.Type == wsengine.EventClosed {
		c.cx.dr.dirty.Store(true) // the consumer claims its reading, or drops it
	}
	if c.server != 0 {
		ev.Type = serverEventType(ev.Type)
	}
	if ev.Type == wsengine.EventFailPending {
		c.cx.pushFail(c, Event{Conn: c.id, Event: ev, src: c})
		return
	}
	c.cx.pushThen(Event{Conn: c.id, Event: ev, src: c}, settle)
}

// FailNow fails c now if a protocol violation of its peer waits for the
// events before it to be handled: the relay consumer's answer to an
// EventFailPending it forwarded (see NewRelayContext). Otherwise it does nothing.
func FailNow(c uint64) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	cn.ws.FailNow()
	return nil
}

// SetOption sets one option of c from its text form (see the header).
func SetOption(c uint64, name, value string) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	return asOption(cn.ws.SetOption(name, value))
}

// Check validates the options of c as a whole (loads cert, key and CA files).
func Check(c uint64) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	return asOption(cn.ws.Check())
}

// Connect starts connecting c in the background; the outcome is an event.
func Connect(c uint64) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	reg.mu.Lock() // not counted once FreeConn took it out of its context
	set := reg.conns[c] == cn && cn.setUnsettled()
	reg.mu.Unlock()
	if err := cn.ws.Connect(); err != nil {
		// Counted here and not connecting after all (a connection that was
		// counted already stays counted: it is open, connecting or closing).
		if st := cn.ws.State(); set && st != wsengine.StateConnecting && st != wsengine.StateOpen {
			cn.settle()
		}
		return asArg(err)
	}
	return nil
}

// Send queues one whole message; it takes ownership of p.
func Send(c uint64, op wsengine.OpCode, p []byte) (err error) {
	return send(c, op, p, false)
}

// SendPayload is Send of a buffer from wsengine.NewPayload, which goes back
// to the pool once written: the caller must not use p after the call.
func SendPayload(c uint64, op wsengine.OpCode, p []byte) (err error) {
	return send(c, op, p, true)
}

func send(c uint64, op wsengine.OpCode, p []byte, pooled bool) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	if op != wsengine.OpText && op != wsengine.OpBinary {
		return argf("hub: bad opcode %d (1 text, 2 binary)", op)
	}
	if pooled {
		return cn.ws.SendPayload(op, p)
	}
	return cn.ws.Send(op, p)
}

// Recycle hands the data of ev back to the engine's buffer pool when ev is
// a message (the consumer copied it out and uses it no more).
func Recycle(ev *Event) {
	if pooledData(ev) {
		wsengine.RecyclePayload(ev.Data)
	}
	ev.Data = nil
}

// RecycleTo is Recycle through bin (wsengine.PayloadBin): one lock for many
// when a consumer recycles a batch.
func RecycleTo(bin *wsengine.PayloadBin, ev *Event) {
	if pooledData(ev) {
		bin.Add(ev.Data)
	}
	ev.Data = nil
}

// Pooled reports whether ev's Data may be a pooled buffer (a message's),
// which its consumer hands back (Recycle, or wsengine.RecyclePayload on the
// Data alone) once done with it.
func Pooled(ev *Event) bool { return pooledData(ev) }

// pooledData: ev's Data may be a pooled buffer (a message's).
func pooledData(ev *Event) bool {
	return ev.Type == wsengine.EventReceive || ev.Type == EventServerReceive
}

// ShareWrites is wsengine.Conn.ShareWrites of connection c: another process
// (the out-of-process proxy) may write frames to its current session's
// socket under gate word w.
func ShareWrites(c uint64, w *uint32, gen uint32, maxLen int, release func()) (fd int, err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return -1, err
	}
	return cn.ws.ShareWrites(w, gen, maxLen, release)
}

// TakeOtherWrite is wsengine.Conn.TakeOtherWrite of connection c.
func TakeOtherWrite(c uint64, gen uint32, rest []byte) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	cn.ws.TakeOtherWrite(gen, rest)
	return nil
}

// Ping queues a ping with up to 125 bytes of payload.
func Ping(c uint64, p []byte) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	if len(p) > maxPing {
		return argf("hub: ping payload of %d bytes (at most %d)", len(p), maxPing)
	}
	return cn.ws.Ping(p)
}

// Close starts the closing handshake with code (1000 if 0) and reason (at
// most 123 bytes) and stops reconnecting. Closing a closed connection is no error.
func Close(c uint64, code int, reason string) (err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return err
	}
	if code == 0 {
		code = 1000
	}
	if !sendableCode(code) {
		return argf("hub: bad close code %d", code)
	}
	if len(reason) > maxReason {
		return argf("hub: close reason of %d bytes (at most %d)", len(reason), maxReason)
	}
	return cn.ws.Close(wsengine.StatusCode(code), reason)
}

// sendableCode reports whether an endpoint may send code in a close frame
// (RFC 6455 section 7.4.1: 1004, 1005, 1006 and 1015 are reserved; 7.4.2:
// below 1000 unused, 3000-4999 for libraries and applications).
func sendableCode(code int) bool {
	switch {
	case code < 1000 || code > 4999:
		return false
	case code == 1004 || code == 1005 || code == 1006 || code == 1015:
		return false
	}
	return true
}

// State returns the state of c.
func State(c uint64) (s wsengine.State, err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return wsengine.StateClosed, err
	}
	return cn.ws.State(), nil
}

// Buffered returns the number of bytes queued on c but not yet written.
func Buffered(c uint64) (n int, err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return 0, err
	}
	return cn.ws.Buffered(), nil
}

// Protocol returns the subprotocol the server chose for c ("" if none).
func Protocol(c uint64) (p string, err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return "", err
	}
	return cn.ws.Protocol(), nil
}

// FreeConn abandons c (close 1001 if open, no further events) and invalidates
// its handle. Events already queued for it stay in its context's queue.
func FreeConn(c uint64) (err error) {
	defer recoverTo(&err)
	reg.mu.Lock()
	cn := reg.conns[c]
	if cn != nil {
		delete(reg.conns, c)
		delete(cn.cx.conns, c)
		cn.settle()
	}
	reg.mu.Unlock()
	if cn == nil {
		return &HandleError{Kind: "connection", Handle: c}
	}
	cn.ws.Abandon()
	return nil
}
