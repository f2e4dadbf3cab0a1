package wsengine

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

// Conn is one WebSocket connection: a client made by NewConn, or a connection
// a Server accepted. All methods are safe for concurrent use and return at
// once; the connection runs in goroutines of its own (started by Connect, or
// by the server for accepted ones) that end when it is closed.
type Conn struct {
	target *target

	emitMu    sync.Mutex // serializes emit; guards abandoned
	emitFn    func(Event)
	abandoned bool

	mu          sync.Mutex
	opts        options
	checked     bool
	protocol    string
	sess        *session           // while open or closing
	cancelDial  context.CancelFunc // while dialing
	kick        chan struct{}      // wakes the running goroutine (cap 1)
	userClose   bool               // Close was called for the current run
	abandon     bool               // Abandon was called
	running     bool               // a run goroutine is active
	closedSent  bool               // the last event of the run was EventClosed
	runDone     chan struct{}      // closed when the run goroutine returns
	closeCode   StatusCode
	closeReason string
	flow        func(stop <-chan struct{}) bool // see SetFlowControl
	failInOrder bool                            // see SetFailInOrder
	handover    func()                          // see SetHandover

	accepted bool        // accepted by a Server (server role); never dials
	uri      string      // accepted: the request URI of the opening handshake
	request  [][2]string // accepted: its request headers (set before the Conn is shared, then read-only)
	response [][2]string // client: the 101's headers of the last connect (under mu)
	peer     string      // accepted: the client's address
	peerCert string      // accepted: the subject of its verified client certificate, or ""

	// state (a State) is written under mu (setState) and read without it
	// (State): a consumer asks for every event, and taking mu (on the cache
	// line of emitMu, which the reading goroutine takes for every event) made
	// the two threads contend. Last in the struct, away from both.
	state atomic.Int32
}

// setState sets the connection's state; c.mu is held.
func (c *Conn) setState(st State) {
	c.state.Store(int32(st))
}

// NewConn parses rawURL (ws:// or wss://) and returns a Conn in StateCreated.
// emit receives the events of the connection, one at a time and in order,
// from the engine's goroutines; it must not block for long and must not call
// Abandon. It is never called after Abandon returns.
func NewConn(rawURL string, emit func(Event)) (*Conn, error) {
	t, err := parseTarget(rawURL)
	if err != nil {
		return nil, err
	}
	if emit == nil {
		emit = func(Event) {}
	}
	return &Conn{target: t, emitFn: emit, opts: defaultOptions(), kick: make(chan struct{}, 1)}, nil
}

// SetFlowControl sets wait, which the connection's reader calls after each
// message or pong event it emits: wait may block until the consumer of the
// events has room (the reader reads nothing meanwhile, so the peer is slowed
// down by TCP flow control), must return when stop is closed, and reports
// whether it blocked. Set it before Connect (for an accepted connection, in
// the server's AcceptFunc).
func (c *Conn) SetFlowControl(wait func(stop <-chan struct{}) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flow = wait
}

// SetFailInOrder makes a protocol violation of the peer (close code 1002,
// 1007 or 1009) fail the connection in order with the events emitted before
// it. Instead of sending its close frame at once, the connection reads no
// more, emits EventFailPending as its reader's last event and stays open, so
// that the handlers of the earlier events can still send, until FailNow,
// Close or Abandon is called or close_timeout passes; then its close frame
// goes out behind the messages queued so far (not ahead of them, as without
// it). The consumer of the events calls FailNow when it reaches
// EventFailPending, having handled what came before. Set it before Connect
// (for an accepted connection, in the server's AcceptFunc).
func (c *Conn) SetFailInOrder(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failInOrder = on
}

// FailNow fails the connection whose EventFailPending its consumer reached
// (see SetFailInOrder). It does nothing unless such a failure is pending, so
// a late call never touches a later connection of the same Conn that has no
// violation pending. It returns at once.
func (c *Conn) FailNow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sess; s != nil && s.failPending {
		s.failPending = false
		select {
		case s.failGo <- struct{}{}:
		default:
		}
	}
}

// SetOption sets one option from its text form (names and syntax as in
// include/verawebsockets.h). It fails with *OptionError for an unknown name
// or a bad value, and with ErrBusy once Connect was called.
func (c *Conn) SetOption(name, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State() != StateCreated {
		return ErrBusy
	}
	c.checked = false
	o := c.opts // a rejected value leaves the option as it was
	if err := o.set(name, value); err != nil {
		return err
	}
	c.opts = o
	return nil
}

// Check validates the options as a whole: it loads the client certificate
// and key and the CA file, so that their errors surface before Connect.
func (c *Conn) Check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkLocked()
}

func (c *Conn) checkLocked() error {
	if c.checked {
		return nil
	}
	if err := c.opts.check(); err != nil {
		return err
	}
	c.checked = true
	return nil
}

// Connect starts connecting in the background. The outcome is reported as
// EventEstablished or EventConnectionError. It fails with ErrBusy while
// connecting, open or closing.
func (c *Conn) Connect() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abandon {
		return ErrNotOpen
	}
	if c.accepted {
		return ErrAccepted
	}
	if c.running || (c.State() != StateCreated && c.State() != StateClosed) {
		return ErrBusy
	}
	if err := c.checkLocked(); err != nil {
		return err
	}
	c.setState(StateConnecting)
	c.userClose = false
	c.closedSent = false
	c.protocol = ""
	c.running = true
	prev := c.runDone
	c.runDone = make(chan struct{})
	select { // drop a stale wake-up
	case <-c.kick:
	default:
	}
	go c.run(c.runDone, prev)
	return nil
}

// Send queues one whole message for sending and returns at once; the Conn
// takes ownership of p (it is masked in place). It fails with ErrNotOpen
// unless open, ErrTooBig over max_message_size, ErrQueueFull when the queued
// bytes would exceed max_send_queue, and *OptionError for a bad opcode or a
// text message that is not valid UTF-8.
func (c *Conn) Send(op OpCode, p []byte) error {
	if op != OpText && op != OpBinary {
		return &OptionError{Name: "opcode", Msg: "must be 1 (text) or 2 (binary)"}
	}
	return c.queue(op, p, true, false)
}

// SendPayload is Send of a buffer from NewPayload, which goes back to the
// pool once written (or is left to the garbage collector): the caller must
// not use p after the call, even when it fails.
func (c *Conn) SendPayload(op OpCode, p []byte) error {
	if op != OpText && op != OpBinary {
		return &OptionError{Name: "opcode", Msg: "must be 1 (text) or 2 (binary)"}
	}
	return c.queue(op, p, true, true)
}

// queue queues one message; checkText: check that text is valid UTF-8
// (Server.Broadcast checks once for all its clients).
// A message of at most writeThroughMax bytes that finds nothing queued is
// written on the caller's goroutine (see session.writeThrough).
func (c *Conn) queue(op OpCode, p []byte, checkText, recycle bool) error {
	c.mu.Lock()
	if c.State() != StateOpen || c.sess == nil {
		c.mu.Unlock()
		return ErrNotOpen
	}
	if int64(len(p)) > c.opts.maxMessageSize {
		c.mu.Unlock()
		return ErrTooBig
	}
	if c.sess.queued+len(p) > c.opts.maxSendQueue {
		c.mu.Unlock()
		return ErrQueueFull
	}
	if checkText && op == OpText && !utf8.Valid(p) {
		c.mu.Unlock()
		return &OptionError{Name: "text", Msg: "message is not valid UTF-8 (send it as binary)"}
	}
	f := outFrame{op: opFor(op), p: p, data: true, recycle: recycle && len(p) <= 1<<payloadMaxShift}
	done, drained := c.sess.writeThrough(f)
	if !done {
		c.sess.pushData(f)
	}
	c.mu.Unlock()
	if drained {
		c.emit(Event{Type: EventWriteable})
	}
	return nil
}

// Ping queues a ping with up to 125 bytes of payload (copied).
func (c *Conn) Ping(p []byte) error {
	if len(p) > maxControlPayload {
		return &OptionError{Name: "ping", Msg: "payload over 125 bytes"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State() != StateOpen || c.sess == nil {
		return ErrNotOpen
	}
	c.sess.pushCtrl(outFrame{op: opPing, p: append([]byte(nil), p...)}, false)
	return nil
}

// Close starts the closing handshake with code (1000 if 0) and reason (at
// most 123 bytes) and stops reconnecting; an EventClosed follows. On a
// connecting Conn it cancels the attempt. Closing a closed Conn is a no-op.
func (c *Conn) Close(code StatusCode, reason string) error {
	if code == 0 {
		code = CloseNormal
	}
	if !ValidCloseCode(code) {
		return &OptionError{Name: "close code", Msg: "not a valid close code (1000-1003, 1007-1014, 3000-4999)"}
	}
	if len(reason) > maxCloseReasonLength {
		return &OptionError{Name: "close reason", Msg: "over 123 bytes"}
	}
	if !utf8.ValidString(reason) {
		return &OptionError{Name: "close reason", Msg: "not valid UTF-8"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.State() {
	case StateCreated:
		c.setState(StateClosed)
		return nil
	case StateClosed, StateClosing:
		c.userClose = true
		return nil
	}
	c.userClose = true
	c.closeCode, c.closeReason = code, reason
	if c.State() == StateOpen && c.sess != nil {
		c.setState(StateClosing)
		c.sess.pushData(outFrame{op: opClose, p: closePayload(code, reason)})
	} else if c.cancelDial != nil {
		c.cancelDial()
	}
	c.wake()
	return nil
}

// Abandon closes the connection quickly (close code 1001 if open, without
// waiting for the peer) and stops reconnecting. No event is emitted after
// Abandon returns; the goroutines of the Conn end shortly after.
func (c *Conn) Abandon() {
	c.emitMu.Lock()
	c.abandoned = true
	c.emitMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abandon = true
	c.userClose = true
	switch c.State() {
	case StateCreated:
		c.setState(StateClosed)
	case StateOpen:
		if c.sess != nil {
			c.setState(StateClosing)
			c.sess.pushCtrl(outFrame{op: opClose, p: closePayload(CloseGoingAway, "")}, true)
		}
	}
	if c.cancelDial != nil {
		c.cancelDial()
	}
	c.wake()
}

// State returns the current state.
func (c *Conn) State() State {
	return State(c.state.Load())
}

// Buffered returns the number of message bytes queued but not yet written.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return 0
	}
	return c.sess.queued
}

// Protocol returns the subprotocol chosen by the server ("" if none).
func (c *Conn) Protocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.protocol
}

// wake signals the run goroutine; c.mu is held.
func (c *Conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// emit delivers ev unless the Conn was abandoned.
func (c *Conn) emit(ev Event) {
	c.emitMu.Lock()
	defer c.emitMu.Unlock()
	if !c.abandoned {
		c.emitFn(ev)
	}
}

// stopped reports whether Close or Abandon was called for this run.
func (c *Conn) stopped() (userClose, abandon bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userClose, c.abandon
}

// run dials, serves and reconnects until the connection ends for good.
// It first waits for the previous run (prev) to return, so that the events
// of two runs never interleave.
func (c *Conn) run(done, prev chan struct{}) {
	defer close(done)
	if prev != nil {
		<-prev
	}
	attempt := 0
	for {
		attempt++
		ctx, cancel := context.WithCancel(context.Background())
		c.mu.Lock()
		if c.userClose || c.abandon {
			c.mu.Unlock()
			cancel()
			c.finishRun(attempt, "connect cancelled")
			return
		}
		c.cancelDial = cancel
		c.mu.Unlock()

		est, err := c.dialAside(ctx, c.target)
		cancel()

		c.mu.Lock()
		c.cancelDial = nil
		if err == nil && (c.userClose || c.abandon) {
			est.nc.Close()
			c.mu.Unlock()
			c.finishRun(attempt, "connect cancelled")
			return
		}
		if err != nil {
			if c.userClose || c.abandon {
				c.mu.Unlock()
				c.finishRun(attempt, "connect cancelled")
				return
			}
			retry := c.opts.reconnect != nil && (c.opts.reconnect.maxAttempts == 0 || attempt < c.opts.reconnect.maxAttempts)
			if !retry {
				c.setState(StateClosed)
				c.running = false
			}
			c.mu.Unlock()
			lwslog.Printf(lwslog.Client, "wsengine: %s: attempt %d failed: %v", c.target.u, attempt, err)
			c.emit(Event{Type: EventConnectionError, Attempt: attempt, Data: []byte(err.Error())})
			c.mu.Lock()
			c.closedSent = false
			c.mu.Unlock()
			if !retry || !c.sleep(attempt) {
				if retry {
					c.finishRun(attempt, "connect cancelled")
				}
				return
			}
			continue
		}
		if !c.runSession(est, Event{Type: EventEstablished, Attempt: attempt, Data: []byte(est.protocol)}) {
			return
		}
		attempt = 0
		if !c.sleep(1) {
			c.finishRun(attempt, "")
			return
		}
	}
}

// dialAside runs dial on a goroutine of its own and waits for it: the deep
// stack of a TLS and HTTP handshake grows that goroutine's, not the one that
// then serves the connection for its whole life.
func (c *Conn) dialAside(ctx context.Context, t *target) (*established, error) {
	type result struct {
		est *established
		err error
	}
	ch := make(chan result, 1)
	go func() {
		est, err := c.dial(ctx, t)
		ch <- result{est, err}
	}()
	r := <-ch
	return r.est, r.err
}

// runSession runs one established connection (c.mu held on entry, released):
// it emits opened, serves until the connection ends, emits its EventClosed
// and reports whether to reconnect (never for an accepted connection, whose
// options have no reconnect policy).
// Its stack stays shallow while the connection is idle (the parts before and
// after serve are methods of their own): an idle goroutine's stack shrinks
// to 4 KiB only when less than about 1.2 KiB of it is in use.
func (c *Conn) runSession(est *established, opened Event) (retry bool) {
	s := c.openSession(est, &opened)
	ev := s.serve()
	return c.closeSession(&ev)
}

// openSession starts the session of est (c.mu held on entry, released) and emits opened.
func (c *Conn) openSession(est *established, opened *Event) *session {
	if est.answer != nil {
		// The 101, under c.mu: no frame (a broadcast's write-through) can
		// come before it, and none is refused for want of a session after it.
		if err := est.answer.Flush(); err != nil {
			lwslog.Printf(lwslog.Info, "wsengine: %s: writing the 101 failed: %v", c.target.u, err)
		}
		est.nc.SetWriteDeadline(time.Time{})
	}
	s := newSession(c, est)
	c.sess = s
	if !c.accepted {
		c.response = est.response
	}
	c.setState(StateOpen)
	c.protocol = est.protocol
	c.mu.Unlock()
	lwslog.Printf(lwslog.Client, "wsengine: %s: established (protocol %q)", c.target.u, est.protocol)
	c.emit(*opened)
	sessionOpened()
	return s
}

// closeSession ends the session that serve ended with ev: it emits ev and
// reports whether to reconnect.
func (c *Conn) closeSession(ev *Event) (retry bool) {
	sessionClosed()
	c.mu.Lock()
	c.sess = nil
	retry = !ev.Clean && c.opts.reconnect != nil && !c.userClose && !c.abandon
	if retry {
		c.setState(StateConnecting)
	} else {
		c.setState(StateClosed)
		c.running = false
	}
	c.closedSent = true
	c.mu.Unlock()
	lwslog.Printf(lwslog.Client, "wsengine: %s: closed clean=%v code=%d %q", c.target.u, ev.Clean, ev.Code, ev.Data)
	c.emit(*ev)
	return retry
}

// finishRun ends a run stopped by Close or Abandon while connecting.
func (c *Conn) finishRun(attempt int, reason string) {
	c.mu.Lock()
	c.setState(StateClosed)
	c.running = false
	sent := c.closedSent
	c.closedSent = true
	c.mu.Unlock()
	if !sent {
		c.emit(Event{Type: EventClosed, Code: CloseAbnormal, Data: []byte(reason)})
	}
}

// sleep waits before reconnect attempt n+1; false if Close/Abandon came first.
func (c *Conn) sleep(n int) bool {
	d := c.opts.reconnect.delay(n, rand.Float64())
	lwslog.Printf(lwslog.Client, "wsengine: %s: reconnecting in %v", c.target.u, d)
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if uc, ab := c.stopped(); uc || ab {
			return false
		}
		select {
		case <-t.C:
			uc, ab := c.stopped()
			return !uc && !ab
		case <-c.kick:
		}
	}
}
