//lint:file-ignore SA1019 tests read whole frames of their own peers with ws.ReadFrame

package wsengine

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// orderedServer sends raw after the handshake and reports every frame the
// client sends back (unmasked), up to and including its close frame; the
// channel is closed after the close frame or a read error.
func orderedServer(t *testing.T, raw []byte) (*server, chan ws.Frame) {
	got := make(chan ws.Frame, 16)
	srv := newServer(t, func(nc net.Conn) {
		defer close(got)
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		nc.Write(raw)
		for {
			f, err := readClientFrame(br)
			if err != nil {
				return
			}
			got <- f
			if f.Header.OpCode == ws.OpClose {
				return
			}
		}
	})
	return srv, got
}

// dialOrdered is dialTest for a Conn that fails in order.
func dialOrdered(t *testing.T, url string, opts ...string) (*Conn, *events) {
	t.Helper()
	ev := newEvents(t)
	c, err := NewConn(url, ev.emit)
	if err != nil {
		t.Fatal(err)
	}
	c.SetFailInOrder(true)
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

// nextFrame waits up to 5 s for the next frame a peer reported.
func nextFrame(t *testing.T, got chan ws.Frame) ws.Frame {
	t.Helper()
	select {
	case f, ok := <-got:
		if !ok {
			t.Fatal("the peer read no more frames")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5 s")
	}
	return ws.Frame{}
}

// expectClose checks that f is a close frame with code.
func expectClose(t *testing.T, f ws.Frame, code StatusCode) {
	t.Helper()
	if f.Header.OpCode != ws.OpClose {
		t.Fatalf("got opcode %d %q, want a close frame", f.Header.OpCode, f.Payload)
	}
	if c, _ := ws.ParseCloseFrameData(f.Payload); StatusCode(c) != code {
		t.Fatalf("close code %d, want %d", c, code)
	}
}

// A message, then a protocol violation (as Autobahn's 3.2, 4.1.3 and 5.15):
// the violation waits behind the message (EventFailPending), the connection
// stays open while its handler runs, and the echo the handler sends, even
// late, is on the wire before the close frame.
func TestFailInOrder(t *testing.T) {
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	hello := []byte("Hello, world!")
	cases := []struct {
		name string
		raw  []byte
		code StatusCode
	}{
		{"rsv 2", cat(frame(true, 0, ws.OpText, hello), frame(true, 2, ws.OpText, hello), frame(true, 0, ws.OpPing, nil)), 1002},
		{"opcode 5", cat(frame(true, 0, ws.OpText, hello), frame(true, 0, 5, nil), frame(true, 0, ws.OpPing, nil)), 1002},
		{"fragments then fin=false continuation", cat(frame(false, 0, ws.OpText, hello[:5]), frame(true, 0, ws.OpContinuation, hello[5:]),
			frame(false, 0, ws.OpContinuation, hello), frame(true, 0, ws.OpText, hello)), 1002},
		{"bad utf8 next", cat(frame(true, 0, ws.OpText, hello), frame(true, 0, ws.OpText, []byte("ok\xff"))), 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := orderedServer(t, tc.raw)
			c, ev := dialOrdered(t, srv.url)
			ev.expect(EventEstablished)
			m := ev.expect(EventReceive)
			if string(m.Data) != string(hello) {
				t.Fatalf("message %q", m.Data)
			}
			fp := ev.expect(EventFailPending)
			if fp.Code != tc.code {
				t.Fatalf("EventFailPending code %d %q, want %d", fp.Code, fp.Data, tc.code)
			}
			time.Sleep(100 * time.Millisecond) // a slow handler
			if st := c.State(); st != StateOpen {
				t.Fatalf("state %d while the failure waits, want open", st)
			}
			if err := c.Send(OpText, bytes.Clone(m.Data)); err != nil {
				t.Fatalf("echo: %v", err)
			}
			c.FailNow()
			if f := nextFrame(t, got); f.Header.OpCode != ws.OpText || string(f.Payload) != string(hello) {
				t.Fatalf("first frame: opcode %d %q, want the echo", f.Header.OpCode, f.Payload)
			}
			expectClose(t, nextFrame(t, got), tc.code)
			if e := ev.expect(EventClosed); e.Clean || e.Code != tc.code {
				t.Fatalf("closed clean=%v code=%d %q, want unclean %d", e.Clean, e.Code, e.Data, tc.code)
			}
			c.FailNow() // late: nothing pending, nothing happens
		})
	}
}

// A consumer that never comes back does not hold the broken connection open:
// it fails after close_timeout.
func TestFailInOrderStalled(t *testing.T) {
	hello := []byte("Hello")
	srv, got := orderedServer(t, append(frame(true, 0, ws.OpText, hello), frame(true, 0, 3, nil)...))
	_, ev := dialOrdered(t, srv.url, "close_timeout", "300")
	ev.expect(EventEstablished)
	ev.expect(EventReceive)
	start := time.Now()
	ev.expect(EventFailPending)
	expectClose(t, nextFrame(t, got), 1002)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("failed after %v, before close_timeout (300 ms)", d)
	}
	if e := ev.expect(EventClosed); e.Clean || e.Code != 1002 {
		t.Fatalf("closed clean=%v code=%d %q", e.Clean, e.Code, e.Data)
	}
}

// Close or Abandon called while the failure waits ends the wait: Close's
// frame goes out (the only close frame), Abandon's 1001.
func TestFailInOrderCloseWhileWaiting(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(fmt.Sprintf("abandon=%v", abandon), func(t *testing.T) {
			srv, got := orderedServer(t, append(frame(true, 0, ws.OpText, []byte("x")), frame(true, 0, 3, nil)...))
			c, ev := dialOrdered(t, srv.url)
			ev.expect(EventEstablished)
			ev.expect(EventReceive)
			ev.expect(EventFailPending)
			if abandon {
				c.Abandon()
				expectClose(t, nextFrame(t, got), CloseGoingAway)
				waitRun(t, c)
				return
			}
			if err := c.Close(4000, "bye"); err != nil {
				t.Fatal(err)
			}
			expectClose(t, nextFrame(t, got), 4000)
			if e := ev.expect(EventClosed); e.Clean || e.Code != 1002 {
				t.Fatalf("closed clean=%v code=%d %q", e.Clean, e.Code, e.Data)
			}
		})
	}
}

// Server role: the same order for a client's violation after a message.
func TestServerFailInOrder(t *testing.T) {
	acc := make(chan *srvConn, 1)
	s := NewServer(func(c *Conn, path string) func(Event) {
		c.SetFailInOrder(true)
		sc := &srvConn{c: c, path: path, ev: newEvents(t)}
		acc <- sc
		return sc.ev.emit
	})
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
	nc, br, _ := rawClient(t, s, "")
	sc := nextAccepted(t, acc)
	sc.ev.expect(EventEstablished)
	nc.Write(append(maskedFrame(true, 0, ws.OpBinary, []byte{1, 2, 3}), maskedFrame(true, 0, 14, nil)...))
	m := sc.ev.expect(EventReceive)
	sc.ev.expect(EventFailPending)
	time.Sleep(50 * time.Millisecond)
	if err := sc.c.Send(OpBinary, bytes.Clone(m.Data)); err != nil {
		t.Fatalf("echo: %v", err)
	}
	sc.c.FailNow()
	readServerFrame := func() ws.Frame {
		t.Helper()
		f, err := ws.ReadFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := readServerFrame(); f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, m.Data) {
		t.Fatalf("first frame: opcode %d %v, want the echo", f.Header.OpCode, f.Payload)
	}
	expectClose(t, readServerFrame(), 1002)
	if e := sc.ev.expect(EventClosed); e.Clean || e.Code != 1002 {
		t.Fatalf("closed clean=%v code=%d %q", e.Clean, e.Code, e.Data)
	}
}
