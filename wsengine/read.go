// The session's reading side: the parser fed with bytes as they arrive, frame and message handling
// (control frames, fragments, permessage-deflate, UTF-8 validation).

package wsengine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"syscall"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

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

func failResult(ce *CloseError) readResult { return readResult{fail: ce} }

func ioResult(err error) readResult {
	reason := "Peer hung up"
	if !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		reason = "read failed: " + err.Error()
	}
	return readResult{code: CloseAbnormal, reason: reason}
}

// readState is what the reader keeps between reads: the frame and the
// message in progress. Bytes are fed to it as they arrive (feed), by whoever
// reads the connection: the session's reader goroutine, or the thread that
// waits for the events (see direct.go). No byte is kept outside it, so the
// read buffer goes back to its pool after every read.
type readState struct {
	hbuf    [ws.MaxHeaderSize]byte // the header gathered so far
	hn      int
	h       ws.Header // the frame in progress (inFrame)
	inFrame bool
	left    int64  // payload bytes of h still to come
	ctrl    []byte // a control frame's payload gathered so far

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

func (s *session) newReadState() *readState {
	return &readState{st: frameState{deflate: s.inflate != nil, maxSize: s.c.opts.maxMessageSize, server: s.server}}
}

// headerLen is the length of the frame header that starts with b0, b1.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader parses a whole frame header (see headerLen).
func parseHeader(b []byte) (ws.Header, error) {
	h := ws.Header{Fin: b[0]&0x80 != 0, Rsv: (b[0] & 0x70) >> 4, OpCode: ws.OpCode(b[0] & 0x0f), Masked: b[1]&0x80 != 0}
	l, b := b[1]&0x7f, b[2:]
	switch l {
	case 126:
		h.Length, b = int64(binary.BigEndian.Uint16(b)), b[2:]
	case 127:
		if b[0]&0x80 != 0 {
			return h, ws.ErrHeaderLengthMSB
		}
		h.Length, b = int64(binary.BigEndian.Uint64(b)), b[8:]
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], b)
	}
	return h, nil
}

// feed handles p, the next bytes from the peer (changed in place: unmasked):
// every frame they complete is handled, a frame they begin is kept in s.rs.
// direct: fed by the waiting thread, which must not block (no flow control:
// it is the events' consumer). end: the reader stops with res.
func (s *session) feed(p []byte, direct bool) (res readResult, end bool) {
	rs := s.rs
	for len(p) > 0 {
		if !rs.inFrame {
			need := 2
			for {
				if rs.hn >= 2 {
					need = headerLen(rs.hbuf[1])
				}
				if rs.hn >= need || len(p) == 0 {
					break
				}
				n := copy(rs.hbuf[rs.hn:need], p)
				rs.hn += n
				p = p[n:]
			}
			if rs.hn < need {
				return readResult{}, false
			}
			if res, end := s.beginFrame(); end {
				return res, true
			}
		} else {
			k := int(min(int64(len(p)), rs.left))
			if res, end := s.payload(p[:k]); end {
				return res, true
			}
			p = p[k:]
		}
		if rs.left == 0 {
			if res, end := s.endFrame(direct); end {
				return res, true
			}
		}
	}
	return readResult{}, false
}

// beginFrame handles the header gathered in rs.hbuf.
func (s *session) beginFrame() (res readResult, end bool) {
	rs := s.rs
	h, err := parseHeader(rs.hbuf[:rs.hn])
	rs.hn = 0
	if err != nil {
		return failResult(&CloseError{Code: CloseProtocolError, Reason: "bad payload length"}), true
	}
	if lwslog.Enabled(lwslog.Parser) {
		lwslog.Printf(lwslog.Parser, "wsengine: recv op=%d fin=%v len=%d rsv=%d", h.OpCode, h.Fin, h.Length, h.Rsv)
	}
	if ce := checkHeader(h, &rs.st); ce != nil {
		return failResult(ce), true
	}
	s.heard()
	rs.h, rs.inFrame, rs.left = h, true, h.Length
	if h.OpCode.IsControl() {
		rs.ctrl = rs.ctrl[:0]
		return readResult{}, false
	}
	if h.OpCode != ws.OpContinuation {
		rs.msgOp, rs.compressed, rs.msg = h.OpCode, h.Rsv&0x4 != 0, nil
		if !rs.compressed && h.Length > 0 {
			// The frame's declared length, up to a bound (the peer need not
			// send what it declares): no copies while the message grows.
			rs.msg = getPayload(int(min(h.Length, s.preallocMax())))
		}
		rs.text.Reset()
		rs.st.inMessage, rs.st.msgLen = true, 0
		if rs.compressed {
			if err := s.inflate.begin(s.c.opts.maxMessageSize); err != nil {
				return s.inflateFail(err), true
			}
			rs.inflated = 0
		}
	}
	return readResult{}, false
}

// preallocMax bounds the buffer a message gets before its bytes arrive: a
// server we connected to is trusted with more than a client that connected.
func (s *session) preallocMax() int64 {
	if s.server {
		return readChunk
	}
	return 1 << 20
}

// payload handles z, the next payload bytes of the frame in progress (at
// most rs.left). A text message is validated as it streams in, so an invalid
// byte fails the connection at once.
func (s *session) payload(z []byte) (res readResult, end bool) {
	rs := s.rs
	h := &rs.h
	if h.Masked {
		ws.Cipher(z, h.Mask, int(h.Length-rs.left))
	}
	s.heard()
	switch {
	case h.OpCode.IsControl():
		rs.ctrl = append(rs.ctrl, z...)
	case rs.compressed:
		if err := s.inflate.feed(z); err != nil {
			return s.inflateFail(err), true
		}
		if out := s.inflate.out; rs.msgOp == ws.OpText && rs.inflated < len(out) {
			if !rs.text.Write(out[rs.inflated:]) {
				return invalidResult, true
			}
			rs.inflated = len(out)
		}
	default:
		rs.grow(len(z))
		rs.msg = append(rs.msg, z...)
		if rs.msgOp == ws.OpText && !rs.text.Write(z) {
			return invalidResult, true
		}
	}
	rs.left -= int64(len(z))
	return readResult{}, false
}

// payloadDst returns where the next read should go to land in the message
// itself (no copy): the free tail of rs.msg, when a large uncompressed
// payload is coming; else nil. payloadIn handles the n bytes read there.
func (s *session) payloadDst() []byte {
	rs := s.rs
	if !rs.inFrame || rs.left < readBufSize || rs.compressed || rs.h.OpCode.IsControl() {
		return nil
	}
	l := len(rs.msg)
	k := int(min(rs.left, readChunk))
	rs.grow(k)
	return rs.msg[l : l+k]
}

// grow makes room for k more bytes in rs.msg, doubling its capacity (append
// grows large slices by a quarter: a copy of the message every few reads),
// but not past the end of a message that is one frame (a fragmented one
// keeps doubling: its size is not known).
func (rs *readState) grow(k int) {
	l := len(rs.msg)
	if cap(rs.msg)-l >= k {
		return
	}
	n := max(2*cap(rs.msg), l+k)
	if end := l + int(rs.left); rs.h.Fin && rs.h.OpCode != ws.OpContinuation && end >= l+k && end < n {
		n = end
	}
	b := make([]byte, l, n)
	copy(b, rs.msg)
	rs.msg = b
}

func (s *session) payloadIn(n int, direct bool) (res readResult, end bool) {
	rs := s.rs
	l := len(rs.msg)
	z := rs.msg[l : l+n]
	if rs.h.Masked {
		ws.Cipher(z, rs.h.Mask, int(rs.h.Length-rs.left))
	}
	rs.msg = rs.msg[:l+n]
	rs.left -= int64(n)
	s.heard()
	if rs.msgOp == ws.OpText && !rs.text.Write(z) {
		return invalidResult, true
	}
	if rs.left == 0 {
		return s.endFrame(direct)
	}
	return readResult{}, false
}

// endFrame handles the frame whose payload is complete.
func (s *session) endFrame(direct bool) (res readResult, end bool) {
	rs := s.rs
	h := &rs.h
	rs.inFrame = false
	if h.OpCode.IsControl() {
		switch h.OpCode {
		case ws.OpPing:
			p := slices.Clone(rs.ctrl)
			s.c.mu.Lock()
			s.pushCtrl(outFrame{op: opPong, p: p}, false)
			s.c.mu.Unlock()
		case ws.OpPong:
			if s.c.opts.pongEvents {
				s.c.emit(Event{Type: EventReceivePong, Data: slices.Clone(rs.ctrl)})
				if !direct {
					s.yield()
				}
			}
		case ws.OpClose:
			code, reason, ce := parseClosePayload(rs.ctrl)
			if ce != nil {
				return failResult(ce), true
			}
			return readResult{peerClose: true, code: code, reason: reason}, true
		}
		return readResult{}, false
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
	if !direct {
		s.yield()
	}
	return readResult{}, false
}
