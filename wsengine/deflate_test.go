package wsengine

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/internal/flatewindow"
)

func inflateAll(p []byte) []byte {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)))
	out, _ := io.ReadAll(r)
	return out
}

// deflateServer negotiates permessage-deflate with resp and then sends two
// messages compressed with context takeover, then echoes (decompressing).
func deflateServer(t *testing.T, resp string, rsvSeen chan byte) *server {
	return newServer(t, func(nc net.Conn) {
		req, br, err := rawHandshake(nc, "Sec-WebSocket-Extensions: "+resp+"\r\n")
		if err != nil || !strings.Contains(req.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			return
		}
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		msg := strings.Repeat("context takeover ", 50)
		for i := 0; i < 2; i++ {
			buf.Reset()
			if strings.Contains(resp, "server_no_context_takeover") {
				fw.Reset(&buf)
			}
			fw.Write([]byte(msg))
			fw.Flush()
			nc.Write(frame(true, 4, ws.OpText, bytes.TrimSuffix(buf.Bytes(), deflateTail[:4])))
		}
		for {
			f, err := readClientFrame(br)
			if err != nil {
				return
			}
			if f.Header.OpCode == ws.OpClose {
				nc.Write(frame(true, 0, ws.OpClose, f.Payload))
				return
			}
			if rsvSeen != nil {
				rsvSeen <- f.Header.Rsv
			}
			p := f.Payload
			if f.Header.Rsv&4 != 0 {
				p = inflateAll(p)
			}
			nc.Write(frame(true, 0, f.Header.OpCode, p))
		}
	})
}

func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		resp    string
		wantRsv byte
	}{
		{"permessage-deflate", 4},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 4},
		{"permessage-deflate; client_max_window_bits=10", 0},
	} {
		t.Run(tc.resp, func(t *testing.T) {
			rsv := make(chan byte, 4)
			srv := deflateServer(t, tc.resp, rsv)
			c, ev := dialTest(t, srv.url, "compression", "1")
			ev.expect(EventEstablished)
			for i := 0; i < 2; i++ {
				if e := ev.expect(EventReceive); string(e.Data) != strings.Repeat("context takeover ", 50) {
					t.Fatalf("message %d: %q", i, e.Data)
				}
			}
			big := strings.Repeat("compress me ", 1000)
			c.Send(OpText, []byte(big))
			if e := ev.expect(EventReceive); string(e.Data) != big {
				t.Fatalf("echo of %d bytes: %d", len(big), len(e.Data))
			}
			if r := <-rsv; r != tc.wantRsv {
				t.Fatalf("rsv %d, want %d", r, tc.wantRsv)
			}
			c.Close(0, "")
			if e := ev.expect(EventClosed); !e.Clean {
				t.Fatalf("closed %+v", e)
			}
		})
	}
}

func TestCompressionBomb(t *testing.T) {
	srv := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		fw.Write(make([]byte, 1<<20))
		fw.Flush()
		nc.Write(frame(true, 4, ws.OpBinary, bytes.TrimSuffix(buf.Bytes(), deflateTail[:4])))
		readClientFrame(br)
	})
	_, ev := dialTest(t, srv.url, "compression", "1", "max_message_size", "1000")
	ev.expect(EventEstablished)
	if e := ev.expect(EventClosed); e.Code != 1009 {
		t.Fatalf("closed %+v %q", e, e.Data)
	}
}

func TestCompressionNotOffered(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	srv := newServer(t, echoHandler("", func(r *http.Request) { reqs <- r }))
	_, ev := dialTest(t, srv.url)
	ev.expect(EventEstablished)
	if h := (<-reqs).Header.Get("Sec-WebSocket-Extensions"); h != "" {
		t.Fatalf("extensions offered without compression: %q", h)
	}
}

// TestCompressionFailFast: a compressed text message whose first fragment
// inflates to invalid UTF-8 fails with 1007 before the rest arrives.
func TestCompressionFailFast(t *testing.T) {
	gotClose := make(chan []byte, 1)
	srv := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		fw.Write([]byte("valid start \xed\xa0\x80 then more"))
		fw.Flush() // the fragment ends on a sync-flush point
		nc.Write(frame(false, 4, ws.OpText, buf.Bytes()))
		// Wait (bounded) for the client's close before sending the rest: a
		// close seen here proves the client failed before the final fragment.
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := readClientFrame(br)
		if err == nil && f.Header.OpCode == ws.OpClose {
			gotClose <- f.Payload
		}
		nc.SetReadDeadline(time.Time{})
		buf.Reset()
		fw.Write([]byte(" the end"))
		fw.Flush()
		nc.Write(frame(true, 0, ws.OpContinuation, bytes.TrimSuffix(buf.Bytes(), deflateTail[:4])))
	})
	_, ev := dialTest(t, srv.url, "compression", "1")
	ev.expect(EventEstablished)
	// No wall-clock bound: the server sends the final fragment only after
	// it has read the client's close (or after 10 s), so a close frame at
	// the server below proves the client failed before the message ended.
	e := ev.next(5 * time.Second)
	if e.Type != EventClosed || e.Code != CloseInvalidPayload {
		t.Fatalf("got event %d (code %d, %q), want EventClosed 1007", e.Type, e.Code, e.Data)
	}
	select {
	case p := <-gotClose:
		if len(p) < 2 || StatusCode(p[0])<<8|StatusCode(p[1]) != CloseInvalidPayload {
			t.Fatalf("close frame payload %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server saw no close frame before sending the final fragment")
	}
}

// TestInflaterStreaming feeds compressed messages in pieces of every size
// from 1 byte, with context takeover, and checks the output; a truncated
// stream fails instead of hanging.
func TestInflaterStreaming(t *testing.T) {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	var msgs, zs [][]byte
	for i := 0; i < 4; i++ {
		m := []byte(strings.Repeat(fmt.Sprintf("message %d über context takeover; ", i%2), 200*(i+1)))
		buf.Reset()
		fw.Write(m)
		fw.Flush()
		msgs = append(msgs, m)
		zs = append(zs, append([]byte(nil), bytes.TrimSuffix(buf.Bytes(), deflateTail[:4])...))
	}
	for _, step := range []int{1, 2, 7, 100, 1 << 20} {
		f := &inflater{}
		for i, z := range zs {
			if err := f.begin(1 << 20); err != nil {
				t.Fatal(err)
			}
			for p := z; len(p) > 0; {
				k := min(step, len(p))
				if err := f.feed(p[:k]); err != nil {
					t.Fatalf("step %d message %d: %v", step, i, err)
				}
				p = p[k:]
			}
			out, err := f.finish()
			if err != nil || !bytes.Equal(out, msgs[i]) {
				t.Fatalf("step %d message %d: %v, %d bytes", step, i, err, len(out))
			}
		}
	}
	f := &inflater{}
	f.begin(1 << 20)
	f.feed(zs[0][:len(zs[0])/2])
	if _, err := f.finish(); err == nil {
		t.Fatal("truncated stream accepted")
	}
	f.begin(1 << 20)
	f.feed(zs[0][:3])
	f.abort()
}

// A deflater for a window below 2^15 writes no back-references at all (any
// window fits), still compresses, and its messages inflate alone.
func TestDeflaterNoBackRefs(t *testing.T) {
	text := windowText()
	for _, d := range []*deflater{{}, {noBackRefs: true}} {
		for i := 0; i < 2; i++ {
			z, err := d.deflate(text)
			if err != nil {
				t.Fatal(err)
			}
			out, dist, err := flatewindow.Inflate(append(z, deflateTail...), nil)
			if err != nil || !bytes.Equal(out, text) || !bytes.Equal(inflateAll(z), text) {
				t.Fatalf("noBackRefs %v message %d: %v", d.noBackRefs, i, err)
			}
			if d.noBackRefs && dist != 0 || !d.noBackRefs && dist == 0 {
				t.Fatalf("noBackRefs %v: longest distance %d", d.noBackRefs, dist)
			}
			if len(z) >= len(text) {
				t.Fatalf("noBackRefs %v: %d bytes for %d", d.noBackRefs, len(z), len(text))
			}
		}
	}
}
