// The session's reading side: the read loop, frame and message handling
// (control frames, fragments, permessage-deflate, UTF-8 validation).

package wsengine

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"syscall"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

const readChunk = 64 << 10

// readResult is why the reader stopped.
type readResult struct {
	peerClose bool
	code      StatusCode
	reason    string
	fail      *CloseError // protocol violation: fail with this code
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

// readLoop reads frames until the peer's close frame, a protocol violation
// or an I/O error.
func (s *session) readLoop() {
	defer close(s.rExit)
	s.rRes = s.read()
	s.rb.put()
}

func failResult(ce *CloseError) readResult { return readResult{fail: ce} }

func ioResult(err error) readResult {
	reason := "Peer hung up"
	if !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		reason = "read failed: " + err.Error()
	}
	return readResult{code: CloseAbnormal, reason: reason}
}

// readState is what the reader keeps between frames (a message in
// progress); it lives in the session, so that the reader's stack stays
// shallow while it waits.
type readState struct {
	hbuf       []byte
	st         frameState
	msg        []byte
	msgOp      ws.OpCode
	compressed bool
	text       utf8Validator
	inflated   int // bytes of s.inflate.out validated so far
}

// invalidResult fails a text message that is not UTF-8.
var invalidResult = failResult(&CloseError{Code: CloseInvalidPayload, Reason: "invalid UTF-8 in text message"})

// inflateFail fails a compressed message that did not inflate.
func (s *session) inflateFail(err error) readResult {
	if errors.Is(err, errTooBig) {
		return failResult(&CloseError{Code: CloseMessageTooBig, Reason: fmt.Sprintf("message over max_message_size (%d bytes)", s.c.opts.maxMessageSize)})
	}
	return failResult(&CloseError{Code: CloseInvalidPayload, Reason: "invalid compressed data"})
}

// read reads frames until the connection ends. Between frames it waits in
// rb.idle with no buffer and a shallow stack (readFrame's is large).
func (s *session) read() readResult {
	s.rs = &readState{
		hbuf: make([]byte, 2, ws.MaxHeaderSize-2),
		st:   frameState{deflate: s.inflate != nil, maxSize: s.c.opts.maxMessageSize, server: s.server},
	}
	if s.inflate != nil {
		defer s.inflate.abort() // a message left open: stop its worker
	}
	for {
		s.rb.idle() // no buffer held while nothing arrives
		if res, end := s.readFrame(); end {
			return res
		}
	}
}

// readFrame reads one frame and handles it; end: the reader stops with res.
func (s *session) readFrame() (res readResult, end bool) {
	o := &s.c.opts
	rs := s.rs
	h, err := ws.ReadHeaderBuffer(s.rb, rs.hbuf)
	if err != nil {
		if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
			return failResult(&CloseError{Code: CloseProtocolError, Reason: "bad payload length"}), true
		}
		return ioResult(err), true
	}
	if lwslog.Enabled(lwslog.Parser) {
		lwslog.Printf(lwslog.Parser, "wsengine: recv op=%d fin=%v len=%d rsv=%d", h.OpCode, h.Fin, h.Length, h.Rsv)
	}
	if ce := checkHeader(h, &rs.st); ce != nil {
		return failResult(ce), true
	}
	s.heard()
	if h.OpCode.IsControl() {
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(s.rb, p); err != nil {
			return ioResult(err), true
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
				return failResult(ce), true
			}
			return readResult{peerClose: true, code: code, reason: reason}, true
		}
		return readResult{}, false
	}
	if h.OpCode != ws.OpContinuation {
		rs.msgOp, rs.compressed, rs.msg = h.OpCode, h.Rsv&0x4 != 0, nil
		rs.text.Reset()
		rs.st.inMessage, rs.st.msgLen = true, 0
		if rs.compressed {
			if err := s.inflate.begin(o.maxMessageSize); err != nil {
				return s.inflateFail(err), true
			}
			rs.inflated = 0
		}
	}
	for n := h.Length; rs.compressed && n > 0; {
		// Inflate what has arrived and validate the output so far: an
		// invalid byte fails the connection before the message ends.
		z, err := s.rb.next(int(min(n, readChunk)))
		if err != nil {
			return ioResult(err), true
		}
		m := len(z)
		s.heard()
		if h.Masked {
			ws.Cipher(z, h.Mask, int(h.Length-n))
		}
		if err := s.inflate.feed(z); err != nil {
			return s.inflateFail(err), true
		}
		if out := s.inflate.out; rs.msgOp == ws.OpText && rs.inflated < len(out) {
			if !rs.text.Write(out[rs.inflated:]) {
				return invalidResult, true
			}
			rs.inflated = len(out)
		}
		n -= int64(m)
	}
	for n := h.Length; !rs.compressed && n > 0; {
		k := int(min(n, readChunk))
		l := len(rs.msg)
		rs.msg = slices.Grow(rs.msg, k)[:l+k]
		// Read what has arrived, not the whole chunk: text is validated as
		// it streams in, so an invalid byte fails the connection at once.
		m, err := s.rb.Read(rs.msg[l:])
		rs.msg = rs.msg[:l+m]
		if m == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return ioResult(err), true
		}
		if h.Masked {
			ws.Cipher(rs.msg[l:], h.Mask, int(h.Length-n))
		}
		s.heard()
		if rs.msgOp == ws.OpText && !rs.compressed && !rs.text.Write(rs.msg[l:]) {
			return failResult(&CloseError{Code: CloseInvalidPayload, Reason: "invalid UTF-8 in text message"}), true
		}
		n -= int64(m)
	}
	rs.st.msgLen += h.Length
	if !h.Fin {
		return readResult{}, false
	}
	rs.st.inMessage = false
	if rs.compressed {
		out, err := s.inflate.finish()
		if err != nil {
			return s.inflateFail(err), true
		}
		rs.msg = out
		if rs.msgOp == ws.OpText && !(rs.text.Write(rs.msg[rs.inflated:]) && rs.text.Complete()) {
			return invalidResult, true
		}
	} else if rs.msgOp == ws.OpText && !rs.text.Complete() {
		return invalidResult, true
	}
	if rs.msg == nil {
		rs.msg = []byte{}
	}
	op := OpBinary
	if rs.msgOp == ws.OpText {
		op = OpText
	}
	s.c.emit(Event{Type: EventReceive, Opcode: op, Data: rs.msg})
	rs.msg = nil
	s.yield()
	return readResult{}, false
}
