package hub

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/fdwait"
	"github.com/verawebsockets/verawebsockets/internal/testpki"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// waitRead is one wait of a consumer that reads on its own thread: ReadFDs,
// ppoll up to d, and ReadReady before Pending is looked at: pendingBefore,
// pendingAfter are the events queued before and after ReadReady.
func waitRead(t *testing.T, ctx uint64, d time.Duration) (pendingBefore, pendingAfter int) {
	t.Helper()
	fds, now, err := ReadFDs(ctx, nil)
	if err != nil {
		t.Fatalf("ReadFDs: %v", err)
	}
	p := make([]fdwait.PollFD, len(fds))
	for i, fd := range fds {
		p[i] = fdwait.PollFD{FD: fd, Events: PollIn}
	}
	if now {
		d = 0
	}
	ts := syscall.NsecToTimespec(int64(d))
	if len(p) > 0 {
		fdwait.Ppoll(p, &ts)
	} else {
		time.Sleep(d)
	}
	pendingBefore, _ = Pending(ctx)
	rev := make([]int16, len(p))
	for i := range p {
		rev[i] = p[i].Revents
	}
	n, err := ReadReady(ctx, rev, false)
	if err != nil {
		t.Fatalf("ReadReady: %v", err)
	}
	pendingAfter, _ = Pending(ctx)
	if n > pendingAfter { // nothing takes events meanwhile; the engine may add some
		t.Fatalf("ReadReady said %d pending, then Pending %d", n, pendingAfter)
	}
	return pendingBefore, pendingAfter
}

// directNext returns the next event of ctx, reading on this goroutine while
// it waits (up to 5 s).
func directNext(t *testing.T, ctx uint64) Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ev, ok, _ := NextEvent(ctx, 0); ok {
			return ev
		}
		waitRead(t, ctx, 50*time.Millisecond)
	}
	t.Fatalf("no event in context %d within 5 s", ctx)
	return Event{}
}

// directPair is a server in one context (read by the engine) and a client in
// another, which the test reads on its own goroutine.
func directPair(t *testing.T, tls bool, copts ...string) (cctx, c, sctx, sc uint64) {
	t.Helper()
	sctx, _ = newTestContext(t)
	cctx, _ = newTestContext(t)
	sid, err := NewServer(sctx)
	if err != nil {
		t.Fatal(err)
	}
	sopts := []string{"host", "127.0.0.1", "port", "0", "compression", "1", "pong_events", "1"}
	scheme := "ws"
	if tls {
		dir := t.TempDir()
		ca, err := testpki.CA("direct CA")
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := testpki.Leaf("127.0.0.1", x509.ExtKeyUsageServerAuth, ca)
		if err != nil {
			t.Fatal(err)
		}
		if err := leaf.Save(dir, "server"); err != nil {
			t.Fatal(err)
		}
		if err := ca.SaveCert(dir, "ca.pem"); err != nil {
			t.Fatal(err)
		}
		sopts = append(sopts, "ssl_cert_filepath", filepath.Join(dir, "server.pem"), "ssl_private_key_filepath", filepath.Join(dir, "server.key"))
		copts = append(copts, "client_ssl_ca_filepath", filepath.Join(dir, "ca.pem"))
		scheme = "wss"
	}
	for i := 0; i < len(sopts); i += 2 {
		if err := ServerSetOption(sid, sopts[i], sopts[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ServerListen(sid); err != nil {
		t.Fatal(err)
	}
	port, _ := ServerPort(sid)
	if c, err = NewConn(cctx, fmt.Sprintf("%s://127.0.0.1:%d/", scheme, port)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(copts); i += 2 {
		if err := SetOption(c, copts[i], copts[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := Connect(c); err != nil {
		t.Fatal(err)
	}
	if ev := directNext(t, cctx); ev.Type != wsengine.EventEstablished {
		t.Fatalf("client: %+v", ev.Event)
	}
	ev := nextAny(t, sctx)
	if ev.Type != EventServerEstablished {
		t.Fatalf("server: %+v", ev.Event)
	}
	return cctx, c, sctx, ev.Conn
}

// A consumer that waits reads its connection itself: the server's message is
// queued by ReadReady on the consumer's goroutine, not before; ws:// and
// wss://, compressed or not, small and large messages, pings answered, and
// the close arrives. Away for longer than directGrace, the engine reads.
func TestDirectRead(t *testing.T) {
	for _, tc := range []struct {
		name        string
		tls         bool
		compression string
	}{{"ws", false, "0"}, {"ws+deflate", false, "1"}, {"wss", true, "0"}, {"wss+deflate", true, "1"}} {
		t.Run(tc.name, func(t *testing.T) {
			// A slow machine (the race detector, qemu) must not lose the
			// reading between the steps: a longer grace while they run.
			old := directGrace.Swap(int64(time.Second))
			defer directGrace.Store(old)
			cctx, c, sctx, sc := directPair(t, tc.tls, "compression", tc.compression)
			big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
			// Until the reading is handed over, waits poll the hand-over pipe.
			cx, _ := lookupContext(cctx)
			deadline := time.Now().Add(5 * time.Second)
			for {
				waitRead(t, cctx, 10*time.Millisecond)
				cx.dr.mu.Lock()
				handed := len(cx.dr.polled) == 1 && !cx.dr.asked
				cx.dr.mu.Unlock()
				if handed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the connection was never handed over")
				}
			}
			for i, msg := range [][]byte{[]byte("small"), bytes.Repeat([]byte("x"), 100<<10), big, []byte(strings.Repeat("é", 1000))} {
				if err := Send(sc, wsengine.OpText, msg); err != nil {
					t.Fatal(err)
				}
				var got Event
				for deadline := time.Now().Add(5 * time.Second); ; {
					before, after := waitRead(t, cctx, 100*time.Millisecond)
					if before != 0 {
						t.Fatalf("message %d: queued before ReadReady (%d pending): read by the engine", i, before)
					}
					if after > 0 {
						got, _, _ = NextEvent(cctx, 0)
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("message %d not received", i)
					}
				}
				if got.Type != wsengine.EventReceive || !bytes.Equal(got.Data, msg) {
					t.Fatalf("message %d: %+v, %d bytes; want %d", i, got.Event, len(got.Data), len(msg))
				}
			}
			// A ping from the server is answered while the client reads.
			if err := Ping(sc, []byte("are you there")); err != nil {
				t.Fatal(err)
			}
			waitRead(t, cctx, 100*time.Millisecond)
			if ev := nextAny(t, sctx); ev.Type != EventServerReceivePong || string(ev.Data) != "are you there" {
				t.Fatalf("server: %+v %q; want its pong", ev.Event, ev.Data)
			}
			// Away: the engine takes the reading back and queues by itself.
			directGrace.Store(int64(20 * time.Millisecond))
			time.Sleep(time.Second + 100*time.Millisecond) // the watcher's sleep: a second
			directGrace.Store(int64(time.Second))
			if err := Send(sc, wsengine.OpBinary, []byte("while away")); err != nil {
				t.Fatal(err)
			}
			if ev, ok, _ := NextEvent(cctx, 5*time.Second); !ok || ev.Type != wsengine.EventReceive || string(ev.Data) != "while away" {
				t.Fatalf("while away: %+v %q, %v", ev.Event, ev.Data, ok)
			}
			// The close handshake, read by the consumer again.
			if err := Close(sc, 1000, "bye"); err != nil {
				t.Fatal(err)
			}
			ev := directNext(t, cctx)
			if ev.Type != wsengine.EventClosed || ev.Code != 1000 || !ev.Clean || string(ev.Data) != "bye" {
				t.Fatalf("close: %+v %q", ev.Event, ev.Data)
			}
			if s, _ := State(c); s != wsengine.StateClosed {
				t.Fatalf("state %v after the close", s)
			}
		})
	}
}

// The reading changes hands many times while the server streams: the
// consumer waits a little, then stays away for longer than the grace, again
// and again. Every message arrives once, in order, over ws:// and wss://.
func TestDirectChurn(t *testing.T) {
	old := directGrace.Swap(int64(2 * time.Millisecond))
	defer directGrace.Store(old)
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			cctx, _, _, sc := directPair(t, tls, "compression", "1")
			const n = 2000
			go func() {
				for i := range n {
					if Send(sc, wsengine.OpText, fmt.Appendf(nil, "%d %s", i, strings.Repeat("z", i%700))) != nil {
						return
					}
					if i%20 == 0 { // paced: the consumer gets turns enough to hold the reading at 10
						time.Sleep(time.Millisecond)
					}
				}
			}()
			next, handovers := 0, 0
			cx, _ := lookupContext(cctx)
			deadline := time.Now().Add(60 * time.Second)
			for next < n && time.Now().Before(deadline) {
				for range 3 {
					waitRead(t, cctx, time.Millisecond)
				}
				cx.dr.mu.Lock()
				if len(cx.dr.polled) > 0 {
					handovers++
				}
				cx.dr.mu.Unlock()
				for {
					ev, ok, _ := NextEvent(cctx, 0)
					if !ok {
						break
					}
					var i int
					if ev.Type != wsengine.EventReceive || len(ev.Data) != len(fmt.Sprint(next))+1+next%700 {
						t.Fatalf("event %+v (%d bytes); want message %d", ev.Event, len(ev.Data), next)
					}
					fmt.Sscan(string(ev.Data), &i)
					if i != next {
						t.Fatalf("message %d; want %d", i, next)
					}
					next++
				}
				time.Sleep(time.Duration(next%7) * time.Millisecond) // away: the engine may take it back
			}
			if next < n {
				t.Fatalf("%d of %d messages", next, n)
			}
			if handovers < 10 {
				t.Fatalf("the reading was handed over only %d times", handovers)
			}
			t.Logf("%d messages, the consumer held the reading at %d of its turns", n, handovers)
		})
	}
}
