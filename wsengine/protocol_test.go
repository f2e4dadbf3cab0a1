package wsengine

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// violationServer sends raw after the handshake and reports the close frame
// the client sends back (code, or -1 if none).
func violationServer(t *testing.T, raw []byte) (*server, chan int) {
	got := make(chan int, 1)
	srv := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		nc.Write(raw)
		for {
			f, err := readClientFrame(br)
			if err != nil {
				got <- -1
				return
			}
			if f.Header.OpCode == ws.OpClose {
				code := -1
				if len(f.Payload) >= 2 {
					code = int(f.Payload[0])<<8 | int(f.Payload[1])
				}
				got <- code
				return
			}
		}
	})
	return srv, got
}

func TestProtocolViolations(t *testing.T) {
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	cases := []struct {
		name string
		raw  []byte
		code StatusCode
		opts []string
	}{
		{"rsv1 without extension", frame(true, 4, ws.OpText, []byte("x")), 1002, nil},
		{"rsv2", frame(true, 2, ws.OpBinary, []byte("x")), 1002, nil},
		{"rsv3", frame(true, 1, ws.OpBinary, nil), 1002, nil},
		{"opcode 3", frame(true, 0, 3, nil), 1002, nil},
		{"opcode 7", frame(true, 0, 7, nil), 1002, nil},
		{"opcode 11", frame(true, 0, 11, nil), 1002, nil},
		{"opcode 15", frame(true, 0, 15, nil), 1002, nil},
		{"masked frame", bits("1 000 0001 1 0000001 00000001 00000010 00000011 00000100 01100001"), 1002, nil},
		{"ping over 125", frame(true, 0, ws.OpPing, make([]byte, 126)), 1002, nil},
		{"fragmented ping", frame(false, 0, ws.OpPing, nil), 1002, nil},
		{"lone continuation", frame(true, 0, ws.OpContinuation, []byte("x")), 1002, nil},
		{"text inside message", cat(frame(false, 0, ws.OpText, []byte("a")), frame(true, 0, ws.OpText, []byte("b"))), 1002, nil},
		{"close 1 byte", frame(true, 0, ws.OpClose, []byte{3}), 1002, nil},
		{"close code 999", frame(true, 0, ws.OpClose, []byte{0x03, 0xe7}), 1002, nil},
		{"close code 1004", frame(true, 0, ws.OpClose, []byte{0x03, 0xec}), 1002, nil},
		{"close code 1005", frame(true, 0, ws.OpClose, []byte{0x03, 0xed}), 1002, nil},
		{"close code 1006", frame(true, 0, ws.OpClose, []byte{0x03, 0xee}), 1002, nil},
		{"close code 1015", frame(true, 0, ws.OpClose, []byte{0x03, 0xf7}), 1002, nil},
		{"close code 2999", frame(true, 0, ws.OpClose, []byte{0x0b, 0xb7}), 1002, nil},
		{"close code 5000", frame(true, 0, ws.OpClose, []byte{0x13, 0x88}), 1002, nil},
		{"close bad utf8 reason", frame(true, 0, ws.OpClose, []byte{0x03, 0xe8, 0xff}), 1007, nil},
		{"bad utf8 text", frame(true, 0, ws.OpText, []byte("ok\xff")), 1007, nil},
		{"surrogate", frame(true, 0, ws.OpText, []byte("\xed\xa0\x80")), 1007, nil},
		{"truncated utf8 at fin", frame(true, 0, ws.OpText, []byte("\xc3")), 1007, nil},
		// Fails on the first fragment, before FIN: the server never sends the rest.
		{"bad utf8 before fin", frame(false, 0, ws.OpText, []byte("\xf4\x90")), 1007, nil},
		{"too big single", frame(true, 0, ws.OpBinary, make([]byte, 101)), 1009, []string{"max_message_size", "100"}},
		{"too big fragments", cat(frame(false, 0, ws.OpBinary, make([]byte, 60)), frame(false, 0, ws.OpContinuation, make([]byte, 41))), 1009, []string{"max_message_size", "100"}},
		// Only the header arrives: the limit is checked before any payload.
		{"too big header only", bits("1 000 0010 0 1111111 00000000 00000000 00000000 00000000 01000000 00000000 00000000 00000000"), 1009, nil},
		{"64-bit length msb", bits("1 000 0010 0 1111111 10000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001"), 1002, nil},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			srv, got := violationServer(t, tc.raw)
			c, ev := dialTest(t, srv.url, tc.opts...)
			ev.expect(EventEstablished)
			e := ev.expect(EventClosed)
			if e.Clean || e.Code != tc.code {
				t.Fatalf("closed clean=%v code=%d %q, want unclean %d", e.Clean, e.Code, e.Data, tc.code)
			}
			select {
			case code := <-got:
				if StatusCode(code) != tc.code {
					t.Fatalf("server got close code %d, want %d", code, tc.code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("server saw nothing")
			}
			if c.State() != StateClosed {
				t.Fatalf("state %d", c.State())
			}
		})
	}
}

func TestPeerClose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		code    StatusCode
		reason  string
		echo    []byte
	}{
		{"with code", []byte("\x03\xe9gone"), 1001, "gone", []byte{0x03, 0xe9}},
		{"empty", nil, 1005, "", nil},
		{"private code", []byte{0x0f, 0xa0}, 4000, "", []byte{0x0f, 0xa0}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			echo := make(chan []byte, 1)
			srv := newServer(t, func(nc net.Conn) {
				_, br, err := rawHandshake(nc, "")
				if err != nil {
					return
				}
				nc.Write(frame(true, 0, ws.OpText, []byte("last")))
				nc.Write(frame(true, 0, ws.OpClose, tc.payload))
				f, err := readClientFrame(br)
				if err == nil && f.Header.OpCode == ws.OpClose {
					echo <- f.Payload
				}
			})
			_, ev := dialTest(t, srv.url)
			ev.expect(EventEstablished)
			if e := ev.expect(EventReceive); string(e.Data) != "last" {
				t.Fatalf("got %q", e.Data)
			}
			e := ev.expect(EventClosed)
			if !e.Clean || e.Code != tc.code || string(e.Data) != tc.reason {
				t.Fatalf("closed %+v %q", e, e.Data)
			}
			select {
			case p := <-echo:
				if !bytes.Equal(p, tc.echo) {
					t.Fatalf("echo %x, want %x", p, tc.echo)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no close echo")
			}
		})
	}
}

func TestCloseTimeout(t *testing.T) {
	srv := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		for { // read everything, never answer
			if _, err := readClientFrame(br); err != nil {
				return
			}
		}
	})
	c, ev := dialTest(t, srv.url, "close_timeout", "200")
	ev.expect(EventEstablished)
	start := time.Now()
	c.Close(4001, "x")
	if c.State() != StateClosing {
		t.Fatalf("state %d", c.State())
	}
	e := ev.expect(EventClosed)
	if e.Clean || e.Code != 1006 || string(e.Data) != "close timeout" {
		t.Fatalf("closed %+v %q", e, e.Data)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestPeerHangUp(t *testing.T) {
	srv := newServer(t, func(nc net.Conn) {
		rawHandshake(nc, "")
	})
	_, ev := dialTest(t, srv.url)
	ev.expect(EventEstablished)
	e := ev.expect(EventClosed)
	if e.Clean || e.Code != 1006 || string(e.Data) != "Peer hung up" {
		t.Fatalf("closed %+v %q", e, e.Data)
	}
}

func TestPingPong(t *testing.T) {
	srv := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		nc.Write(frame(true, 0, ws.OpPong, []byte("unsolicited")))
		echoFrames(nc, br, nil)
	})
	c, ev := dialTest(t, srv.url, "pong_events", "1")
	ev.expect(EventEstablished)
	if e := ev.expect(EventReceivePong); string(e.Data) != "unsolicited" {
		t.Fatalf("pong %q", e.Data)
	}
	if err := c.Ping([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if e := ev.expect(EventReceivePong); string(e.Data) != "abc" {
		t.Fatalf("pong %q", e.Data)
	}
	if err := c.Ping(make([]byte, 126)); err == nil {
		t.Fatal("126-byte ping accepted")
	}

	// Without pong_events, pongs are silent.
	c2, ev2 := dialTest(t, srv.url)
	ev2.expect(EventEstablished)
	c2.Ping(nil)
	c2.Send(OpText, []byte("after"))
	if e := ev2.expect(EventReceive); string(e.Data) != "after" {
		t.Fatalf("got %q", e.Data)
	}
}

func TestKeepalive(t *testing.T) {
	// A server that answers pings keeps the connection. The pong timeout is
	// long so that a scheduling stall (-race, loaded CI) cannot end it.
	srv := newServer(t, echoHandler("", nil))
	_, ev := dialTest(t, srv.url, "ping_interval", "50", "pong_timeout", "2000", "pong_events", "1")
	ev.expect(EventEstablished)
	for i := 0; i < 3; i++ {
		ev.expect(EventReceivePong)
	}
	// A silent server is dropped after pong_timeout.
	mute := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		for {
			if _, err := readClientFrame(br); err != nil {
				return
			}
		}
	})
	_, ev2 := dialTest(t, mute.url, "ping_interval", "50", "pong_timeout", "150")
	ev2.expect(EventEstablished)
	e := ev2.expect(EventClosed)
	if e.Clean || e.Code != 1006 || string(e.Data) != "pong timeout" {
		t.Fatalf("closed %+v %q", e, e.Data)
	}
}

func TestSendErrors(t *testing.T) {
	srv := newServer(t, echoHandler("", nil))
	c, ev := dialTest(t, srv.url, "max_send_queue", "10", "max_message_size", "20", "writeable_events", "1")
	if err := c.Send(OpText, []byte("x")); err != ErrNotOpen && c.State() != StateOpen {
		t.Fatalf("send while connecting: %v", err)
	}
	ev.expect(EventEstablished)
	if err := c.Send(OpBinary, make([]byte, 21)); err != ErrTooBig {
		t.Fatalf("too big: %v", err)
	}
	if err := c.Send(OpBinary, make([]byte, 11)); err != ErrQueueFull {
		t.Fatalf("queue full: %v", err)
	}
	if err := c.Send(OpText, []byte{0xff}); err == nil {
		t.Fatal("invalid UTF-8 text accepted")
	}
	if err := c.Send(3, []byte{1}); err == nil {
		t.Fatal("opcode 3 accepted")
	}
	if err := c.Send(OpText, []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	var gotW, gotR bool
	for !gotW || !gotR {
		switch e := ev.next(5 * time.Second); e.Type {
		case EventWriteable:
			gotW = true
		case EventReceive:
			gotR = true
		default:
			t.Fatalf("event %d", e.Type)
		}
	}
	if c.Buffered() != 0 {
		t.Fatalf("buffered %d", c.Buffered())
	}
}

func TestQueueFullWhileBlocked(t *testing.T) {
	// The server never reads: the queue fills once the socket buffers do.
	release := make(chan struct{})
	srv := newServer(t, func(nc net.Conn) {
		if _, _, err := rawHandshake(nc, ""); err != nil {
			return
		}
		<-release
	})
	c, ev := dialTest(t, srv.url, "max_send_queue", "1048576")
	ev.expect(EventEstablished)
	var err error
	sent := 0
	for i := 0; i < 1000 && err == nil; i++ {
		err = c.Send(OpBinary, make([]byte, 256<<10))
		sent++
	}
	close(release)
	if err != ErrQueueFull {
		t.Fatalf("after %d sends: %v", sent, err)
	}
	if b := c.Buffered(); b <= 0 || b > 1<<20 {
		t.Fatalf("buffered %d", b)
	}
}

func TestAbandon(t *testing.T) {
	srv := newServer(t, echoHandler("", nil))
	c, ev := dialTest(t, srv.url)
	ev.expect(EventEstablished)
	c.Send(OpText, []byte("x"))
	c.Abandon()
	n := ev.count()
	waitRun(t, c)
	time.Sleep(50 * time.Millisecond)
	if ev.count() != n {
		t.Fatal("event after Abandon")
	}
	if c.State() != StateClosed {
		t.Fatalf("state %d", c.State())
	}
	if err := c.Connect(); err == nil {
		t.Fatal("connect after abandon")
	}
}

func TestCloseWhileConnecting(t *testing.T) {
	srv, accepted := newHoldingServer(t)
	c, ev := dialTest(t, srv.url)
	waitAccepted(t, accepted) // the handshake is under way
	if c.State() != StateConnecting {
		t.Fatalf("state %d", c.State())
	}
	c.Close(0, "")
	e := ev.expect(EventClosed)
	if e.Clean || e.Code != 1006 {
		t.Fatalf("closed %+v", e)
	}
	waitRun(t, c)
	if c.State() != StateClosed {
		t.Fatalf("state %d", c.State())
	}
}

func TestLocalCloseReportsOwnCode(t *testing.T) {
	// The server echoes only the code (as gobwas/wsutil does).
	srv := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		f, err := readClientFrame(br)
		if err == nil && f.Header.OpCode == ws.OpClose && len(f.Payload) >= 2 {
			nc.Write(frame(true, 0, ws.OpClose, f.Payload[:2]))
		}
	})
	c, ev := dialTest(t, srv.url)
	ev.expect(EventEstablished)
	c.Close(4321, "my reason")
	e := ev.expect(EventClosed)
	if !e.Clean || e.Code != 4321 || string(e.Data) != "my reason" {
		t.Fatalf("closed %+v %q", e, e.Data)
	}
}
