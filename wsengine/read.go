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

func (s *session) read() readResult {
	o := &s.c.opts
	hbuf := make([]byte, 2, ws.MaxHeaderSize-2)
	st := frameState{deflate: s.inflate != nil, maxSize: o.maxMessageSize, server: s.server}
	var (
		msg        []byte
		msgOp      ws.OpCode
		compressed bool
		text       utf8Validator
		inflated   int // bytes of s.inflate.out validated so far
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
		s.rb.idle() // no buffer held while nothing arrives
		h, err := ws.ReadHeaderBuffer(s.rb, hbuf)
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
			if _, err := io.ReadFull(s.rb, p); err != nil {
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
			z, err := s.rb.next(int(min(n, readChunk)))
			if err != nil {
				return ioResult(err)
			}
			m := len(z)
			s.heard()
			if h.Masked {
				ws.Cipher(z, h.Mask, int(h.Length-n))
			}
			if err := s.inflate.feed(z); err != nil {
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
			m, err := s.rb.Read(msg[l:])
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
