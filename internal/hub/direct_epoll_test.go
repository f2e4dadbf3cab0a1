package hub

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/wsengine"
)

// Many connections read on the waiting thread: from epollMin on, a wait
// polls one epoll instance for them (ReadFDs returns it alone). A message to
// each of them arrives, read by the consumer; again after some closed and
// others opened (whose descriptors take the freed numbers), after the
// consumer was away (the engine reads meanwhile) and once it waits again.
func TestDirectEpoll(t *testing.T) {
	oldMin := epollMin.Swap(4)
	defer epollMin.Store(oldMin)
	oldGrace := directGrace.Swap(int64(time.Second))
	defer directGrace.Store(oldGrace)
	sctx, _ := newTestContext(t)
	cctx, cx := newTestContext(t)
	_, port := listenOn(t, sctx, "host", "127.0.0.1", "port", "0")
	url := fmt.Sprintf("ws://127.0.0.1:%d/", port)
	clients, accepted := map[uint64]bool{}, map[uint64]bool{}

	open := func(k int) {
		t.Helper()
		for range k {
			c, err := NewConn(cctx, url)
			if err == nil {
				err = Connect(c)
			}
			if err != nil {
				t.Fatal(err)
			}
			clients[c] = true
		}
		for range k {
			if ev := directNext(t, cctx); ev.Type != wsengine.EventEstablished {
				t.Fatalf("client: %+v", ev.Event)
			}
			ev := nextAny(t, sctx)
			if ev.Type != EventServerEstablished {
				t.Fatalf("server: %+v", ev.Event)
			}
			accepted[ev.Conn] = true
		}
	}
	// Waits until every client is handed over and polled through epoll.
	handed := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			waitRead(t, cctx, 10*time.Millisecond)
			cx.dr.mu.Lock()
			ok := len(cx.dr.polled) == len(clients) && !cx.dr.asked && cx.dr.ep.on &&
				len(cx.dr.fds) == 1 && cx.dr.fds[0] == int32(cx.dr.ep.fd) && len(cx.dr.ep.reg) == len(clients)
			cx.dr.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d clients not all handed over and in the epoll instance", len(clients))
			}
		}
	}
	// The server sends each accepted connection a message; every client gets
	// one, each a different one. direct: read by the consumer (never queued
	// before its ReadReady); else by the engine while the consumer is away.
	round := func(tag string, direct bool) {
		t.Helper()
		var want, have []string
		for a := range accepted {
			msg := fmt.Sprintf("%s %d", tag, a)
			if err := Send(a, wsengine.OpText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			want = append(want, msg)
		}
		got := map[uint64]string{}
		for deadline := time.Now().Add(10 * time.Second); len(got) < len(clients); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d messages", tag, len(got), len(clients))
			}
			if direct {
				if before, _ := waitRead(t, cctx, 100*time.Millisecond); before != 0 {
					t.Fatalf("%s: %d events queued before ReadReady: read by the engine", tag, before)
				}
			} else {
				time.Sleep(10 * time.Millisecond)
			}
			for {
				ev, ok, _ := NextEvent(cctx, 0)
				if !ok {
					break
				}
				if ev.Type != wsengine.EventReceive || !clients[ev.Conn] || got[ev.Conn] != "" {
					t.Fatalf("%s: %+v %q from %d", tag, ev.Event, ev.Data, ev.Conn)
				}
				got[ev.Conn] = string(ev.Data)
				have = append(have, string(ev.Data))
			}
		}
		sort.Strings(want)
		sort.Strings(have)
		if strings.Join(want, ",") != strings.Join(have, ",") {
			t.Fatalf("%s: got %v; want %v", tag, have, want)
		}
	}

	open(24)
	handed()
	round("first", true)

	// 10 closed by the server, 10 others opened.
	n := 0
	for a := range accepted {
		if n == 10 {
			break
		}
		if err := Close(a, 1000, "bye"); err != nil {
			t.Fatal(err)
		}
		n++
	}
	for closed := 0; closed < 10; {
		ev := directNext(t, cctx)
		if ev.Type != wsengine.EventClosed || !clients[ev.Conn] {
			t.Fatalf("closing: %+v", ev.Event)
		}
		delete(clients, ev.Conn)
		FreeConn(ev.Conn)
		closed++
	}
	for closed := 0; closed < 10; {
		if ev := nextAny(t, sctx); ev.Type == wsengine.EventClosed {
			delete(accepted, ev.Conn)
			closed++
		}
	}
	open(10)
	handed()
	round("second", true)

	// Away: the engine takes the reading back, then the consumer again.
	directGrace.Store(int64(20 * time.Millisecond))
	time.Sleep(time.Second + 100*time.Millisecond) // the watcher's sleep
	cx.dr.mu.Lock()
	released := len(cx.dr.polled) == 0
	cx.dr.mu.Unlock()
	if !released {
		t.Fatal("the reading was not given back while away")
	}
	directGrace.Store(int64(time.Second))
	round("away", false)
	handed()
	round("back", true)
}
