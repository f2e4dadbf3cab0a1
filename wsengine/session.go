// The session: one established connection's state, its run loop (serve:
// keepalive, closing handshake, failing) and its teardown. The reading side
// is in read.go, the writing side in write.go.

package wsengine

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

const (
	opPing  = ws.OpPing
	opPong  = ws.OpPong
	opClose = ws.OpClose

	abandonWait   = 250 * time.Millisecond
	failCloseWait = time.Second
)

// session is one established TCP connection.
type session struct {
	c  *Conn
	nc net.Conn
	sc *spillConn // under nc; nil: no write-through
	rb *readBuf   // the reader's source of bytes
	rs *readState // the reader's, between reads
	readOwner
	hdr     [ws.MaxHeaderSize]byte // writeFrame's frame header (writes are serialized)
	server  bool                   // server role: frames out unmasked, frames in must be masked
	inflate *inflater
	deflate *deflater                       // nil: send uncompressed
	flow    func(stop <-chan struct{}) bool // Conn.flow, nil: none
	// recvd is set by the reader on every frame and cleared when a keepalive
	// ping is sent (cheaper than a clock read per frame); waiting is set while
	// the reader waits for the event consumer (flow), when the peer cannot be
	// heard and so is not judged.
	recvd, waiting atomic.Bool
	inOrder        bool // Conn.failInOrder: a violation waits for FailNow

	failGo chan struct{} // FailNow's signal (cap 1)

	// guarded by c.mu
	ctrl        []outFrame
	data        []outFrame
	queued      int
	closeQueued bool
	writing     bool  // a frame is being written (by the writer or a write-through)
	failPending bool  // EventFailPending was emitted; FailNow not called yet
	throughErr  error // a write-through failed: the writer ends with it

	gate        atomic.Pointer[uint32] // shared writes (gate.go); nil: none
	gateRelease func()                 // ShareWrites' release (guarded by c.mu until finish)

	// The writer goroutine runs only while frames are queued (an idle
	// connection has none): wakeWriter starts it, it ends when the queue is
	// empty. Guarded by c.mu.
	writerOn   bool // a writer goroutine is running
	writerDone bool // none may start again: a close frame was written, a write failed, or teardown
	writers    sync.WaitGroup

	stop         chan struct{} // closed at teardown
	closeWritten chan struct{} // closed by the writer after a close frame
	wFail        chan struct{} // closed by the writer when a write failed (wErr)
	rExit        chan struct{}
	wErr         error
	timers       serveTimers
	rRes         readResult
}

func newSession(c *Conn, est *established) *session {
	s := &session{
		c: c, nc: est.nc, rb: newReadBuf(est.nc, est.early), server: c.accepted,
		stop: make(chan struct{}), failGo: make(chan struct{}, 1),
		closeWritten: make(chan struct{}), wFail: make(chan struct{}), rExit: make(chan struct{}),
	}
	s.sc = spillConnOf(est.nc)
	s.fd, s.rRunning = -1, true // serve starts readLoop
	if s.sc != nil {
		s.sc.rc.Control(func(fd uintptr) { s.fd = int(fd) })
	}
	if p := est.deflate; p != nil && s.server {
		// Server role: est.deflate is our response (acceptDeflate). The client's
		// context is kept unless it agreed to client_no_context_takeover; ours
		// is never kept, which deflater does anyway. A window the client
		// limited below 2^15 is honoured by using no back-references at all.
		s.inflate = &inflater{noContext: p.ClientNoContextTakeover}
		s.deflate = &deflater{noBackRefs: p.ServerMaxWindowBits.Defined() && p.ServerMaxWindowBits < 15}
	} else if p != nil {
		s.inflate = &inflater{noContext: p.ServerNoContextTakeover}
		// A window smaller than 2^15 cannot be honoured by compress/flate:
		// then messages go out uncompressed (allowed per message).
		if p.ClientMaxWindowBits <= 1 || p.ClientMaxWindowBits == 15 {
			s.deflate = &deflater{}
		}
	}
	s.flow = c.flow
	s.inOrder = c.failInOrder
	s.rs = s.newReadState()
	return s
}

// waitCloseWritten waits up to d for the writer to write a close frame.
func (s *session) waitCloseWritten(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.closeWritten:
		return true
	case <-s.wFail:
		return false
	case <-t.C:
		return false
	}
}

// serveTimers are serve's keepalive and closing timers (in the session:
// serve's stack stays shallow while it waits). Used by serve only.
// They run on the keepalive clock (clock.go), not the runtime's timers.
type serveTimers struct {
	ping, pong, close    *quietTimer
	pingC, pongC, closeC <-chan time.Time
}

func (t *serveTimers) stop() {
	if t.ping != nil {
		t.ping.Stop()
	}
	if t.pong != nil {
		t.pong.Stop()
	}
	if t.close != nil {
		t.close.Stop()
	}
}

// serve runs the connection until it ends and returns its EventClosed.
// Its cases are handled in methods, so that its frame stays small.
func (s *session) serve() Event {
	go s.readLoop()
	t := &s.timers
	if o := &s.c.opts; o.pingInterval > 0 {
		t.ping = tickQuiet(o.pingInterval)
		t.pingC = t.ping.C
	}
	defer t.stop()
	if s.checkStop() {
		return s.abandoned()
	}
	for {
		select {
		case <-s.rExit:
			return s.readerDone()
		case <-s.wFail:
			return s.finish(false, CloseAbnormal, "write failed: "+s.wErr.Error())
		case <-s.c.kick:
			if s.checkStop() {
				return s.abandoned()
			}
		case <-t.pingC:
			s.ping()
		case <-t.pongC:
			t.pongC = nil
			if !s.recvd.Load() && !s.waiting.Load() {
				return s.finish(false, CloseAbnormal, "pong timeout")
			}
		case <-t.closeC:
			return s.finish(false, CloseAbnormal, "close timeout")
		}
	}
}

// checkStop starts the close timer once Close was called and reports
// whether Abandon was.
func (s *session) checkStop() (abandon bool) {
	uc, ab := s.c.stopped()
	if t := &s.timers; uc && t.closeC == nil {
		t.close = afterQuiet(s.c.opts.closeTimeout)
		t.closeC = t.close.C
	}
	return ab
}

// abandoned ends the connection after Abandon.
func (s *session) abandoned() Event {
	s.waitCloseWritten(abandonWait)
	return s.finish(false, CloseGoingAway, "abandoned")
}

// ping sends a keepalive ping and starts the pong timer.
func (s *session) ping() {
	t := &s.timers
	if t.pongC == nil {
		s.recvd.Store(false) // before the ping: its pong may come at once
		t.pong = afterQuiet(s.c.opts.effectivePongTimeout())
		t.pongC = t.pong.C
	}
	s.c.mu.Lock()
	if s.c.State() == StateOpen {
		s.pushCtrl(outFrame{op: opPing}, false)
	}
	s.c.mu.Unlock()
}

// readerDone ends the connection after the reader stopped: the peer's close
// frame (answered), a protocol violation (failed) or an I/O error.
func (s *session) readerDone() Event {
	o := &s.c.opts
	r := s.rRes
	switch {
	case r.peerClose:
		s.c.mu.Lock()
		if s.c.State() == StateOpen {
			s.c.setState(StateClosing)
		}
		code, reason := r.code, r.reason
		if s.closeQueued && s.c.userClose {
			// We started the closing handshake: report our code
			// and reason (the peer may echo only the code).
			code, reason = s.c.closeCode, s.c.closeReason
		}
		if !s.closeQueued {
			echo := r.code
			if echo == CloseNoStatus {
				echo = 0
			}
			s.pushCtrl(outFrame{op: opClose, p: closePayload(echo, "")}, true)
		}
		s.c.mu.Unlock()
		wait := o.closeTimeout
		if s.timers.close != nil {
			wait = max(wait, time.Second)
		}
		clean := s.waitCloseWritten(wait)
		return s.finish(clean, code, reason)
	case r.fail != nil:
		lwslog.Printf(lwslog.Client, "wsengine: %s: failing connection: %d %s", s.c.target.u, r.fail.Code, r.fail.Reason)
		wait := min(failCloseWait, max(o.closeTimeout, 100*time.Millisecond))
		if s.inOrder {
			if s.awaitFailNow(r.fail) {
				return s.abandoned()
			}
			wait = max(o.closeTimeout, 100*time.Millisecond) // the queued messages go first
		}
		s.c.mu.Lock()
		s.c.setState(StateClosing)
		s.failPending = false
		switch {
		case !s.inOrder:
			s.pushCtrl(outFrame{op: opClose, p: closePayload(r.fail.Code, r.fail.Reason)}, true)
		case !s.closeQueued: // else Close queued the user's close frame meanwhile
			s.pushData(outFrame{op: opClose, p: closePayload(r.fail.Code, r.fail.Reason)})
		}
		s.c.mu.Unlock()
		s.waitCloseWritten(wait)
		return s.finish(false, r.fail.Code, r.fail.Reason)
	default:
		return s.finish(false, CloseAbnormal, r.reason)
	}
}

// awaitFailNow reports the violation ce as EventFailPending, behind the
// events emitted before it, and waits until the consumer has handled those
// (FailNow), Close is called, the writer ends or close_timeout passes. The
// connection stays open meanwhile (the reader has stopped), so handlers can
// still send. It reports whether Abandon was called.
func (s *session) awaitFailNow(ce *CloseError) (abandoned bool) {
	s.c.mu.Lock()
	s.failPending = true
	s.c.mu.Unlock()
	s.c.emit(Event{Type: EventFailPending, Code: ce.Code, Data: []byte(ce.Reason)})
	if uc, ab := s.c.stopped(); uc || ab { // closing already: handlers cannot send
		return ab
	}
	t := time.NewTimer(s.c.opts.closeTimeout)
	defer t.Stop()
	for {
		select {
		case <-s.failGo:
			return false
		case <-t.C:
			lwslog.Printf(lwslog.Client, "wsengine: %s: events before the violation not handled within close_timeout: failing anyway", s.c.target.u)
			return false
		case <-s.wFail:
			return false
		case <-s.c.kick:
			if uc, ab := s.c.stopped(); uc || ab {
				return ab
			}
		}
	}
}

// finish tears the connection down, waits for the reader and the writer
// and returns the EventClosed to emit.
func (s *session) finish(clean bool, code StatusCode, reason string) Event {
	s.nc.Close()
	close(s.stop)
	s.endReadIdle()
	<-s.rExit
	s.c.mu.Lock()
	s.writerDone = true
	s.gateSync()
	s.c.mu.Unlock()
	s.writers.Wait()
	s.c.mu.Lock()
	s.ctrl, s.data, s.queued = nil, nil, 0
	release := s.gateRelease
	s.gateRelease = nil
	s.c.mu.Unlock()
	if release != nil {
		release() // nothing touches the gate any more
	}
	return Event{Type: EventClosed, Clean: clean, Code: code, Data: []byte(reason)}
}
