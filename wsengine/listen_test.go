package wsengine

import (
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// acceptInto accepts on l until it fails, each result to ch (its stack is
// what TestQuietListener looks for).
func acceptInto(l net.Listener, ch chan<- error, conns chan<- net.Conn) {
	for {
		c, err := l.Accept()
		if err != nil {
			ch <- err
			return
		}
		conns <- c
	}
}

// acceptStack returns the stack of the goroutine running acceptInto once it
// waits (a stack that shows where: in quietListener.wait, or parked in the
// runtime's poller), or "" if none did within 5 s.
func acceptStack(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "acceptInto") && (strings.Contains(g, "wait") || strings.Contains(g, "runtime_pollWait")) {
				return g
			}
		}
	}
	return ""
}

func TestQuietListener(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := quiet(tl)
	if _, ok := l.(*quietListener); !ok {
		t.Fatalf("quiet(%T) = %T, want *quietListener", tl, l)
	}
	errs, conns := make(chan error, 1), make(chan net.Conn, 1)
	go acceptInto(l, errs, conns)

	// Waiting: in its own poll, not parked in the runtime's poller.
	g := acceptStack(t)
	if g == "" {
		t.Fatal("the accepting goroutine never waited")
	}
	if strings.Contains(g, "runtime_pollWait") || !strings.Contains(g, "quietListener).wait") {
		t.Fatalf("Accept waits in the runtime's poller, not its own poll:\n%s", g)
	}

	// A connection is accepted, and works.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sc net.Conn
	select {
	case sc = <-conns:
	case err := <-errs:
		t.Fatalf("Accept: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted within 5 s")
	}
	defer sc.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "ping" {
		t.Fatalf("read %q, %v", got, err)
	}
	if g := acceptStack(t); strings.Contains(g, "runtime_pollWait") {
		t.Fatalf("the next Accept waits in the runtime's poller:\n%s", g)
	}

	// Close ends a waiting Accept with net.ErrClosed; a second Close fails.
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close still blocks after 5 s")
	}
	select {
	case err := <-errs:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits 5 s after Close")
	}
	if err := l.Close(); err == nil {
		t.Fatal("second Close: no error")
	}
}
