//lint:file-ignore SA1019 tests read whole frames of their own peers with ws.ReadFrame

package wsengine

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// srvConn is one connection accepted by a test Server, with its events.
type srvConn struct {
	c    *Conn
	path string
	ev   *events
}

// testServer starts a Server on 127.0.0.1 with options; accepted connections
// ("name=value") arrive on the returned channel. echo makes every accepted
// connection echo.
func testServer(t *testing.T, echo bool, opts ...string) (*Server, chan *srvConn) {
	t.Helper()
	accepted := make(chan *srvConn, 16)
	s := NewServer(func(c *Conn, path string) func(Event) {
		sc := &srvConn{c: c, path: path, ev: newEvents(t)}
		accepted <- sc
		return func(e Event) {
			if echo && e.Type == EventReceive {
				c.Send(e.Opcode, bytes.Clone(e.Data))
			}
			sc.ev.emit(e)
		}
	})
	for _, kv := range opts {
		name, value, _ := strings.Cut(kv, "=")
		if err := s.SetOption(name, value); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetOption("port", "0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Abandon()
		for _, c := range s.Clients() {
			waitRun(t, c)
		}
	})
	return s, accepted
}

func nextAccepted(t *testing.T, ch chan *srvConn) *srvConn {
	t.Helper()
	select {
	case sc := <-ch:
		return sc
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted within 5 s")
	}
	return nil
}

func TestServerEcho(t *testing.T) {
	s, acc := testServer(t, true, "protocols=chat,superchat")
	c, ev := dialTest(t, fmt.Sprintf("ws://127.0.0.1:%d/chat?room=1", s.Port()), "protocols", "nope,superchat", "header", "X-Token: abc")
	if e := ev.expect(EventEstablished); string(e.Data) != "superchat" {
		t.Fatalf("client: protocol %q", e.Data)
	}
	sc := nextAccepted(t, acc)
	if e := sc.ev.expect(EventEstablished); string(e.Data) != "/chat?room=1" || sc.path != "/chat?room=1" {
		t.Fatalf("server: path %q / %q", e.Data, sc.path)
	}
	if sc.c.Protocol() != "superchat" || sc.c.State() != StateOpen {
		t.Fatalf("server conn: protocol %q state %d", sc.c.Protocol(), sc.c.State())
	}
	h, ok := sc.c.RequestHeaders()
	if !ok || len(h) < 2 || h[0] != [2]string{"Host", fmt.Sprintf("127.0.0.1:%d", s.Port())} {
		t.Fatalf("request headers %q", h)
	}
	found := false
	for _, kv := range h {
		found = found || kv == [2]string{"X-Token", "abc"}
		if strings.HasPrefix(strings.ToLower(kv[0]), "sec-websocket") {
			t.Fatalf("handshake header %q listed", kv)
		}
	}
	if peer, ok := sc.c.Peer(); !found || !ok || !strings.HasPrefix(peer, "127.0.0.1:") {
		t.Fatalf("X-Token in %q: %v; peer %q", h, found, peer)
	}
	if _, ok := c.RequestHeaders(); ok {
		t.Fatal("a client connection reports request headers")
	}
	for _, m := range []struct {
		op OpCode
		p  string
	}{{OpText, "hello"}, {OpBinary, "\x00\x01\xff"}, {OpText, ""}, {OpBinary, strings.Repeat("x\x00", 300000)}} {
		if err := c.Send(m.op, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		if e := sc.ev.expect(EventReceive); e.Opcode != m.op || string(e.Data) != m.p {
			t.Fatalf("server got op %d len %d, want op %d len %d", e.Opcode, len(e.Data), m.op, len(m.p))
		}
		if e := ev.expect(EventReceive); e.Opcode != m.op || string(e.Data) != m.p {
			t.Fatalf("echo: op %d len %d, want op %d len %d", e.Opcode, len(e.Data), m.op, len(m.p))
		}
	}
	if err := sc.c.Connect(); err == nil {
		t.Fatal("Connect on an accepted connection succeeded")
	}
	if err := c.Close(4001, "bye"); err != nil {
		t.Fatal(err)
	}
	if e := sc.ev.expect(EventClosed); !e.Clean || e.Code != 4001 || string(e.Data) != "bye" {
		t.Fatalf("server side closed: %+v %q", e, e.Data)
	}
	if e := ev.expect(EventClosed); !e.Clean || e.Code != 4001 {
		t.Fatalf("client side closed: %+v %q", e, e.Data)
	}
}

func TestServerClosesClient(t *testing.T) {
	s, acc := testServer(t, false)
	_, ev := dialTest(t, fmt.Sprintf("ws://127.0.0.1:%d/", s.Port()))
	ev.expect(EventEstablished)
	sc := nextAccepted(t, acc)
	sc.ev.expect(EventEstablished)
	if err := sc.c.Close(4002, "why"); err != nil {
		t.Fatal(err)
	}
	if e := ev.expect(EventClosed); !e.Clean || e.Code != 4002 || string(e.Data) != "why" {
		t.Fatalf("client side closed: %+v %q", e, e.Data)
	}
	if e := sc.ev.expect(EventClosed); !e.Clean || e.Code != 4002 {
		t.Fatalf("server side closed: %+v %q", e, e.Data)
	}
}

// A raw client that breaks the protocol: an unmasked frame fails the
// connection with 1002, and the server's close frame is unmasked.
func TestServerRejectsUnmaskedFrames(t *testing.T) {
	s, acc := testServer(t, true)
	nc, br, _ := rawClient(t, s, "")
	sc := nextAccepted(t, acc)
	sc.ev.expect(EventEstablished)
	// A masked frame is echoed (unmasked, as a server must).
	if err := ws.WriteFrame(nc, ws.MaskFrameInPlace(ws.NewTextFrame([]byte("masked")))); err != nil {
		t.Fatal(err)
	}
	f, err := ws.ReadFrame(br)
	if err != nil || f.Header.Masked || string(f.Payload) != "masked" {
		t.Fatalf("echo: %v masked=%v %q", err, f.Header.Masked, f.Payload)
	}
	sc.ev.expect(EventReceive)
	if err := ws.WriteFrame(nc, ws.NewTextFrame([]byte("plain"))); err != nil {
		t.Fatal(err)
	}
	f, err = ws.ReadFrame(br)
	if err != nil || f.Header.OpCode != ws.OpClose || f.Header.Masked {
		t.Fatalf("want an unmasked close frame: %v %+v", err, f.Header)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusProtocolError {
		t.Fatalf("close code %d", code)
	}
	if e := sc.ev.expect(EventClosed); e.Clean || e.Code != CloseProtocolError || !strings.Contains(string(e.Data), "unmasked") {
		t.Fatalf("server side closed: %+v %q", e, e.Data)
	}
}

func TestServerBroadcastAndClose(t *testing.T) {
	s, acc := testServer(t, false)
	url := fmt.Sprintf("ws://127.0.0.1:%d/", s.Port())
	var evs []*events
	for i := 0; i < 3; i++ {
		_, ev := dialTest(t, url)
		ev.expect(EventEstablished)
		nextAccepted(t, acc).ev.expect(EventEstablished)
		evs = append(evs, ev)
	}
	if n := len(s.Clients()); n != 3 {
		t.Fatalf("%d clients", n)
	}
	if n, err := s.Broadcast(OpText, []byte("to all")); n != 3 || err != nil {
		t.Fatalf("broadcast: %d %v", n, err)
	}
	if _, err := s.Broadcast(OpText, []byte{0xff}); err == nil {
		t.Fatal("broadcast of invalid UTF-8 text succeeded")
	}
	for i, ev := range evs {
		if e := ev.expect(EventReceive); string(e.Data) != "to all" || e.Opcode != OpText {
			t.Fatalf("client %d: %q", i, e.Data)
		}
	}
	port := s.Port()
	if err := s.Close(0, "bye all"); err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if e := ev.expect(EventClosed); !e.Clean || e.Code != CloseGoingAway || string(e.Data) != "bye all" {
			t.Fatalf("client %d closed: %+v %q", i, e, e.Data)
		}
	}
	if s.Port() != 0 || s.Listening() {
		t.Fatal("still listening after Close")
	}
	if _, err := s.Broadcast(OpText, []byte("late")); err != ErrServerClosed {
		t.Fatalf("broadcast after close: %v", err)
	}
	_, ev := dialTest(t, fmt.Sprintf("ws://127.0.0.1:%d/", port))
	ev.expect(EventConnectionError)
}

func TestServerMaxClientsAndPortInUse(t *testing.T) {
	s, acc := testServer(t, false, "max_clients=1")
	url := fmt.Sprintf("ws://127.0.0.1:%d/", s.Port())
	_, ev1 := dialTest(t, url)
	ev1.expect(EventEstablished)
	nextAccepted(t, acc)
	_, ev2 := dialTest(t, url)
	if e := ev2.expect(EventConnectionError); !strings.Contains(string(e.Data), "not 101") {
		t.Fatalf("second client: %q", e.Data)
	}
	other := NewServer(func(*Conn, string) func(Event) { return nil })
	other.SetOption("port", fmt.Sprint(s.Port()))
	if err := other.Listen(); err == nil || !strings.Contains(err.Error(), "address already in use") {
		other.Abandon()
		t.Fatalf("second Listen on the same port: %v", err)
	}
	if err := other.SetOption("bogus", "1"); err == nil {
		t.Fatal("unknown option accepted")
	}
	if err := NewServer(nil).Listen(); err == nil || !strings.Contains(err.Error(), "port") {
		t.Fatalf("Listen without a port: %v", err)
	}
}

// A message over the server's max_message_size fails that client with 1009.
func TestServerMaxMessageSize(t *testing.T) {
	s, acc := testServer(t, true, "max_message_size=1000")
	c, ev := dialTest(t, fmt.Sprintf("ws://127.0.0.1:%d/", s.Port()))
	ev.expect(EventEstablished)
	sc := nextAccepted(t, acc)
	sc.ev.expect(EventEstablished)
	if err := c.Send(OpBinary, make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	if e := sc.ev.expect(EventClosed); e.Code != CloseMessageTooBig {
		t.Fatalf("server side: %+v %q", e, e.Data)
	}
	if e := ev.expect(EventClosed); e.Code != CloseMessageTooBig {
		t.Fatalf("client side: %+v %q", e, e.Data)
	}
}

// Many clients echo concurrently (run with -race).
func TestServerConcurrentClients(t *testing.T) {
	s, _ := testServer(t, true)
	url := fmt.Sprintf("ws://127.0.0.1:%d/", s.Port())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		c, ev := dialTest(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev.expect(EventEstablished)
			for j := 0; j < 50; j++ {
				msg := fmt.Sprintf("%d-%d", i, j)
				c.Send(OpText, []byte(msg))
				if e := ev.expect(EventReceive); string(e.Data) != msg {
					t.Errorf("got %q want %q", e.Data, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestServerBroadcastReachesAnsweredClient: a client that has read its 101
// is in every broadcast made after that, before the server's Lua side has
// seen its open event (the 101 used to go out before the client was one of
// the server's clients: a broadcast in between missed it).
func TestServerBroadcastReachesAnsweredClient(t *testing.T) {
	s, acc := testServer(t, false)
	for i := 0; i < 200; i++ {
		nc, br, _ := rawClient(t, s, "")
		nextAccepted(t, acc)
		if n, err := s.Broadcast(OpText, []byte("now")); err != nil || n < 1 {
			t.Fatalf("round %d: broadcast reached %d clients: %v", i, n, err)
		}
		f, err := ws.ReadFrame(br)
		if err != nil || string(f.Payload) != "now" {
			t.Fatalf("round %d: %q %v", i, f.Payload, err)
		}
		nc.Close()
	}
}

// rawClient completes an opening handshake with s as a raw TCP client,
// sending the extra header lines (each ending in "\r\n"); it fails the test
// unless the answer is 101. It returns the connection, its reader and the
// response headers (lower-case names).
