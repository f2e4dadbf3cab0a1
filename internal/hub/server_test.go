package hub

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/wsengine"
)

// nextAny waits up to 5 s for the next event of ctx, whatever its connection.
func nextAny(t *testing.T, ctx uint64) Event {
	t.Helper()
	ev, ok, err := NextEvent(ctx, 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("no event in context %d within 5 s (%v)", ctx, err)
	}
	return ev
}

// listenOn starts a server in ctx with options (name, value pairs) and
// returns it and its port.
func listenOn(t *testing.T, ctx uint64, opts ...string) (sid uint64, port int) {
	t.Helper()
	sid, err := NewServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(opts); i += 2 {
		if err := ServerSetOption(sid, opts[i], opts[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ServerListen(sid); err != nil {
		t.Fatal(err)
	}
	port, _ = ServerPort(sid)
	return sid, port
}

// A server in one context, clients in another: accepted connections get
// handles of their own, server-side event numbers, and count as active.
func TestServer(t *testing.T) {
	sctx, _ := newTestContext(t)
	cctx, _ := newTestContext(t)
	sid, err := NewServer(sctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"host", "127.0.0.1"}, {"port", "0"}, {"protocols", "echo"}} {
		if err := ServerSetOption(sid, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ServerSetOption(sid, "url", "x"); Status(err) != EOption {
		t.Fatalf("unknown option: %v", err)
	}
	if err := ServerListen(sid); err != nil {
		t.Fatal(err)
	}
	port, _ := ServerPort(sid)
	if n, _ := Active(sctx); n != 1 || port == 0 {
		t.Fatalf("listening server: active %d port %d", n, port)
	}
	var clients, accepted []uint64
	for i := 0; i < 2; i++ {
		clients = append(clients, dial(t, cctx, fmt.Sprintf("ws://127.0.0.1:%d/p%d", port, i)))
		ev := nextAny(t, sctx)
		if ev.Type != EventServerEstablished || string(ev.Data) != fmt.Sprintf("/p%d", i) {
			t.Fatalf("server event %+v %q", ev.Event, ev.Data)
		}
		if s, err := ConnServer(ev.Conn); s != sid || err != nil {
			t.Fatalf("ConnServer(%d) = %d, %v", ev.Conn, s, err)
		}
		if p, _ := Protocol(ev.Conn); p != "echo" {
			t.Fatalf("protocol %q", p)
		}
		if h, err := RequestHeaders(ev.Conn); err != nil || !strings.HasPrefix(h, fmt.Sprintf("Host: 127.0.0.1:%d\n", port)) {
			t.Fatalf("RequestHeaders = %q, %v", h, err)
		}
		if p, err := Peer(ev.Conn); err != nil || !strings.HasPrefix(p, "127.0.0.1:") {
			t.Fatalf("Peer = %q, %v", p, err)
		}
		accepted = append(accepted, ev.Conn)
	}
	if s, _ := ConnServer(clients[0]); s != 0 {
		t.Fatalf("ConnServer of a client connection = %d", s)
	}
	if h, err := RequestHeaders(clients[0]); err != nil || !strings.Contains(h, "Sec-WebSocket-Accept: ") {
		t.Fatalf("RequestHeaders of an open client connection (its 101's headers) = %q, %v", h, err)
	}
	ids, _ := ServerClients(sid)
	slices.Sort(ids)
	if !slices.Equal(ids, accepted) {
		t.Fatalf("ServerClients %v, want %v", ids, accepted)
	}
	if n, _ := Active(sctx); n != 3 {
		t.Fatalf("active %d, want 3", n)
	}
	if err := Send(clients[1], wsengine.OpText, []byte("up")); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, sctx, accepted[1]); ev.Type != EventServerReceive || string(ev.Data) != "up" {
		t.Fatalf("server receive %+v %q", ev.Event, ev.Data)
	}
	if n, err := Broadcast(sid, wsengine.OpBinary, []byte("all")); n != 2 || err != nil {
		t.Fatalf("Broadcast = %d, %v", n, err)
	}
	for range clients { // in either order
		if ev := nextAny(t, cctx); ev.Type != wsengine.EventReceive || string(ev.Data) != "all" {
			t.Fatalf("client receive %+v %q", ev.Event, ev.Data)
		}
	}
	if err := ServerClose(sid, 1006, ""); Status(err) != EArg {
		t.Fatalf("close 1006: %v", err)
	}
	if err := ServerClose(sid, 0, "bye"); err != nil {
		t.Fatal(err)
	}
	closed := map[uint64]bool{}
	for range accepted { // in either order
		ev := nextAny(t, sctx)
		if ev.Type != wsengine.EventClosed || ev.Code != 1001 || !ev.Clean || closed[ev.Conn] {
			t.Fatalf("server-side close %+v %q", ev.Event, ev.Data)
		}
		closed[ev.Conn] = true
	}
	if n, _ := Active(sctx); n != 0 {
		t.Fatalf("active %d after close", n)
	}
	if _, err := Broadcast(sid, wsengine.OpText, []byte("x")); Status(err) != EState {
		t.Fatalf("broadcast after close: %v", err)
	}
	if err := FreeServer(sid); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerPort(sid); Status(err) != EArg {
		t.Fatalf("freed server: %v", err)
	}
}

// Freeing the context abandons its servers and their clients.
func TestFreeContextWithServer(t *testing.T) {
	sctx := NewContext()
	cctx, _ := newTestContext(t)
	sid, _ := NewServer(sctx)
	ServerSetOption(sid, "port", "0")
	if err := ServerListen(sid); err != nil {
		t.Fatal(err)
	}
	port, _ := ServerPort(sid)
	c, _ := NewConn(cctx, fmt.Sprintf("ws://127.0.0.1:%d/", port))
	Connect(c)
	if ev := nextOf(t, cctx, c); ev.Type != wsengine.EventEstablished {
		t.Fatalf("client %+v %q", ev.Event, ev.Data)
	}
	nextAny(t, sctx)
	if err := FreeContext(sctx); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, cctx, c); ev.Type != wsengine.EventClosed || ev.Code != 1001 {
		t.Fatalf("client after FreeContext: %+v %q", ev.Event, ev.Data)
	}
	if _, err := ServerPort(sid); Status(err) != EArg {
		t.Fatalf("server of a freed context: %v", err)
	}
}
