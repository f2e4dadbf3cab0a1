//lint:file-ignore SA1019 tests read whole frames of their own peers with ws.ReadFrame

package wsengine

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/verawebsockets/verawebsockets/internal/leakcheck"
)

// TestMain fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// recorderEvents collects the events of one Conn.
type events struct {
	t  *testing.T
	ch chan Event
	mu sync.Mutex
	n  int
}

func newEvents(t *testing.T) *events { return &events{t: t, ch: make(chan Event, 1024)} }

func (e *events) emit(ev Event) {
	e.mu.Lock()
	e.n++
	e.mu.Unlock()
	e.ch <- ev
}

func (e *events) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// next waits for the next event.
func (e *events) next(d time.Duration) Event {
	e.t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(d):
		e.t.Fatalf("no event within %v", d)
	}
	return Event{}
}

// expect waits up to 5 s for the next event and checks its type.
func (e *events) expect(typ EventType) Event {
	e.t.Helper()
	return e.expectWithin(typ, 5*time.Second)
}

// expectWithin waits up to d for the next event and checks its type.
func (e *events) expectWithin(typ EventType, d time.Duration) Event {
	e.t.Helper()
	ev := e.next(d)
	if ev.Type != typ {
		e.t.Fatalf("got event %d (code %d, %q), want %d", ev.Type, ev.Code, ev.Data, typ)
	}
	return ev
}

// none checks that no event arrives within d.
func (e *events) none(d time.Duration) {
	e.t.Helper()
	select {
	case ev := <-e.ch:
		e.t.Fatalf("unexpected event %d %q", ev.Type, ev.Data)
	case <-time.After(d):
	}
}

// dialTest makes a Conn with options and connects it.
func dialTest(t *testing.T, url string, opts ...string) (*Conn, *events) {
	t.Helper()
	ev := newEvents(t)
	c, err := NewConn(url, ev.emit)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(opts); i += 2 {
		if err := c.SetOption(opts[i], opts[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Abandon()
		waitRun(t, c)
	})
	return c, ev
}

// waitRun waits for the run goroutine of c to end.
func waitRun(t testing.TB, c *Conn) {
	t.Helper()
	c.mu.Lock()
	done := c.runDone
	c.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("run goroutine did not end")
	}
}

// server is a test server on 127.0.0.1 calling handle per connection.
type server struct {
	ln  net.Listener
	wg  sync.WaitGroup
	url string
}

func newServer(t *testing.T, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, handle)
}

func serveOn(t *testing.T, ln net.Listener, handle func(net.Conn)) *server {
	s := &server{ln: ln, url: "ws://" + ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				handle(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// rawHandshake reads a client handshake and answers 101; it returns the
// request and a reader positioned after it.
func rawHandshake(nc net.Conn, extra string) (*http.Request, *bufio.Reader, error) {
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	_, err = io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "+acceptKey(req.Header.Get("Sec-WebSocket-Key"))+"\r\n"+extra+"\r\n")
	return req, br, err
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// bits turns "1 000 0001 0 0000011" style text into bytes (gobwas rw_test).
func bits(s string) []byte {
	s = strings.ReplaceAll(s, " ", "")
	out := make([]byte, 0, len(s)/8)
	for i := 0; i+8 <= len(s); i += 8 {
		var b byte
		for _, c := range s[i : i+8] {
			b = b<<1 | byte(c-'0')
		}
		out = append(out, b)
	}
	return out
}

// frame builds an unmasked server frame.
func frame(fin bool, rsv byte, op ws.OpCode, p []byte) []byte {
	var buf bytes.Buffer
	ws.WriteHeader(&buf, ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(p))})
	buf.Write(p)
	return buf.Bytes()
}

// readClientFrame reads one (masked) client frame and unmasks it.
func readClientFrame(br *bufio.Reader) (ws.Frame, error) {
	f, err := ws.ReadFrame(br)
	if err != nil {
		return f, err
	}
	if !f.Header.Masked {
		return f, errors.New("client frame not masked")
	}
	return ws.UnmaskFrameInPlace(f), nil
}

// echoHandler is a strict little echo server built on raw frames.
func echoHandler(extra string, onReq func(*http.Request)) func(net.Conn) {
	return func(nc net.Conn) {
		req, br, err := rawHandshake(nc, extra)
		if err != nil {
			return
		}
		if onReq != nil {
			onReq(req)
		}
		echoFrames(nc, br, nil)
	}
}

// echoFrames echoes messages (reassembled) and answers pings and close.
// inflate, if set, decompresses RSV1 messages before echoing them plainly.
func echoFrames(nc net.Conn, br *bufio.Reader, inflate func([]byte) []byte) {
	var msg []byte
	var op ws.OpCode
	var rsv byte
	for {
		f, err := readClientFrame(br)
		if err != nil {
			return
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			nc.Write(frame(true, 0, ws.OpPong, f.Payload))
		case ws.OpPong:
		case ws.OpClose:
			nc.Write(frame(true, 0, ws.OpClose, f.Payload))
			return
		default:
			if f.Header.OpCode != ws.OpContinuation {
				op, msg, rsv = f.Header.OpCode, nil, f.Header.Rsv
			}
			msg = append(msg, f.Payload...)
			if f.Header.Fin {
				if rsv != 0 && inflate != nil {
					msg = inflate(msg)
				}
				nc.Write(frame(true, 0, op, msg))
			}
		}
	}
}
