//lint:file-ignore SA1019 tests read whole frames of their own peers with ws.ReadFrame

package hub

import (
	"bufio"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/wsengine"
)

// rawPeer is a WebSocket server on 127.0.0.1 for one client: after the
// handshake it writes what the test sends on send, and reports every frame
// the client writes (unmasked) on got, which is closed after the client's
// close frame or a read error.
type rawPeer struct {
	url  string
	send chan []byte
	got  chan ws.Frame
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{url: "ws://" + ln.Addr().String() + "/", send: make(chan []byte, 4), got: make(chan ws.Frame, 16)}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			close(p.got)
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		go func() { <-stop; nc.Close() }()
		up := ws.Upgrader{Protocol: func(p []byte) bool { return string(p) == "echo" }}
		if _, err := up.Upgrade(nc); err != nil {
			close(p.got)
			return
		}
		go func() {
			for {
				select {
				case b := <-p.send:
					nc.Write(b)
				case <-stop:
					return
				}
			}
		}()
		br := bufio.NewReader(nc)
		defer close(p.got)
		for {
			f, err := ws.ReadFrame(br)
			if err != nil {
				return
			}
			p.got <- ws.UnmaskFrameInPlace(f)
			if f.Header.OpCode == ws.OpClose {
				return
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(stop)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("raw peer did not end")
		}
	})
	return p
}

// frameOf builds an unmasked server frame.
func frameOf(fin bool, rsv byte, op ws.OpCode, payload string) []byte {
	b, _ := ws.CompileFrame(ws.Frame{Header: ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(payload))}, Payload: []byte(payload)})
	return b
}

// frame waits up to 5 s for the next frame the client wrote.
func (p *rawPeer) frame(t *testing.T) ws.Frame {
	t.Helper()
	select {
	case f, ok := <-p.got:
		if !ok {
			t.Fatal("the peer read no more frames")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame from the client within 5 s")
	}
	return ws.Frame{}
}

// expectEcho and expectClose check the client's next frame.
func (p *rawPeer) expectEcho(t *testing.T, text string) {
	t.Helper()
	if f := p.frame(t); f.Header.OpCode != ws.OpText || string(f.Payload) != text {
		t.Fatalf("client frame: opcode %d %q, want the echo %q", f.Header.OpCode, f.Payload, text)
	}
}

func (p *rawPeer) expectClose(t *testing.T, code wsengine.StatusCode) {
	t.Helper()
	f := p.frame(t)
	if c, _ := ws.ParseCloseFrameData(f.Payload); f.Header.OpCode != ws.OpClose || wsengine.StatusCode(c) != code {
		t.Fatalf("client frame: opcode %d %q, want close %d", f.Header.OpCode, f.Payload, code)
	}
}

// waitPending waits up to 5 s until ctx has n events pending.
func waitPending(t *testing.T, ctx uint64, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if k, _ := Pending(ctx); k >= n {
			return
		}
	}
	t.Fatalf("%d events not pending within 5 s", n)
}

// closedOf waits for the CLOSED event of c (no EventFailPending must come out).
func closedOf(t *testing.T, ctx, c uint64) Event {
	t.Helper()
	ev := nextOf(t, ctx, c)
	if ev.Type != wsengine.EventClosed {
		t.Fatalf("event %d (code %d %q), want CLOSED", ev.Type, ev.Code, ev.Data)
	}
	return ev
}

// A message, then a protocol violation (Autobahn 3.2): the batch stops
// before the failure; the handler's echo, sent late, goes out before the
// close frame, which goes once the consumer comes back for more.
func TestFailInOrderQueued(t *testing.T) {
	ctx, _ := newTestContext(t)
	p := newRawPeer(t)
	c := dial(t, ctx, p.url)
	p.send <- append(frameOf(true, 0, ws.OpText, "Hello"), frameOf(true, 2, ws.OpText, "Hello")...)
	waitPending(t, ctx, 2) // the message and the marker
	dst := make([]Event, 8)
	n, left, err := NextEvents(ctx, time.Second, dst, 1<<20, 0)
	if err != nil || n != 1 || left != 1 || dst[0].Type != wsengine.EventReceive {
		t.Fatalf("NextEvents = %d, %d, %v (%+v); want the message alone, 1 left", n, left, err, dst[0].Event)
	}
	time.Sleep(100 * time.Millisecond) // a slow handler
	if s, _ := State(c); s != wsengine.StateOpen {
		t.Fatalf("state %d while the failure waits, want open", s)
	}
	if err := Send(c, wsengine.OpText, []byte("Hello")); err != nil {
		t.Fatalf("echo: %v", err)
	}
	p.expectEcho(t, "Hello")
	select {
	case f := <-p.got:
		t.Fatalf("client wrote opcode %d before the consumer came back", f.Header.OpCode)
	case <-time.After(50 * time.Millisecond):
	}
	if e := closedOf(t, ctx, c); e.Clean || e.Code != wsengine.CloseProtocolError {
		t.Fatalf("closed clean=%v code=%d %q", e.Clean, e.Code, e.Data)
	}
	p.expectClose(t, wsengine.CloseProtocolError)
}

// The consumer took the message before the violation arrived and is still
// handling it: the failure waits for its next call.
func TestFailInOrderTaken(t *testing.T) {
	ctx, _ := newTestContext(t)
	p := newRawPeer(t)
	c := dial(t, ctx, p.url)
	p.send <- frameOf(true, 0, ws.OpText, "Hi")
	if ev := nextOf(t, ctx, c); ev.Type != wsengine.EventReceive {
		t.Fatalf("event %d", ev.Type)
	}
	p.send <- frameOf(true, 0, 5, "")
	waitPending(t, ctx, 1)
	time.Sleep(50 * time.Millisecond)
	if err := Send(c, wsengine.OpText, []byte("Hi")); err != nil {
		t.Fatalf("echo: %v", err)
	}
	p.expectEcho(t, "Hi")
	if e := closedOf(t, ctx, c); e.Code != wsengine.CloseProtocolError {
		t.Fatalf("closed code=%d %q", e.Code, e.Data)
	}
	p.expectClose(t, wsengine.CloseProtocolError)
}

// No message waits (none queued, none taken since the consumer last came
// back): the violation fails the connection at once, as without ordering.
func TestFailInOrderNothingWaiting(t *testing.T) {
	ctx, _ := newTestContext(t)
	p := newRawPeer(t)
	c := dial(t, ctx, p.url)
	p.send <- frameOf(true, 0, ws.OpText, "Hi")
	nextOf(t, ctx, c)
	if _, ok, _ := NextEvent(ctx, 0); ok { // the consumer comes back: the message was handled
		t.Fatal("unexpected event")
	}
	start := time.Now()
	p.send <- frameOf(true, 0, 6, "")
	p.expectClose(t, wsengine.CloseProtocolError)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("close frame after %v", d)
	}
	closedOf(t, ctx, c)
}

// A consumer that never comes back does not hold the broken connection open:
// it fails after close_timeout, and the events come out in order later.
func TestFailInOrderStalledConsumer(t *testing.T) {
	ctx, _ := newTestContext(t)
	p := newRawPeer(t)
	c, err := NewConn(ctx, p.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetOption(c, "close_timeout", "300"); err != nil {
		t.Fatal(err)
	}
	if err := Connect(c); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, ctx, c); ev.Type != wsengine.EventEstablished {
		t.Fatalf("event %d", ev.Type)
	}
	start := time.Now()
	p.send <- append(frameOf(true, 0, ws.OpText, "Hi"), frameOf(false, 0, ws.OpPing, "")...)
	p.expectClose(t, wsengine.CloseProtocolError)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("failed after %v, before close_timeout (300 ms)", d)
	}
	waitPending(t, ctx, 3) // message, marker, CLOSED
	if ev := nextOf(t, ctx, c); ev.Type != wsengine.EventReceive {
		t.Fatalf("event %d", ev.Type)
	}
	if e := closedOf(t, ctx, c); e.Code != wsengine.CloseProtocolError {
		t.Fatalf("closed code=%d %q", e.Code, e.Data)
	}
	if n, _ := Pending(ctx); n != 0 {
		t.Fatalf("%d events left", n)
	}
}

// A relay context hands the marker out; FailNow fails the connection.
func TestFailInOrderRelay(t *testing.T) {
	ctx := NewRelayContext()
	t.Cleanup(func() { FreeContext(ctx) })
	p := newRawPeer(t)
	c := dial(t, ctx, p.url)
	p.send <- append(frameOf(true, 0, ws.OpText, "Hi"), frameOf(true, 0, 7, "")...)
	if ev := nextOf(t, ctx, c); ev.Type != wsengine.EventReceive {
		t.Fatalf("event %d", ev.Type)
	}
	ev := nextOf(t, ctx, c)
	if ev.Type != wsengine.EventFailPending || ev.Code != wsengine.CloseProtocolError {
		t.Fatalf("event %d code %d %q, want the marker", ev.Type, ev.Code, ev.Data)
	}
	if err := Send(c, wsengine.OpText, []byte("Hi")); err != nil {
		t.Fatal(err)
	}
	if err := FailNow(c); err != nil {
		t.Fatal(err)
	}
	p.expectEcho(t, "Hi")
	p.expectClose(t, wsengine.CloseProtocolError)
	closedOf(t, ctx, c)
	if err := FailNow(c); err != nil { // nothing pending: no error, no effect
		t.Fatal(err)
	}
	if err := FailNow(1 << 60); Status(err) != EArg {
		t.Fatalf("FailNow(unknown) = %v", err)
	}
}

// Server role: a client's violation after a message waits for the echo too.
func TestServerFailInOrder(t *testing.T) {
	ctx, _ := newTestContext(t)
	_, port := listenOn(t, ctx, "host", "127.0.0.1", "port", "0")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br, _, err := ws.DefaultDialer.Upgrade(nc, &url.URL{Scheme: "ws", Host: addr, Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	ev := nextAny(t, ctx)
	if ev.Type != EventServerEstablished {
		t.Fatalf("event %d", ev.Type)
	}
	c := ev.Conn
	masked := func(op ws.OpCode, p string) []byte {
		f := ws.MaskFrameInPlace(ws.NewFrame(op, true, []byte(p)))
		b, _ := ws.CompileFrame(f)
		return b
	}
	nc.Write(append(masked(ws.OpText, "Hey"), masked(13, "")...))
	waitPending(t, ctx, 2)
	if ev := nextAny(t, ctx); ev.Type != EventServerReceive {
		t.Fatalf("event %d", ev.Type)
	}
	time.Sleep(50 * time.Millisecond)
	if err := Send(c, wsengine.OpText, []byte("Hey")); err != nil {
		t.Fatalf("echo: %v", err)
	}
	if ev := nextAny(t, ctx); ev.Type != wsengine.EventClosed || ev.Code != wsengine.CloseProtocolError {
		t.Fatalf("event %d code %d, want CLOSED 1002", ev.Type, ev.Code)
	}
	f, err := ws.ReadFrame(br)
	if err != nil || f.Header.OpCode != ws.OpText || string(f.Payload) != "Hey" {
		t.Fatalf("first frame %+v %q %v, want the echo", f.Header, f.Payload, err)
	}
	f, err = ws.ReadFrame(br)
	if code, _ := ws.ParseCloseFrameData(f.Payload); err != nil || f.Header.OpCode != ws.OpClose || code != ws.StatusProtocolError {
		t.Fatalf("second frame %+v %q %v, want close 1002", f.Header, f.Payload, err)
	}
}
