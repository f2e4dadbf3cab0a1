// The session's writing side: the control and data queues, the writer
// goroutine, write-through and frame writing.

package wsengine

import (
	"bufio"
	"net"
	"sync"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

const compressMin = 64 // messages shorter than this are sent uncompressed

func opFor(op OpCode) ws.OpCode {
	if op == OpText {
		return ws.OpText
	}
	return ws.OpBinary
}

// outFrame is one frame waiting for the writer.
type outFrame struct {
	op      ws.OpCode
	p       []byte
	data    bool // a message counted in queued
	recycle bool // p goes back to the payload pool once written (SendPayload)
	spill   int  // not a frame: the rest of a write-through (bytes counted in queued) to flush
}

// size is what f counts in queued.
func (f outFrame) size() int {
	if f.spill > 0 {
		return f.spill
	}
	return len(f.p)
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
	s.gateSync()
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
	s.gateSync()
	s.wakeWriter()
}

// wakeWriter starts the writer goroutine unless it runs; c.mu is held.
func (s *session) wakeWriter() {
	if s.writerOn || s.writerDone {
		return
	}
	s.writerOn = true
	s.writers.Add(1)
	go s.writeLoop()
}

// pop takes the next frame for the writer and marks it writing; none while a
// write-through is in progress (it wakes the writer when it is done). err is
// the failure of a write-through. Without a frame the writer is off: a
// later push starts a new one.
func (s *session) pop() (f outFrame, ok bool, err error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.throughErr != nil {
		return outFrame{}, false, s.throughErr
	}
	if s.writing {
		s.writerOn = false
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
		s.writerOn = false
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
	if s.gateTake() { // the other process is writing: queue (see gate.go)
		return false, false
	}
	s.writing = true
	s.queued += len(f.p)
	s.c.mu.Unlock()
	s.sc.nonblock.Store(true)
	err := s.writeFrame(f)
	s.sc.nonblock.Store(false)
	f.written()
	spill := s.sc.spilled()
	s.c.mu.Lock()
	s.writing = false
	s.queued = max(s.queued-len(f.p), 0) // teardown may have reset it meanwhile
	defer s.gateSync()
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

// writeLoop writes queued frames in order until the queue is empty, a close
// frame is written, or a write fails (wFail). It is started by wakeWriter.
func (s *session) writeLoop() {
	defer s.writers.Done()
	for {
		f, ok, err := s.pop()
		if err != nil {
			s.fail(err)
			return
		}
		if !ok {
			return
		}
		if !s.gateAwait() {
			s.fail(net.ErrClosed)
			return
		}
		if f.spill > 0 {
			err = s.sc.flush()
		} else {
			err = s.writeFrame(f)
			f.written()
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
		if err == nil && f.op == opClose {
			s.writerOn, s.writerDone = false, true
		}
		s.gateSync()
		s.c.mu.Unlock()
		if drained {
			s.c.emit(Event{Type: EventWriteable})
		}
		if err != nil {
			s.fail(err)
			return
		}
		if f.op == opClose {
			close(s.closeWritten)
			return
		}
	}
}

// fail ends the writing for good after the write error err (serve sees wFail).
func (s *session) fail(err error) {
	s.c.mu.Lock()
	s.writerOn, s.writerDone = false, true
	s.gateSync()
	s.c.mu.Unlock()
	s.wErr = err
	close(s.wFail)
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
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	bw := writePool.Get().(*bufio.Writer)
	bw.Reset(s.nc)
	bw.Write(appendHeader(s.hdr[:0], h))
	bw.Write(p)
	err := bw.Flush()
	bw.Reset(nil)
	writePool.Put(bw)
	return err
}

// written hands f's payload back to the pool after writeFrame, when it came
// from there (at most 4 KiB: writeFrame copied it into its buffered writer,
// so neither the socket nor a spill refers to it).
func (f outFrame) written() {
	if f.recycle {
		RecyclePayload(f.p) // f.p stays for its length (queued counts it)
	}
}

// writePool holds the buffered writers frames are written through (a header
// and a small payload in one write): taken for one frame, so that an idle
// connection holds none.
var writePool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// appendHeader appends the wire form of frame header h to b (RFC 6455
// section 5.2), as ws.WriteHeader writes it, without its allocation.
func appendHeader(b []byte, h ws.Header) []byte {
	b0 := byte(h.OpCode) | h.Rsv<<4
	if h.Fin {
		b0 |= 0x80
	}
	var mask byte
	if h.Masked {
		mask = 0x80
	}
	switch n := h.Length; {
	case n < 126:
		b = append(b, b0, mask|byte(n))
	case n <= 0xffff:
		b = append(b, b0, mask|126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, mask|127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if h.Masked {
		b = append(b, h.Mask[:]...)
	}
	return b
}
