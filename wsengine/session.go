package wsengine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

const (
	opPing  = ws.OpPing
	opPong  = ws.OpPong
	opClose = ws.OpClose

	readChunk     = 64 << 10
	compressMin   = 64 // messages shorter than this are sent uncompressed
	abandonWait   = 250 * time.Millisecond
	failCloseWait = time.Second
)

func opFor(op OpCode) ws.OpCode {
	if op == OpText {
		return ws.OpText
	}
	return ws.OpBinary
}

// outFrame is one frame waiting for the writer.
type outFrame struct {
	op    ws.OpCode
	p     []byte
	data  bool // a message counted in queued
	spill int  // not a frame: the rest of a write-through (bytes counted in queued) to flush
}

// size is what f counts in queued.
func (f outFrame) size() int {
	if f.spill > 0 {
		return f.spill
	}
	return len(f.p)
}

// readResult is why the reader stopped.
type readResult struct {
	peerClose bool
	code      int
	reason    string
	fail      *CloseError // protocol violation: fail with this code
}

// session is one established TCP connection.
type session struct {
	c       *Conn
	nc      net.Conn
	sc      *spillConn // under nc; nil: no write-through
	br      *bufio.Reader
	bw      *bufio.Writer
	server  bool // server role: frames out unmasked, frames in must be masked
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

	wWake        chan struct{} // wakes the writer (cap 1)
	stop         chan struct{} // closed at teardown
	closeWritten chan struct{} // closed by the writer after a close frame
	wExit, rExit chan struct{}
	wErr         error
	rRes         readResult
}

func newSession(c *Conn, est *established) *session {
	s := &session{
		c: c, nc: est.nc, br: est.br, bw: bufio.NewWriterSize(est.nc, 16<<10), server: c.accepted,
		wWake: make(chan struct{}, 1), stop: make(chan struct{}), failGo: make(chan struct{}, 1),
		closeWritten: make(chan struct{}), wExit: make(chan struct{}), rExit: make(chan struct{}),
	}
	s.sc = spillConnOf(est.nc)
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
	return s
}

// heard marks that something arrived from the peer.
func (s *session) heard() {
	if !s.recvd.Load() {
		s.recvd.Store(true)
	}
}

// yield lets the event consumer catch up (Conn.SetFlowControl).
func (s *session) yield() {
	if s.flow == nil {
		return
	}
	s.waiting.Store(true)
	s.flow(s.stop)
	s.waiting.Store(false)
}

// pushData appends a message (or the user's close frame) to the data queue;
// c.mu is held.
func (s *session) pushData(f outFrame) {
	if f.op == opClose {
		s.closeQueued = true
	}
	if f.data {
		s.queued += len(f.p)
	}
	s.data = append(s.data, f)
	s.wakeWriter()
}

// pushCtrl queues a control frame ahead of the data; an urgent close frame
// goes first and drops the queued messages. c.mu is held.
func (s *session) pushCtrl(f outFrame, urgent bool) {
	if urgent {
		s.ctrl = append([]outFrame{f}, s.ctrl...)
		s.data, s.queued = nil, 0
	} else {
		s.ctrl = append(s.ctrl, f)
	}
	if f.op == opClose {
		s.closeQueued = true
	}
	s.wakeWriter()
}

func (s *session) wakeWriter() {
	select {
	case s.wWake <- struct{}{}:
	default:
	}
}

// pop takes the next frame for the writer and marks it writing; none while a
// write-through is in progress (it wakes the writer when it is done). err is
// the failure of a write-through.
func (s *session) pop() (f outFrame, ok bool, err error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.throughErr != nil {
		return outFrame{}, false, s.throughErr
	}
	if s.writing {
		return outFrame{}, false, nil
	}
	if len(s.ctrl) > 0 {
		f = s.ctrl[0]
		s.ctrl = s.ctrl[1:]
	} else if len(s.data) > 0 {
		f = s.data[0]
		s.data[0] = outFrame{}
		s.data = s.data[1:]
	} else {
		return outFrame{}, false, nil
	}
	s.writing = true
	return f, true, nil
}

// writeThrough writes the message f on the caller's goroutine when nothing
// is queued or being written and it is at most writeThroughMax bytes; what
// the socket does not take at once is left to the writer. c.mu is held on
// entry and on return (released during the write). done is false when f
// must be queued instead; drained reports a writeable event to emit.
func (s *session) writeThrough(f outFrame) (done, drained bool) {
	if s.sc == nil || len(f.p) > writeThroughMax || s.writing || s.throughErr != nil ||
		len(s.ctrl) > 0 || len(s.data) > 0 || s.closeQueued {
		return false, false
	}
	s.writing = true
	s.queued += len(f.p)
	s.c.mu.Unlock()
	s.sc.nonblock.Store(true)
	err := s.writeFrame(f)
	s.sc.nonblock.Store(false)
	spill := s.sc.spilled()
	s.c.mu.Lock()
	s.writing = false
	s.queued = max(s.queued-len(f.p), 0) // teardown may have reset it meanwhile
	switch {
	case err != nil:
		s.throughErr = err
		s.wakeWriter()
		return true, false
	case spill > 0:
		s.queued += spill
		s.data = append([]outFrame{{data: true, spill: spill}}, s.data...)
		s.wakeWriter()
		return true, false
	case len(s.ctrl) > 0 || len(s.data) > 0:
		s.wakeWriter()
	}
	return true, s.queued == 0 && s.c.opts.writeableEvents
}

// writeLoop writes queued frames in order until a close frame is written,
// a write fails, or the session stops.
func (s *session) writeLoop() {
	defer close(s.wExit)
	for {
		f, ok, err := s.pop()
		if err != nil {
			s.wErr = err
			return
		}
		if !ok {
			select {
			case <-s.wWake:
				continue
			case <-s.stop:
				return
			}
		}
		if f.spill > 0 {
			err = s.sc.flush()
		} else {
			err = s.writeFrame(f)
		}
		s.c.mu.Lock()
		s.writing = false
		drained := false
		if f.data {
			s.queued -= f.size()
			if s.queued < 0 {
				s.queued = 0
			}
			drained = s.queued == 0 && len(s.data) == 0 && s.c.opts.writeableEvents && err == nil
		}
		s.c.mu.Unlock()
		if drained {
			s.c.emit(Event{Type: EventWriteable})
		}
		if err != nil {
			s.wErr = err
			return
		}
		if f.op == opClose {
			close(s.closeWritten)
			return
		}
	}
}

// writeFrame writes f as one frame, masked unless we are the server (a
// server never changes f.p, so one buffer may be queued on many connections).
func (s *session) writeFrame(f outFrame) error {
	p := f.p
	h := ws.Header{Fin: true, OpCode: f.op, Masked: !s.server}
	if h.Masked {
		h.Mask = ws.NewMask()
	}
	if f.data && s.deflate != nil && len(p) >= compressMin {
		z, err := s.deflate.deflate(p)
		if err != nil {
			return err
		}
		p = z
		h.Rsv = ws.Rsv(true, false, false)
	}
	h.Length = int64(len(p))
	if lwslog.Enabled(lwslog.Parser) {
		lwslog.Printf(lwslog.Parser, "wsengine: send op=%d len=%d rsv=%d", h.OpCode, h.Length, h.Rsv)
	}
	if err := ws.WriteHeader(s.bw, h); err != nil {
		return err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	if _, err := s.bw.Write(p); err != nil {
		return err
	}
	return s.bw.Flush()
}

// readLoop reads frames until the peer's close frame, a protocol violation
// or an I/O error.
func (s *session) readLoop() {
	defer close(s.rExit)
	s.rRes = s.read()
}

func failResult(ce *CloseError) readResult { return readResult{fail: ce} }

func ioResult(err error) readResult {
	reason := "Peer hung up"
	if !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		reason = "read failed: " + err.Error()
	}
	return readResult{code: CloseAbnormal, reason: reason}
}

func (s *session) read() readResult {
	o := &s.c.opts
	hbuf := make([]byte, 2, ws.MaxHeaderSize-2)
	st := frameState{deflate: s.inflate != nil, maxSize: o.maxMessageSize, server: s.server}
	var (
		msg        []byte
		msgOp      ws.OpCode
		compressed bool
		text       utf8Validator
		zbuf       []byte // compressed payload as it arrives
		inflated   int    // bytes of s.inflate.out validated so far
	)
	if s.inflate != nil {
		defer s.inflate.abort() // a message left open: stop its worker
	}
	inflateFail := func(err error) readResult {
		if errors.Is(err, errTooBig) {
			return failResult(&CloseError{Code: CloseMessageTooBig, Reason: fmt.Sprintf("message over max_message_size (%d bytes)", o.maxMessageSize)})
		}
		return failResult(&CloseError{Code: CloseInvalidPayload, Reason: "invalid compressed data"})
	}
	invalidText := func() readResult {
		return failResult(&CloseError{Code: CloseInvalidPayload, Reason: "invalid UTF-8 in text message"})
	}
	for {
		h, err := ws.ReadHeaderBuffer(s.br, hbuf)
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				return failResult(&CloseError{Code: CloseProtocolError, Reason: "bad payload length"})
			}
			return ioResult(err)
		}
		if lwslog.Enabled(lwslog.Parser) {
			lwslog.Printf(lwslog.Parser, "wsengine: recv op=%d fin=%v len=%d rsv=%d", h.OpCode, h.Fin, h.Length, h.Rsv)
		}
		if ce := checkHeader(h, &st); ce != nil {
			return failResult(ce)
		}
		s.heard()
		if h.OpCode.IsControl() {
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(s.br, p); err != nil {
				return ioResult(err)
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			s.heard()
			switch h.OpCode {
			case ws.OpPing:
				s.c.mu.Lock()
				s.pushCtrl(outFrame{op: opPong, p: p}, false)
				s.c.mu.Unlock()
			case ws.OpPong:
				if o.pongEvents {
					s.c.emit(Event{Type: EventReceivePong, Data: p})
					s.yield()
				}
			case ws.OpClose:
				code, reason, ce := parseClosePayload(p)
				if ce != nil {
					return failResult(ce)
				}
				return readResult{peerClose: true, code: code, reason: reason}
			}
			continue
		}
		if h.OpCode != ws.OpContinuation {
			msgOp, compressed, msg = h.OpCode, h.Rsv&0x4 != 0, nil
			text.Reset()
			st.inMessage, st.msgLen = true, 0
			if compressed {
				if err := s.inflate.begin(o.maxMessageSize); err != nil {
					return inflateFail(err)
				}
				inflated = 0
			}
		}
		for n := h.Length; compressed && n > 0; {
			// Inflate what has arrived and validate the output so far: an
			// invalid byte fails the connection before the message ends.
			if zbuf == nil {
				zbuf = make([]byte, readChunk)
			}
			m, err := s.br.Read(zbuf[:min(n, readChunk)])
			if m == 0 {
				if err == nil {
					err = io.ErrNoProgress
				}
				return ioResult(err)
			}
			s.heard()
			if h.Masked {
				ws.Cipher(zbuf[:m], h.Mask, int(h.Length-n))
			}
			if err := s.inflate.feed(zbuf[:m]); err != nil {
				return inflateFail(err)
			}
			if out := s.inflate.out; msgOp == ws.OpText && inflated < len(out) {
				if !text.Write(out[inflated:]) {
					return invalidText()
				}
				inflated = len(out)
			}
			n -= int64(m)
		}
		for n := h.Length; !compressed && n > 0; {
			k := int(min(n, readChunk))
			l := len(msg)
			msg = slices.Grow(msg, k)[:l+k]
			// Read what has arrived, not the whole chunk: text is validated as
			// it streams in, so an invalid byte fails the connection at once.
			m, err := s.br.Read(msg[l:])
			msg = msg[:l+m]
			if m == 0 {
				if err == nil {
					err = io.ErrNoProgress
				}
				return ioResult(err)
			}
			if h.Masked {
				ws.Cipher(msg[l:], h.Mask, int(h.Length-n))
			}
			s.heard()
			if msgOp == ws.OpText && !compressed && !text.Write(msg[l:]) {
				return failResult(&CloseError{Code: CloseInvalidPayload, Reason: "invalid UTF-8 in text message"})
			}
			n -= int64(m)
		}
		st.msgLen += h.Length
		if !h.Fin {
			continue
		}
		st.inMessage = false
		if compressed {
			out, err := s.inflate.finish()
			if err != nil {
				return inflateFail(err)
			}
			msg = out
			if msgOp == ws.OpText && !(text.Write(msg[inflated:]) && text.Complete()) {
				return invalidText()
			}
		} else if msgOp == ws.OpText && !text.Complete() {
			return invalidText()
		}
		if msg == nil {
			msg = []byte{}
		}
		op := OpBinary
		if msgOp == ws.OpText {
			op = OpText
		}
		s.c.emit(Event{Type: EventReceive, Opcode: op, Data: msg})
		msg = nil
		s.yield()
	}
}

// waitCloseWritten waits up to d for the writer to write a close frame.
func (s *session) waitCloseWritten(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.closeWritten:
		return true
	case <-s.wExit:
		select {
		case <-s.closeWritten:
			return true
		default:
			return false
		}
	case <-t.C:
		return false
	}
}

// serve runs the connection until it ends and returns its EventClosed.
func (s *session) serve() Event {
	o := &s.c.opts
	go s.readLoop()
	go s.writeLoop()

	var pingC, pongC, closeC <-chan time.Time
	if o.pingInterval > 0 {
		t := time.NewTicker(o.pingInterval)
		defer t.Stop()
		pingC = t.C
	}
	var pongT, closeT *time.Timer
	defer func() {
		if pongT != nil {
			pongT.Stop()
		}
		if closeT != nil {
			closeT.Stop()
		}
	}()
	rExit, wExit := s.rExit, s.wExit
	kick := s.c.kick
	checkStop := func() (abandon bool) {
		uc, ab := s.c.stopped()
		if uc && closeC == nil {
			closeT = time.NewTimer(o.closeTimeout)
			closeC = closeT.C
		}
		return ab
	}
	if checkStop() {
		s.waitCloseWritten(abandonWait)
		return s.finish(false, CloseGoingAway, "abandoned")
	}
	for {
		select {
		case <-rExit:
			rExit = nil
			r := s.rRes
			switch {
			case r.peerClose:
				s.c.mu.Lock()
				if s.c.state == StateOpen {
					s.c.state = StateClosing
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
				if closeT != nil {
					wait = max(wait, time.Second)
				}
				clean := s.waitCloseWritten(wait)
				return s.finish(clean, code, reason)
			case r.fail != nil:
				lwslog.Printf(lwslog.Client, "wsengine: %s: failing connection: %d %s", s.c.target.u, r.fail.Code, r.fail.Reason)
				wait := min(failCloseWait, max(o.closeTimeout, 100*time.Millisecond))
				if s.inOrder {
					if s.awaitFailNow(r.fail) {
						s.waitCloseWritten(abandonWait)
						return s.finish(false, CloseGoingAway, "abandoned")
					}
					wait = max(o.closeTimeout, 100*time.Millisecond) // the queued messages go first
				}
				s.c.mu.Lock()
				s.c.state = StateClosing
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
		case <-wExit:
			wExit = nil
			if s.wErr != nil {
				return s.finish(false, CloseAbnormal, "write failed: "+s.wErr.Error())
			}
		case <-kick:
			if checkStop() {
				s.waitCloseWritten(abandonWait)
				return s.finish(false, CloseGoingAway, "abandoned")
			}
		case <-pingC:
			if pongC == nil {
				s.recvd.Store(false) // before the ping: its pong may come at once
				pongT = time.NewTimer(o.effectivePongTimeout())
				pongC = pongT.C
			}
			s.c.mu.Lock()
			if s.c.state == StateOpen {
				s.pushCtrl(outFrame{op: opPing}, false)
			}
			s.c.mu.Unlock()
		case <-pongC:
			pongC = nil
			if !s.recvd.Load() && !s.waiting.Load() {
				return s.finish(false, CloseAbnormal, "pong timeout")
			}
		case <-closeC:
			return s.finish(false, CloseAbnormal, "close timeout")
		}
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
		case <-s.wExit:
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
func (s *session) finish(clean bool, code int, reason string) Event {
	s.nc.Close()
	close(s.stop)
	<-s.rExit
	<-s.wExit
	s.c.mu.Lock()
	s.ctrl, s.data, s.queued = nil, nil, 0
	s.c.mu.Unlock()
	return Event{Type: EventClosed, Clean: clean, Code: code, Data: []byte(reason)}
}
