package wsengine

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestEcho(t *testing.T) {
	srv := newServer(t, echoHandler("", nil))
	c, ev := dialTest(t, srv.url+"/echo?x=1")
	if e := ev.expect(EventEstablished); e.Attempt != 1 || len(e.Data) != 0 {
		t.Fatalf("established: %+v", e)
	}
	if c.State() != StateOpen {
		t.Fatalf("state %d", c.State())
	}
	for _, m := range []struct {
		op OpCode
		p  string
	}{{OpText, "hello"}, {OpBinary, "\x00\x01\xff"}, {OpText, ""}, {OpText, strings.Repeat("é", 40000)}} {
		if err := c.Send(m.op, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		e := ev.expect(EventReceive)
		if e.Opcode != m.op || string(e.Data) != m.p {
			t.Fatalf("echo: op %d len %d, want op %d len %d", e.Opcode, len(e.Data), m.op, len(m.p))
		}
	}
	if err := c.Close(0, "bye"); err != nil {
		t.Fatal(err)
	}
	e := ev.expect(EventClosed)
	if !e.Clean || e.Code != 1000 || string(e.Data) != "bye" {
		t.Fatalf("closed: %+v %q", e, e.Data)
	}
	if c.State() != StateClosed {
		t.Fatalf("state %d", c.State())
	}
	if err := c.Close(0, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(OpText, []byte("x")); err != ErrNotOpen {
		t.Fatalf("send after close: %v", err)
	}
}

func TestLargeMessages(t *testing.T) {
	srv := newServer(t, echoHandler("", nil))
	c, ev := dialTest(t, srv.url)
	ev.expect(EventEstablished)
	for _, n := range []int{125, 126, 65535, 65536, 16 << 20} {
		p := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		if err := c.Send(OpBinary, bytes.Clone(p)); err != nil {
			t.Fatal(n, err)
		}
		// 16 MiB each way under -race on a loaded machine can take seconds.
		e := ev.expectWithin(EventReceive, 30*time.Second)
		if !bytes.Equal(e.Data, p) {
			t.Fatalf("size %d: got %d bytes", n, len(e.Data))
		}
	}
	if err := c.Send(OpBinary, make([]byte, 16<<20+1)); err != ErrTooBig {
		t.Fatalf("over max: %v", err)
	}
}

func TestFragmentsAndInterleavedPing(t *testing.T) {
	got := make(chan []byte, 1)
	srv := newServer(t, func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		var b bytes.Buffer
		b.Write(frame(false, 0, ws.OpText, []byte("hel")))
		b.Write(frame(true, 0, ws.OpPing, []byte("p1")))
		b.Write(frame(false, 0, ws.OpContinuation, []byte("lo \xc3")))
		b.Write(frame(true, 0, ws.OpPing, []byte("p2")))
		b.Write(frame(true, 0, ws.OpContinuation, []byte("\xa9")))
		nc.Write(b.Bytes())
		var pongs []byte
		for i := 0; i < 2; i++ {
			f, err := readClientFrame(br)
			if err != nil || f.Header.OpCode != ws.OpPong {
				return
			}
			pongs = append(pongs, f.Payload...)
		}
		got <- pongs
		echoFrames(nc, br, nil)
	})
	_, ev := dialTest(t, srv.url)
	ev.expect(EventEstablished)
	if e := ev.expect(EventReceive); string(e.Data) != "hello é" || e.Opcode != OpText {
		t.Fatalf("got %q", e.Data)
	}
	select {
	case p := <-got:
		if string(p) != "p1p2" {
			t.Fatalf("pongs %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pongs")
	}
}
