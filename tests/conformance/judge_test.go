package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

// miniClient is a tiny, non-validating WebSocket echo client with switchable
// bugs, to show that the judge fails what it must fail.
type miniClient struct {
	unmasked  bool
	fixedMask bool
	swapOp    bool // echo text as binary
	closeCode int  // answer every close with this code (0: echo)
	n         uint32
}

func (m *miniClient) frame(op byte, p []byte) []byte {
	b := []byte{0x80 | op}
	mbit := byte(0x80)
	if m.unmasked {
		mbit = 0
	}
	switch n := len(p); {
	case n <= 125:
		b = append(b, mbit|byte(n))
	case n <= 0xffff:
		b = append(b, mbit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if m.unmasked {
		return append(b, p...)
	}
	m.n++
	key := [4]byte{byte(m.n), byte(m.n >> 8), 0x5a, 0xa5}
	if m.fixedMask {
		key = [4]byte{1, 2, 3, 4}
	}
	b = append(b, key[:]...)
	for i, c := range p {
		b = append(b, c^key[i%4])
	}
	return b
}

func (m *miniClient) run(t *testing.T, addr, id string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "GET /case/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", id, addr, keyFor(id))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var msg []byte
	var msgOp byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		op, n := h[0]&0xf, uint64(h[1]&0x7f)
		switch n {
		case 126:
			var b [2]byte
			io.ReadFull(br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			io.ReadFull(br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		switch op {
		case cases.OpPing:
			nc.Write(m.frame(cases.OpPong, p))
		case cases.OpClose:
			if m.closeCode != 0 {
				p = cases.ClosePayload(m.closeCode, nil)
			}
			nc.Write(m.frame(cases.OpClose, p))
			io.Copy(io.Discard, br)
			return
		case cases.OpText, cases.OpBinary, cases.OpCont:
			if op != cases.OpCont {
				msgOp, msg = op, nil
			}
			msg = append(msg, p...)
			if h[0]&0x80 != 0 {
				o := msgOp
				if m.swapOp && o == cases.OpText {
					o = cases.OpBinary
				}
				nc.Write(m.frame(o, msg))
			}
		}
	}
}

var keyN int

func keyFor(id string) string {
	keyN++
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%-10s%06d", id, keyN)))
}

func TestJudge(t *testing.T) {
	st, err := newSuite("client", cases.Cases())
	if err != nil {
		t.Fatal(err)
	}
	s := &server{suite: st, keys: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(nc)
		}
	}()
	tests := []struct {
		name   string
		client miniClient
		id     string
		grade  string
		reason string
	}{
		{"good echo", miniClient{}, "1.1.2", gradeOK, ""},
		{"good 16-bit length", miniClient{}, "1.2.3", gradeOK, ""},
		{"good pings", miniClient{}, "2.10", gradeOK, ""},
		{"unmasked echo", miniClient{unmasked: true}, "1.1.2", gradeFailed, "unmasked client frame"},
		{"same mask every frame", miniClient{fixedMask: true}, "x1.4", gradeFailed, "reuses the mask key"},
		{"text echoed as binary", miniClient{swapOp: true}, "1.1.1", gradeFailed, "expected the echo (opcode 1"},
		{"wrong close echo", miniClient{closeCode: 1001}, "7.7.3", gradeFailed, "close echo"},
		{"no validation: RSV frame echoed", miniClient{}, "3.1", gradeFailed, "expected a close frame (1002)"},
		{"no validation: invalid UTF-8 echoed", miniClient{}, "6.3.1", gradeFailed, "expected a close frame (1007)"},
		{"no validation: no 1009", miniClient{}, "x9.2", gradeFailed, "expected a close frame (1009)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.mu.Lock()
			delete(s.results, tt.id)
			s.mu.Unlock()
			tt.client.run(t, ln.Addr().String(), tt.id)
			var r result
			for i := 0; i < 100; i++ {
				s.mu.Lock()
				got, ok := s.results[tt.id]
				s.mu.Unlock()
				if ok {
					r = got
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if r.grade != tt.grade || !strings.Contains(r.reason, tt.reason) {
				t.Errorf("case %s: got %s %q, want %s containing %q", tt.id, r.grade, r.reason, tt.grade, tt.reason)
			}
		})
	}
}

// miniServer is a tiny, non-validating WebSocket echo server with
// switchable bugs, to show that the server-role judge fails what it must.
type miniServer struct {
	maskFrames bool   // masks its frames (servers must not)
	swapOp     bool   // echoes text as binary
	keepOpen   bool   // never closes TCP after the closing handshake
	deflate    string // "": declines every offer; "window": answers server_max_window_bits but uses a 32 KiB window; "nobits": leaves server_max_window_bits out of the answer
}

func (m *miniServer) frame(op byte, rsv byte, p []byte) []byte {
	f := cases.Frame{Fin: true, Rsv: rsv, Op: op, Payload: p}
	if m.maskFrames {
		f.Mask = &[4]byte{9, 8, 7, 6}
	}
	return f.Bytes()
}

func (m *miniServer) serve(nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n"
	deflate := false
	if offer := req.Header.Get("Sec-WebSocket-Extensions"); offer != "" && m.deflate != "" {
		first, _, _ := strings.Cut(offer, ",")
		ext := "permessage-deflate; server_no_context_takeover"
		if strings.Contains(first, "client_no_context_takeover") {
			ext += "; client_no_context_takeover"
		}
		if _, bits, ok := strings.Cut(first, "server_max_window_bits="); ok && m.deflate == "window" {
			ext += "; server_max_window_bits=" + strings.TrimSpace(strings.Split(bits, ";")[0])
		}
		resp += "Sec-WebSocket-Extensions: " + ext + "\r\n"
		deflate = true
	}
	io.WriteString(nc, resp+"\r\n")
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		rsv, op, n := hdr[0]>>4&7, hdr[0]&0xf, uint64(hdr[1]&0x7f)
		switch n {
		case 126:
			var b [2]byte
			io.ReadFull(br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			io.ReadFull(br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		var key [4]byte
		if hdr[1]&0x80 != 0 {
			io.ReadFull(br, key[:])
		}
		if n > 1<<20 {
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= key[i%4]
		}
		switch op {
		case cases.OpPing:
			nc.Write(m.frame(cases.OpPong, 0, p))
		case cases.OpClose:
			nc.Write(m.frame(cases.OpClose, 0, p))
			if m.keepOpen {
				io.Copy(io.Discard, br)
			}
			return
		case cases.OpText, cases.OpBinary:
			var out byte
			if rsv&4 != 0 {
				r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)))
				p, _ = io.ReadAll(r)
			}
			if deflate {
				var b bytes.Buffer
				w, _ := flate.NewWriter(&b, flate.BestCompression)
				w.Write(p)
				w.Flush()
				p, out = bytes.TrimSuffix(b.Bytes(), deflateTail[:4]), 4
			}
			if m.swapOp && op == cases.OpText {
				op = cases.OpBinary
			}
			nc.Write(m.frame(op, out, p))
		}
	}
}

func TestServerJudge(t *testing.T) {
	st, err := newSuite("server", cases.ServerCases())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		server miniServer
		id     string
		grade  string
		reason string
	}{
		{"good echo", miniServer{}, "1.1.2", gradeOK, ""},
		{"good pings", miniServer{}, "2.10", gradeOK, ""},
		{"good compressed echo", miniServer{deflate: "window"}, "13.1.4", gradeOK, ""},
		{"masked frames", miniServer{maskFrames: true}, "1.1.2", gradeFailed, "masked server frame"},
		{"text echoed as binary", miniServer{swapOp: true}, "1.1.1", gradeFailed, "expected the echo (opcode 1"},
		{"keeps TCP open", miniServer{keepOpen: true}, "1.1.2", gradeFailed, "server did not close the TCP connection"},
		{"no validation: RSV frame echoed", miniServer{}, "3.1", gradeFailed, "expected a close frame (1002)"},
		{"no validation: unmasked frame echoed", miniServer{}, "x1.1", gradeFailed, "expected a close frame (1002)"},
		{"no validation: invalid UTF-8 echoed", miniServer{}, "6.3.1", gradeFailed, "expected a close frame (1007)"},
		{"deflate declined", miniServer{}, "13.1.1", gradeUnimplemented, "declined permessage-deflate"},
		{"window ignored", miniServer{deflate: "window"}, "13.3.6", gradeFailed, "beyond its window of 2^8"},
		{"window offer unanswered", miniServer{deflate: "nobits"}, "13.4.1", gradeFailed, "must be answered with 15 or less"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					go tt.server.serve(nc)
				}
			}()
			c := st.byID[tt.id]
			d := &driver{suite: st, ports: map[string]string{optionSet(c): ln.Addr().String()}}
			r := d.runCase(c)
			if r.grade != tt.grade || !strings.Contains(r.reason, tt.reason) {
				t.Errorf("case %s: got %s %q, want %s containing %q", tt.id, r.grade, r.reason, tt.grade, tt.reason)
			}
		})
	}
}

// The masker masks a stream of frames split anywhere, each frame with its
// own key, and leaves masked frames alone.
func TestMasker(t *testing.T) {
	in := cases.Cat(cases.Text("hello"), cases.Fr(true, cases.OpBinary, cases.Rep("x", 300)),
		cases.Frame{Fin: true, Op: cases.OpPing, Payload: []byte("m"), Mask: &[4]byte{1, 2, 3, 4}}.Bytes(),
		cases.Fr(true, cases.OpBinary, cases.Rep("y", 70000)), cases.Fr(true, cases.OpClose, nil))
	for _, chop := range []int{1, 2, 3, 7, 1000, len(in)} {
		m := &masker{}
		var out []byte
		for i := 0; i < len(in); i += chop {
			out = append(out, m.mask(in[i:min(i+chop, len(in))])...)
		}
		w := &wire{br: bufio.NewReader(bytes.NewReader(out)), masks: map[[4]byte]int{}}
		var got [][]byte
		keys := map[[4]byte]bool{}
		for {
			f, err := w.readFrame()
			if err != nil {
				break
			}
			got = append(got, f.payload)
			keys[f.mask] = true
		}
		want := [][]byte{[]byte("hello"), cases.Rep("x", 300), []byte("m"), cases.Rep("y", 70000), {}}
		if len(got) != len(want) || len(w.violations()) > 0 || len(keys) < 4 {
			t.Fatalf("chop %d: %d frames, violations %q, %d keys", chop, len(got), w.violations(), len(keys))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("chop %d: frame %d differs", chop, i)
			}
		}
	}
}

// The judge's reading of a permessage-deflate response against an offer
// (RFC 7692 section 7.1).
func TestAcceptDeflate(t *testing.T) {
	for _, tc := range []struct {
		offer, resp string
		ok          bool
		want        pmd
	}{
		{"permessage-deflate", "permessage-deflate", true, pmd{peerWindow: 15, ownWindow: 15}},
		{"permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", true,
			pmd{peerNoContext: true, ownNoContext: true, peerWindow: 15, ownWindow: 15}},
		{"permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=9", true, pmd{peerWindow: 9, ownWindow: 15}},
		{"permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=\"10\"", true, pmd{peerWindow: 10, ownWindow: 15}},
		{"permessage-deflate", "permessage-deflate; server_max_window_bits=12", true, pmd{peerWindow: 12, ownWindow: 15}},
		{"permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=11", true, pmd{peerWindow: 15, ownWindow: 11}},
		{"permessage-deflate; server_max_window_bits=10", "permessage-deflate", false, pmd{}},
		{"permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=11", false, pmd{}},
		{"permessage-deflate", "permessage-deflate; client_max_window_bits=11", false, pmd{}},
		{"permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=11", false, pmd{}},
		{"permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits", false, pmd{}},
		{"permessage-deflate; server_no_context_takeover", "permessage-deflate", false, pmd{}},
		{"permessage-deflate", "permessage-deflate; server_max_window_bits=7", false, pmd{}},
		{"permessage-deflate", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", false, pmd{}},
		{"permessage-deflate", "permessage-deflate; server_no_context_takeover=1", false, pmd{}},
		{"permessage-deflate", "permessage-deflate; mystery", false, pmd{}},
		{"permessage-deflate", "x-webkit-deflate-frame", false, pmd{}},
	} {
		got, why := acceptDeflate(parseExtensions([]string{tc.resp})[0], parseExtensions([]string{tc.offer})[0])
		if (got != nil) != tc.ok || (got != nil && *got != tc.want) {
			t.Errorf("offer %q, response %q: got %+v (%s), want ok=%v %+v", tc.offer, tc.resp, got, why, tc.ok, tc.want)
		}
	}
}
