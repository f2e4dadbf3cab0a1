package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/verawebsockets/verawebsockets/internal/flatewindow"
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

// event is one thing the peer under test sent: a whole message, a control
// frame, or the end of the stream.
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

const maxPeerMessage = 64 << 20

// pmd is a negotiated permessage-deflate agreement (RFC 7692) as the testing
// side sees it.
type pmd struct {
	peerNoContext bool // the peer compresses every message alone: inflate without history
	peerWindow    int  // the peer's back-references stay within 2^peerWindow bytes (8..15)
	ownNoContext  bool // we compress every message alone
	ownWindow     int  // our window (below 15: Huffman-only, no back-references)
	level         int  // compress/flate level of our messages (0: default)
}

// clientPMD is the agreement of a client-role case: the server's response
// d, as the testing server sends it.
func clientPMD(d *cases.Deflate) *pmd {
	if d == nil {
		return nil
	}
	own := d.ServerMaxWindowBits
	if own == 0 {
		own = 15
	}
	return &pmd{peerNoContext: d.ClientNoContextTakeover, peerWindow: 15,
		ownNoContext: d.ServerNoContextTakeover, ownWindow: own, level: d.Level}
}

// wire reads and judges what the peer under test sends on one connection:
// a client (client role: its frames must be masked) or a server (server
// role: its frames must not be).
type wire struct {
	nc         net.Conn
	br         *bufio.Reader
	events     chan event
	peerServer bool // the peer under test is a server

	pmd      *pmd   // negotiated, or nil
	dict     []byte // inflate history (the peer's context takeover)
	comp     *flate.Writer
	compBuf  bytes.Buffer
	mu       sync.Mutex
	problems []string // protocol violations by the peer
	frames   int
	masks    map[[4]byte]int
}

// who names the peer under test in findings.
func (w *wire) who() string {
	if w.peerServer {
		return "server"
	}
	return "client"
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

// readFrame reads one frame of the peer and checks its encoding.
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
	switch {
	case w.peerServer && masked:
		w.violate("masked server frame (opcode %d)", f.op)
	case !w.peerServer && !masked:
		w.violate("unmasked client frame (opcode %d)", f.op)
	}
	if masked {
		if _, err := io.ReadFull(w.br, f.mask[:]); err != nil {
			return f, err
		}
	}
	if n > maxPeerMessage {
		return f, fmt.Errorf("%s frame of %d bytes", w.who(), n)
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

// readLoop turns the peer's frames into events until the stream ends.
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
		if !w.peerServer {
			if w.frames > 1 && f.mask == lastMask {
				w.violate("frame %d reuses the mask key of the frame before (%x)", w.frames, f.mask)
			}
			lastMask = f.mask
			w.masks[f.mask]++
		}
		if closed {
			w.violate("frame (opcode %d) sent after the %s's close frame", f.op, w.who())
			continue
		}
		if f.rsv&3 != 0 || (f.rsv&4 != 0 && (w.pmd == nil || f.op == cases.OpCont || f.op >= 8)) {
			w.violate("%s frame with RSV bits %03b (opcode %d)", w.who(), f.rsv, f.op)
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
			if len(msg) > maxPeerMessage {
				emit(event{kind: evEOF, err: fmt.Errorf("%s message over 64 MiB", w.who())})
				return
			}
			if !f.fin {
				continue
			}
			open = false
			data := msg
			if compressed {
				if data, err = w.inflate(msg); err != nil {
					w.violate("%s message does not inflate: %v", w.who(), err)
					continue
				}
			}
			if openOp == cases.OpText && !utf8.Valid(data) {
				w.violate("%s text message is not valid UTF-8", w.who())
			}
			if data == nil {
				data = []byte{}
			}
			emit(event{kind: evMsg, op: openOp, data: data})
		case cases.OpClose, cases.OpPing, cases.OpPong:
			if !f.fin || len(f.payload) > 125 {
				w.violate("bad control frame from %s (opcode %d, FIN %v, %d bytes)", w.who(), f.op, f.fin, len(f.payload))
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
					w.violate("%s close frame with a 1-byte payload", w.who())
				case len(f.payload) >= 2:
					e.hasCode = true
					e.code = int(binary.BigEndian.Uint16(f.payload))
					e.data = f.payload[2:]
					if !validCloseCode(e.code) {
						w.violate("%s sent close code %d, which must not be sent", w.who(), e.code)
					}
					if !utf8.Valid(e.data) {
						w.violate("%s close reason is not valid UTF-8", w.who())
					}
				}
				emit(e)
			}
		default:
			w.violate("%s frame with reserved opcode %d", w.who(), f.op)
		}
	}
}

// inflate decompresses one message of the peer (RFC 7692 section 7.2.2).
// Below a 2^15 window it also checks that no back-reference reaches further
// than the window the peer agreed to.
func (w *wire) inflate(p []byte) ([]byte, error) {
	dict := w.dict
	if w.pmd.peerNoContext {
		dict = nil
	}
	in := append(append([]byte(nil), p...), deflateTail...)
	var out []byte
	if w.pmd.peerWindow < 15 {
		var dist int
		var err error
		if out, dist, err = flatewindow.Inflate(in, dict); err != nil {
			return nil, err
		}
		if dist > 1<<w.pmd.peerWindow {
			w.violate("%s message refers %d bytes back, beyond its window of 2^%d = %d bytes", w.who(), dist, w.pmd.peerWindow, 1<<w.pmd.peerWindow)
		}
	} else {
		r := flate.NewReaderDict(bytes.NewReader(in), dict)
		var err error
		if out, err = io.ReadAll(io.LimitReader(r, maxPeerMessage)); err != nil {
			return nil, err
		}
	}
	if !w.pmd.peerNoContext {
		w.dict = append(w.dict, out...)
		if len(w.dict) > 32768 {
			w.dict = append([]byte(nil), w.dict[len(w.dict)-32768:]...)
		}
	}
	return out, nil
}

// message encodes one message of ours, compressed when permessage-deflate
// was negotiated (as a server writes it: unmasked; the runner masks it when
// the peer is a server).
func (w *wire) message(op byte, p []byte, frag int) []byte {
	if w.pmd == nil {
		return cases.Fragments(op, 0, p, frag)
	}
	if w.comp == nil || w.pmd.ownNoContext {
		level := w.pmd.level
		if level == 0 {
			level = flate.DefaultCompression
		}
		if w.pmd.ownWindow < 15 {
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
