//lint:file-ignore SA1019 tests read whole frames of their own peers with ws.ReadFrame

package wsengine

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/verawebsockets/verawebsockets/internal/flatewindow"
)

// Raw TCP clients of a test Server: protocol violations, fragments and pings,
// header limits, permessage-deflate. The echo, broadcast and limit tests over
// gobwas clients are in server_test.go.

func rawClient(t *testing.T, s *Server, extra string) (net.Conn, *bufio.Reader, map[string]string) {
	t.Helper()
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", extra)
	br := bufio.NewReader(nc)
	if status, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("status %q: %v", status, err)
	}
	resp := make(map[string]string)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			return nc, br, resp
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			resp[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
}

// maskedFrame builds a masked client frame.
func maskedFrame(fin bool, rsv byte, op ws.OpCode, p []byte) []byte {
	var buf bytes.Buffer
	mask := ws.NewMask()
	ws.WriteHeader(&buf, ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(p)), Masked: true, Mask: mask})
	q := bytes.Clone(p)
	ws.Cipher(q, mask, 0)
	buf.Write(q)
	return buf.Bytes()
}

// The server role applies the client role's frame checks to client frames:
// each violation fails the connection with the code RFC 6455 names, and the
// server's close frame says so.
func TestServerProtocolViolations(t *testing.T) {
	cases := []struct {
		name   string
		frames [][]byte
		code   StatusCode
	}{
		{"reserved opcode", [][]byte{maskedFrame(true, 0, 3, nil)}, CloseProtocolError},
		{"RSV1 without an extension", [][]byte{maskedFrame(true, 4, ws.OpText, []byte("x"))}, CloseProtocolError},
		{"fragmented ping", [][]byte{maskedFrame(false, 0, ws.OpPing, nil)}, CloseProtocolError},
		{"ping over 125 bytes", [][]byte{maskedFrame(true, 0, ws.OpPing, make([]byte, 126))}, CloseProtocolError},
		{"stray continuation", [][]byte{maskedFrame(true, 0, ws.OpContinuation, []byte("x"))}, CloseProtocolError},
		{"new message inside a fragmented one", [][]byte{maskedFrame(false, 0, ws.OpText, []byte("a")),
			maskedFrame(true, 0, ws.OpText, []byte("b"))}, CloseProtocolError},
		{"close code 1005", [][]byte{maskedFrame(true, 0, ws.OpClose, []byte{0x03, 0xed})}, CloseProtocolError},
		{"1-byte close payload", [][]byte{maskedFrame(true, 0, ws.OpClose, []byte{1})}, CloseProtocolError},
		{"invalid UTF-8 text", [][]byte{maskedFrame(true, 0, ws.OpText, []byte{0xce, 0xba, 0xff})}, CloseInvalidPayload},
		{"invalid UTF-8 across fragments", [][]byte{maskedFrame(false, 0, ws.OpText, []byte{0xce}),
			maskedFrame(true, 0, ws.OpContinuation, []byte{0x41})}, CloseInvalidPayload},
	}
	s, acc := testServer(t, false)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, br, _ := rawClient(t, s, "")
			sc := nextAccepted(t, acc)
			sc.ev.expect(EventEstablished)
			for _, f := range tc.frames {
				nc.Write(f)
			}
			f, err := ws.ReadFrame(br)
			if err != nil || f.Header.OpCode != ws.OpClose {
				t.Fatalf("want a close frame: %v %+v", err, f.Header)
			}
			if code, _ := ws.ParseCloseFrameData(f.Payload); StatusCode(code) != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			if e := sc.ev.expect(EventClosed); e.Clean || e.Code != tc.code {
				t.Fatalf("server side: %+v %q", e, e.Data)
			}
		})
	}
}

// A fragmented message with a ping in between arrives whole, and the ping
// is answered with an unmasked pong carrying its payload.
func TestServerFragmentsAndPing(t *testing.T) {
	s, acc := testServer(t, false)
	nc, br, _ := rawClient(t, s, "")
	sc := nextAccepted(t, acc)
	sc.ev.expect(EventEstablished)
	var b bytes.Buffer
	b.Write(maskedFrame(false, 0, ws.OpText, []byte("hel")))
	b.Write(maskedFrame(true, 0, ws.OpPing, []byte("pp")))
	b.Write(maskedFrame(false, 0, ws.OpContinuation, []byte("lo ")))
	b.Write(maskedFrame(true, 0, ws.OpContinuation, []byte("wörld")))
	nc.Write(b.Bytes())
	f, err := ws.ReadFrame(br)
	if err != nil || f.Header.OpCode != ws.OpPong || f.Header.Masked || string(f.Payload) != "pp" {
		t.Fatalf("pong: %v %+v %q", err, f.Header, f.Payload)
	}
	if e := sc.ev.expect(EventReceive); string(e.Data) != "hello wörld" || e.Opcode != OpText {
		t.Fatalf("message %q", e.Data)
	}
	// A client close is echoed and reported clean.
	nc.Write(maskedFrame(true, 0, ws.OpClose, []byte{0x0f, 0xa1, 'o', 'k'}))
	f, err = ws.ReadFrame(br)
	if code, _ := ws.ParseCloseFrameData(f.Payload); err != nil || f.Header.OpCode != ws.OpClose || code != 4001 {
		t.Fatalf("close echo: %v %+v code %d", err, f.Header, code)
	}
	if e := sc.ev.expect(EventClosed); !e.Clean || e.Code != 4001 || string(e.Data) != "ok" {
		t.Fatalf("closed: %+v %q", e, e.Data)
	}
}

// More than maxRequestHeaders request headers: HTTP 431, nothing accepted.
func TestServerTooManyHeaders(t *testing.T) {
	s, acc := testServer(t, false)
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for i := 0; i < maxRequestHeaders+1; i++ {
		fmt.Fprintf(&b, "X-H%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	nc.Write([]byte(b.String()))
	status, _ := bufio.NewReader(nc).ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 431") {
		t.Fatalf("status %q", status)
	}
	select {
	case sc := <-acc:
		t.Fatalf("accepted %q", sc.path)
	default:
	}
}

// compression = 1 on both sides: permessage-deflate is negotiated and
// messages of every size round-trip through the server's inflate and deflate.
func TestServerCompression(t *testing.T) {
	s, acc := testServer(t, true, "compression=1")
	c, ev := dialTest(t, fmt.Sprintf("ws://127.0.0.1:%d/", s.Port()), "compression", "1")
	ev.expect(EventEstablished)
	sc := nextAccepted(t, acc)
	sc.ev.expect(EventEstablished)
	for _, conn := range []*Conn{c, sc.c} {
		conn.mu.Lock()
		on := conn.sess != nil && conn.sess.inflate != nil && conn.sess.deflate != nil
		conn.mu.Unlock()
		if !on {
			t.Fatal("permessage-deflate not in use on both sides")
		}
	}
	for _, m := range []string{"x", strings.Repeat("compress me ", 20000), "ünï", ""} {
		if err := c.Send(OpText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if e := ev.expect(EventReceive); string(e.Data) != m {
			t.Fatalf("echo of %d bytes: got %d", len(m), len(e.Data))
		}
	}
}

// compressedEcho sends msg as a compressed masked text frame (the client
// compressing with context takeover: w is kept between calls) and returns
// the server's echo, which must be compressed and unmasked.
func compressedEcho(t *testing.T, nc net.Conn, br *bufio.Reader, w *wsflate.Writer, buf *bytes.Buffer, msg []byte) ws.Frame {
	t.Helper()
	buf.Reset()
	w.Reset(buf)
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Write(maskedFrame(true, 4, ws.OpText, buf.Bytes()))
	got, err := ws.ReadFrame(br)
	if err != nil || got.Header.Masked || got.Header.Rsv&0x4 == 0 || got.Header.OpCode != ws.OpText {
		t.Fatalf("echo: %v %+v (want an unmasked compressed text frame)", err, got.Header)
	}
	return got
}

// windowText is text that repeats itself 20000 bytes later: a compressor
// that ignores a window below 2^15 refers that far back.
func windowText() []byte {
	g := uint32(1)
	p := make([]byte, 20000)
	for i := range p {
		g = g*1664525 + 1013904223
		p[i] = 'a' + byte(g>>24)%26
	}
	return append(p, p...)
}

// The server's answers to permessage-deflate offers, on the wire: an offer is
// accepted with server_no_context_takeover and compressed masked frames are
// echoed compressed and unmasked; an offer's server_max_window_bits (8..15)
// is accepted and answered with the same value (RFC 7692 section 7.1.2.1),
// and then no back-reference in the server's messages reaches further than
// that window; invalid offers, and every offer without compression = 1, are
// declined and the connection works uncompressed.
func TestServerDeflateOffers(t *testing.T) {
	handshake := func(t *testing.T, s *Server, offer string) (net.Conn, *bufio.Reader, string) {
		nc, br, resp := rawClient(t, s, "Sec-WebSocket-Extensions: "+offer+"\r\n")
		// gobwas writes "a;b=1": compare without blanks
		return nc, br, strings.ReplaceAll(resp["sec-websocket-extensions"], " ", "")
	}
	nb := func(s string) string { return strings.ReplaceAll(s, " ", "") }
	msg := []byte(strings.Repeat("hello deflate ", 100))
	t.Run("accepted", func(t *testing.T) {
		s, _ := testServer(t, true, "compression=1")
		nc, br, ext := handshake(t, s, "permessage-deflate; client_max_window_bits")
		if ext != nb("permessage-deflate; server_no_context_takeover") {
			t.Fatalf("extensions %q", ext)
		}
		for i := 0; i < 3; i++ { // three in a row: the server inflates each with the context kept
			f, err := wsflate.CompressFrame(ws.NewTextFrame(msg))
			if err != nil {
				t.Fatal(err)
			}
			f.Header.Masked, f.Header.Mask = true, ws.NewMask()
			ws.Cipher(f.Payload, f.Header.Mask, 0)
			if err := ws.WriteFrame(nc, f); err != nil {
				t.Fatal(err)
			}
			got, err := ws.ReadFrame(br)
			if err != nil || got.Header.Masked || got.Header.Rsv&0x4 == 0 {
				t.Fatalf("echo %d: %v %+v (want unmasked, RSV1)", i, err, got.Header)
			}
			if len(got.Payload) >= len(msg) {
				t.Fatalf("echo %d: %d bytes compressed for %d", i, len(got.Payload), len(msg))
			}
			plain, err := wsflate.DecompressFrame(got)
			if err != nil || !bytes.Equal(plain.Payload, msg) {
				t.Fatalf("echo %d: %v %q", i, err, plain.Payload)
			}
		}
	})
	text := windowText()
	// The test data does catch a compressor that ignores the window.
	if z, err := (&deflater{}).deflate(text); err != nil {
		t.Fatal(err)
	} else if _, d, err := flatewindow.Inflate(append(z, deflateTail...), nil); err != nil || d <= 1<<14 {
		t.Fatalf("the default deflater's longest distance is %d (%v), want > 2^14", d, err)
	}
	for bits := 8; bits <= 15; bits++ {
		t.Run(fmt.Sprintf("server_max_window_bits=%d", bits), func(t *testing.T) {
			s, _ := testServer(t, true, "compression=1")
			offer := fmt.Sprintf("permessage-deflate; client_no_context_takeover; server_max_window_bits=%d; client_max_window_bits", bits)
			nc, br, ext := handshake(t, s, offer)
			want := fmt.Sprintf("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=%d", bits)
			if ext != nb(want) {
				t.Fatalf("extensions %q, want %q", ext, want)
			}
			var buf bytes.Buffer
			w := wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor {
				fw, _ := flate.NewWriter(w, flate.BestCompression)
				return fw
			})
			for i, m := range [][]byte{text, msg, text} {
				got := compressedEcho(t, nc, br, w, &buf, m)
				out, dist, err := flatewindow.Inflate(append(got.Payload, deflateTail...), nil)
				if err != nil || !bytes.Equal(out, m) {
					t.Fatalf("echo %d: %v, %d bytes inflated of %d", i, err, len(out), len(m))
				}
				if dist > 1<<bits {
					t.Fatalf("echo %d: a back-reference %d bytes back, window 2^%d = %d", i, dist, bits, 1<<bits)
				}
				if len(got.Payload) >= len(m) {
					t.Fatalf("echo %d: %d bytes compressed for %d", i, len(got.Payload), len(m))
				}
			}
		})
	}
	t.Run("first acceptable of several offers", func(t *testing.T) {
		s, _ := testServer(t, true, "compression=1")
		_, _, ext := handshake(t, s, "permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=9, permessage-deflate")
		if ext != nb("permessage-deflate; server_no_context_takeover; server_max_window_bits=9") {
			t.Fatalf("extensions %q", ext)
		}
	})
	for name, tc := range map[string]struct{ opt, offer string }{
		"compression off":                  {"compression=0", "permessage-deflate"},
		"server_max_window_bits=7":         {"compression=1", "permessage-deflate; server_max_window_bits=7"},
		"server_max_window_bits=16":        {"compression=1", "permessage-deflate; server_max_window_bits=16"},
		"server_max_window_bits no value":  {"compression=1", "permessage-deflate; server_max_window_bits"},
		"client_max_window_bits=16":        {"compression=1", "permessage-deflate; client_max_window_bits=16"},
		"client_max_window_bits twice":     {"compression=1", "permessage-deflate; client_max_window_bits; client_max_window_bits"},
		"server_no_context_takeover twice": {"compression=1", "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
		"server_no_context_takeover=1":     {"compression=1", "permessage-deflate; server_no_context_takeover=1"},
		"unknown parameter":                {"compression=1", "permessage-deflate; mystery_bits=9"},
		"another extension":                {"compression=1", "x-webkit-deflate-frame"},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := testServer(t, true, tc.opt)
			nc, br, ext := handshake(t, s, tc.offer)
			if ext != "" {
				t.Fatalf("extensions %q, want none", ext)
			}
			nc.Write(maskedFrame(true, 0, ws.OpText, msg))
			got, err := ws.ReadFrame(br)
			if err != nil || got.Header.Rsv != 0 || !bytes.Equal(got.Payload, msg) {
				t.Fatalf("echo: %v %+v", err, got.Header)
			}
			// RSV1 without a negotiated extension fails the connection.
			nc.Write(maskedFrame(true, 4, ws.OpText, []byte("x")))
			if f, err := ws.ReadFrame(br); err != nil || f.Header.OpCode != ws.OpClose {
				t.Fatalf("want a close frame: %v %+v", err, f.Header)
			}
		})
	}
}
