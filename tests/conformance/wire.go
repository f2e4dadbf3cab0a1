package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

type evKind int

const (
	evMsg evKind = iota
	evPing
	evPong
	evClose
	evEOF
)

// event is one thing the client sent: a whole message, a control frame, or
// the end of the stream.
type event struct {
	kind    evKind
	op      byte
	data    []byte
	code    int
	hasCode bool
	err     error
	at      time.Time
}

func (e event) String() string {
	switch e.kind {
	case evMsg:
		k := "text"
		if e.op == cases.OpBinary {
			k = "binary"
		}
		return fmt.Sprintf("a %s message of %d bytes %s", k, len(e.data), quote(e.data))
	case evPing:
		return fmt.Sprintf("a ping %s", quote(e.data))
	case evPong:
		return fmt.Sprintf("a pong %s", quote(e.data))
	case evClose:
		if !e.hasCode {
			return "a close frame without code"
		}
		return fmt.Sprintf("a close frame with code %d reason %s", e.code, quote(e.data))
	}
	return fmt.Sprintf("end of stream (%v)", e.err)
}

func quote(p []byte) string {
	if len(p) > 24 {
		return fmt.Sprintf("%q...", p[:24])
	}
	return fmt.Sprintf("%q", p)
}

// deflateTail ends a permessage-deflate body so that a DEFLATE reader
// reaches EOF: the flush marker plus an empty final stored block.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

const maxClientMessage = 64 << 20

// wire reads and judges what the client sends on one connection.
type wire struct {
	nc     net.Conn
	br     *bufio.Reader
	events chan event

	deflate  *cases.Deflate // negotiated, or nil
	dict     []byte         // inflate history (client context takeover)
	comp     *flate.Writer  // the server's compressor
	compBuf  bytes.Buffer
	mu       sync.Mutex
	problems []string // protocol violations by the client
	frames   int
	masks    map[[4]byte]int
}

func (w *wire) violate(format string, a ...any) {
	w.mu.Lock()
	w.problems = append(w.problems, fmt.Sprintf(format, a...))
	w.mu.Unlock()
}

func (w *wire) violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.problems...)
}

type rawFrame struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
	mask    [4]byte
}

// readFrame reads one client frame and checks its encoding.
func (w *wire) readFrame() (rawFrame, error) {
	var f rawFrame
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return f, err
	}
	f.fin = h[0]&0x80 != 0
	f.rsv = (h[0] >> 4) & 7
	f.op = h[0] & 0x0f
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
		if n < 126 {
			w.violate("non-minimal length encoding: %d bytes in a 16-bit length", n)
		}
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
		if n>>63 != 0 {
			return f, fmt.Errorf("64-bit length with the most significant bit set")
		}
		if n <= 0xffff {
			w.violate("non-minimal length encoding: %d bytes in a 64-bit length", n)
		}
	}
	if !masked {
		w.violate("unmasked client frame (opcode %d)", f.op)
	} else if _, err := io.ReadFull(w.br, f.mask[:]); err != nil {
		return f, err
	}
	if n > maxClientMessage {
		return f, fmt.Errorf("client frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(w.br, f.payload); err != nil {
		return f, err
	}
	if masked {
		for i := range f.payload {
			f.payload[i] ^= f.mask[i%4]
		}
	}
	return f, nil
}

func validCloseCode(c int) bool {
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999)
}

// readLoop turns client frames into events until the stream ends.
func (w *wire) readLoop() {
	defer close(w.events)
	var (
		open       bool
		openOp     byte
		compressed bool
		msg        []byte
		closed     bool
		lastMask   [4]byte
	)
	emit := func(e event) { e.at = time.Now(); w.events <- e }
	for {
		f, err := w.readFrame()
		if err != nil {
			emit(event{kind: evEOF, err: err})
			return
		}
		w.frames++
		if w.frames > 1 && f.mask == lastMask {
			w.violate("frame %d reuses the mask key of the frame before (%x)", w.frames, f.mask)
		}
		lastMask = f.mask
		w.masks[f.mask]++
		if closed {
			w.violate("frame (opcode %d) sent after the client's close frame", f.op)
			continue
		}
		if f.rsv&3 != 0 || (f.rsv&4 != 0 && (w.deflate == nil || f.op == cases.OpCont || f.op >= 8)) {
			w.violate("client frame with RSV bits %03b (opcode %d)", f.rsv, f.op)
		}
		switch f.op {
		case cases.OpCont, cases.OpText, cases.OpBinary:
			if f.op == cases.OpCont && !open {
				w.violate("continuation frame with no message open")
				continue
			}
			if f.op != cases.OpCont {
				if open {
					w.violate("new data frame (opcode %d) inside an open message", f.op)
				}
				open, openOp, compressed, msg = true, f.op, f.rsv&4 != 0, nil
			}
			msg = append(msg, f.payload...)
			if len(msg) > maxClientMessage {
				emit(event{kind: evEOF, err: errors.New("client message over 64 MiB")})
				return
			}
			if !f.fin {
				continue
			}
			open = false
			data := msg
			if compressed {
				if data, err = w.inflate(msg); err != nil {
					w.violate("client message does not inflate: %v", err)
					continue
				}
			}
			if openOp == cases.OpText && !utf8.Valid(data) {
				w.violate("client text message is not valid UTF-8")
			}
			if data == nil {
				data = []byte{}
			}
			emit(event{kind: evMsg, op: openOp, data: data})
		case cases.OpClose, cases.OpPing, cases.OpPong:
			if !f.fin || len(f.payload) > 125 {
				w.violate("bad control frame from client (opcode %d, FIN %v, %d bytes)", f.op, f.fin, len(f.payload))
			}
			switch f.op {
			case cases.OpPing:
				emit(event{kind: evPing, data: f.payload})
			case cases.OpPong:
				emit(event{kind: evPong, data: f.payload})
			default:
				closed = true
				e := event{kind: evClose}
				switch {
				case len(f.payload) == 1:
					w.violate("client close frame with a 1-byte payload")
				case len(f.payload) >= 2:
					e.hasCode = true
					e.code = int(binary.BigEndian.Uint16(f.payload))
					e.data = f.payload[2:]
					if !validCloseCode(e.code) {
						w.violate("client sent close code %d, which must not be sent", e.code)
					}
					if !utf8.Valid(e.data) {
						w.violate("client close reason is not valid UTF-8")
					}
				}
				emit(e)
			}
		default:
			w.violate("client frame with reserved opcode %d", f.op)
		}
	}
}

// inflate decompresses one client message (RFC 7692 section 7.2.2).
func (w *wire) inflate(p []byte) ([]byte, error) {
	dict := w.dict
	if w.deflate.ClientNoContextTakeover {
		dict = nil
	}
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)), dict)
	out, err := io.ReadAll(io.LimitReader(r, maxClientMessage))
	if err != nil {
		return nil, err
	}
	if !w.deflate.ClientNoContextTakeover {
		w.dict = append(w.dict, out...)
		if len(w.dict) > 32768 {
			w.dict = append([]byte(nil), w.dict[len(w.dict)-32768:]...)
		}
	}
	return out, nil
}

// message encodes one server message, compressed when deflate was negotiated.
func (w *wire) message(op byte, p []byte, frag int) []byte {
	if w.deflate == nil {
		return cases.Fragments(op, 0, p, frag)
	}
	if w.comp == nil || w.deflate.ServerNoContextTakeover {
		level := w.deflate.Level
		if level == 0 {
			level = flate.DefaultCompression
		}
		if b := w.deflate.ServerMaxWindowBits; b > 0 && b < 15 {
			level = flate.HuffmanOnly // no back-references: fits any window
		}
		w.compBuf.Reset()
		w.comp, _ = flate.NewWriter(&w.compBuf, level)
	}
	w.comp.Write(p)
	w.comp.Flush()
	body := bytes.TrimSuffix(w.compBuf.Bytes(), []byte{0, 0, 0xff, 0xff})
	out := cases.Fragments(op, 4, body, frag)
	w.compBuf.Reset()
	return out
}
