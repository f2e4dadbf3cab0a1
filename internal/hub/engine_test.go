package hub

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/echotest"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// nextOf waits up to 5 s for the next event of conn c of ctx that is not of
// a type in skip.
func nextOf(t *testing.T, ctx, c uint64, skip ...wsengine.EventType) Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf(
				"no event for conn %d within 5s",
				c)
		}
		ev, ok, err := NextEvent(ctx, left)
		if err != nil {
			t.Fatalf(
				"NextEvent: %v",
				err)
		}
		if !ok || ev.Conn != c {
			continue
		}
		skipped := false
		for _, s := range skip {
			skipped = skipped || ev.Type == s
		}
		if !skipped {
			return ev
		}
	}
}

// dial makes an open connection of ctx to url, offering subprotocol "echo".
func dial(t *testing.T, ctx uint64, url string) uint64 {
	t.Helper()
	c, err := NewConn(ctx, url)
	if err != nil {
		t.Fatalf(
			"NewConn(%q): %v",
			url, err)
	}
	if err := SetOption(c, "protocols", "echo"); err != nil {
		t.Fatal(err)
	}
	if err := Connect(c); err != nil {
		t.Fatal(err)
	}
	ev := nextOf(t, ctx, c)
	if ev.Type != wsengine.EventEstablished || string(ev.Data) != "echo" || ev.Attempt != 1 {
		t.Fatalf(
			"first event %+v (data %q); want ESTABLISHED \"echo\" attempt 1",
			ev.Event, ev.Data)
	}
	return c
}

func TestEcho(t *testing.T) {
	srv := echotest.New(t)
	ctx, _ := newTestContext(t)
	c := dial(t, ctx, srv.URL)
	if n, err := Active(ctx); n != 1 || err != nil {
		t.Fatalf(
			"Active = %d, %v; want 1",
			n, err)
	}
	if s, _ := State(c); s != wsengine.StateOpen {
		t.Fatalf(
			"State = %v; want open",
			s)
	}
	if p, _ := Protocol(c); p != "echo" {
		t.Fatalf(
			"Protocol = %q",
			p)
	}
	for i := range 20 {
		want := []byte(fmt.Sprintf("message %d", i))
		op := wsengine.OpText
		if i%2 == 1 {
			op = wsengine.OpBinary
		}
		if err := Send(c, op, append([]byte(nil), want...)); err != nil {
			t.Fatal(err)
		}
		ev := nextOf(t, ctx, c)
		if ev.Type != wsengine.EventReceive || ev.Opcode != op || !bytes.Equal(ev.Data, want) {
			t.Fatalf(
				"event %d: %+v; want RECEIVE op %d %q",
				i, ev.Event, op, want)
		}
	}
	if err := Close(c, 0, "done"); err != nil {
		t.Fatal(err)
	}
	ev := nextOf(t, ctx, c)
	if ev.Type != wsengine.EventClosed || !ev.Clean || ev.Code != 1000 || !ev.Final {
		t.Fatalf(
			"after Close: %+v final %v; want a clean, final CLOSED 1000",
			ev.Event, ev.Final)
	}
	if n, _ := Active(ctx); n != 0 {
		t.Fatalf(
			"Active after close = %d",
			n)
	}
	if err := Send(c, wsengine.OpText, []byte("x")); Status(err) != EState {
		t.Fatalf(
			"Send after close: %v (status %d); want EState",
			err, Status(err))
	}
	if err := FreeConn(c); err != nil {
		t.Fatal(err)
	}
}

// TestEventFinal: a CONNECTION_ERROR with a reconnect to come is not final,
// the last one (max_attempts reached) is, and no event follows it.
func TestEventFinal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + ln.Addr().String() + "/"
	ln.Close() // connections to it are refused
	ctx, _ := newTestContext(t)
	c, err := NewConn(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeConn(c)
	if err := SetOption(c, "reconnect", "10,10,1,0,3"); err != nil {
		t.Fatal(err)
	}
	if err := Connect(c); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		ev := nextOf(t, ctx, c)
		if ev.Type != wsengine.EventConnectionError || ev.Attempt != attempt || ev.Final != (attempt == 3) {
			t.Fatalf(
				"event %+v final %v; want CONNECTION_ERROR attempt %d, final only for the last (3)",
				ev.Event, ev.Final, attempt)
		}
	}
	if ev, ok, _ := NextEvent(ctx, 200*time.Millisecond); ok {
		t.Fatalf(
			"event after the final one: %+v",
			ev.Event)
	}
	if n, _ := Active(ctx); n != 0 {
		t.Fatalf(
			"Active after the final event = %d",
			n)
	}
}

func TestBadURL(t *testing.T) {
	ctx, _ := newTestContext(t)
	for _, u := range []string{"http://127.0.0.1/", "ws://", "", "127.0.0.1:80"} {
		if _, err := NewConn(ctx, u); Status(err) != EArg {
			t.Errorf(
				"NewConn(%q): %v (status %d); want EArg",
				u, err, Status(err))
		}
	}
}

func TestFreeContextWithLiveConns(t *testing.T) {
	srv := echotest.New(t)
	ctx := NewContext()
	var conns []uint64
	for range 3 {
		conns = append(conns, dial(t, ctx, srv.URL))
	}
	// Leave messages pending in the queue, then free everything at once.
	for _, c := range conns {
		if err := Send(c, wsengine.OpText, []byte("pending")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := Pending(ctx); n < 3 && time.Now().Before(deadline); n, _ = Pending(ctx) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := FreeContext(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if _, err := State(c); Status(err) != EArg {
			t.Errorf(
				"State of conn %d after FreeContext: %v; want EArg",
				c, err)
		}
	}
	// The server sees every connection end.
	for i := range conns {
		select {
		case <-srv.Ended:
		case <-time.After(5 * time.Second):
			t.Fatalf(
				"server saw %d of %d connections end",
				i, len(conns))
		}
	}
}

func TestFreeConnKeepsQueuedEvents(t *testing.T) {
	srv := echotest.New(t)
	ctx, _ := newTestContext(t)
	c := dial(t, ctx, srv.URL)
	if err := Send(c, wsengine.OpText, []byte("queued")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := Pending(ctx); n < 1 && time.Now().Before(deadline); n, _ = Pending(ctx) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := FreeConn(c); err != nil {
		t.Fatal(err)
	}
	ev, ok, err := NextEvent(ctx, time.Second)
	if err != nil || !ok || ev.Conn != c || string(ev.Data) != "queued" {
		t.Fatalf(
			"after FreeConn: %+v %v %v; want the queued echo",
			ev, ok, err)
	}
	// Abandon emits nothing more: no CLOSED for the freed connection.
	if ev, ok, _ := NextEvent(ctx, 300*time.Millisecond); ok {
		t.Fatalf(
			"event after FreeConn: %+v",
			ev.Event)
	}
	select {
	case <-srv.Ended:
	case <-time.After(5 * time.Second):
		t.Fatal("server connection still alive after FreeConn")
	}
}

func TestEventFDWithEngine(t *testing.T) {
	srv := echotest.New(t)
	ctx, _ := newTestContext(t)
	fd, err := EventFD(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, ctx, srv.URL)
	if readable(t, fd) {
		t.Fatal("readable with an empty queue")
	}
	if err := Send(c, wsengine.OpText, []byte("x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !readable(t, fd) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n, _ := Pending(ctx); n != 1 || !readable(t, fd) {
		t.Fatalf(
			"after an echo: %d pending, readable %v",
			n, readable(t, fd))
	}
	if _, ok, _ := NextEvent(ctx, 0); !ok || readable(t, fd) {
		t.Fatal("fd still readable after the only event was taken")
	}
}

// Active counts a connection once, from Connect until its final event is
// queued or it is freed: created ones never count, a Connect refused on an
// open one leaves it counted, a freed open one stops counting at once, and a
// refused dial without reconnect stops with its CONNECTION_ERROR.
func TestActiveCount(t *testing.T) {
	srv := echotest.New(t)
	ctx, _ := newTestContext(t)
	active := func(want int, when string) {
		t.Helper()
		if n, err := Active(ctx); n != want || err != nil {
			t.Fatalf("Active %s = %d, %v; want %d", when, n, err, want)
		}
	}
	c1 := dial(t, ctx, srv.URL)
	c2 := dial(t, ctx, srv.URL)
	created, err := NewConn(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	active(2, "with two open and one created")
	if err := Connect(c1); err == nil {
		t.Fatal("Connect of an open connection succeeded")
	}
	active(2, "after a refused Connect of an open connection")
	if err := FreeConn(c1); err != nil {
		t.Fatal(err)
	}
	active(1, "after an open connection was freed")
	Close(c2, 0, "")
	if ev := closedOf(t, ctx, c2); !ev.Final {
		t.Fatalf("after Close: %+v, not final", ev.Event)
	}
	active(0, "after the final CLOSED")
	if err := FreeConn(c2); err != nil {
		t.Fatal(err)
	}
	active(0, "after a closed connection was freed")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	c3, err := NewConn(ctx, "ws://"+ln.Addr().String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer FreeConn(c3)
	if err := Connect(c3); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, ctx, c3); ev.Type != wsengine.EventConnectionError || !ev.Final {
		t.Fatalf("refused: %+v", ev.Event)
	}
	active(0, "after a refused dial")
	if err := FreeConn(created); err != nil {
		t.Fatal(err)
	}
	active(0, "at the end")
}
