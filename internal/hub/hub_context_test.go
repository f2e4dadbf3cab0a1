package hub

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/wsengine"
)

// Handles, argument checks, statuses, panics recovered and freed contexts; the queue,
// waits, wakes and the event fd are in hub_test.go.

func TestHandles(t *testing.T) {
	a, b := NewContext(), NewContext()
	if a == 0 || b <= a {
		t.Fatalf(
			"context handles %d, %d: want non-zero and increasing",
			a, b)
	}
	if err := FreeContext(a); err != nil {
		t.Fatal(err)
	}
	c := NewContext()
	defer FreeContext(c)
	defer FreeContext(b)
	if c <= b {
		t.Fatalf(
			"context handle %d after %d: handles must not be reused",
			c, b)
	}
	badCtx := []uint64{0, a, c + 1000}
	for _, h := range badCtx {
		checks := map[string]error{
			"FreeContext": FreeContext(h),
			"Wake":        Wake(h),
		}
		_, _, checks["NextEvent"] = NextEvent(h, 10*time.Millisecond)
		_, checks["Pending"] = Pending(h)
		_, checks["EventFD"] = EventFD(h)
		_, checks["Active"] = Active(h)
		_, checks["NewConn"] = NewConn(h, "ws://127.0.0.1:1/")
		for name, err := range checks {
			var he *HandleError
			if !errors.As(err, &he) || Status(err) != EArg {
				t.Errorf(
					"%s(ctx %d): err %v (status %d); want *HandleError, EArg",
					name, h, err, Status(err))
			}
		}
	}

	c1, err := NewConn(c, "ws://127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := NewConn(c, "ws://127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	if c1 == 0 || c2 <= c1 {
		t.Fatalf(
			"connection handles %d, %d",
			c1, c2)
	}
	if err := FreeConn(c1); err != nil {
		t.Fatal(err)
	}
	for _, h := range []uint64{0, c1, c2 + 1000} {
		checks := map[string]error{
			"SetOption": SetOption(h, "origin", "x"),
			"Check":     Check(h),
			"Connect":   Connect(h),
			"Send":      Send(h, wsengine.OpText, []byte("x")),
			"Ping":      Ping(h, nil),
			"Close":     Close(h, 1000, ""),
			"FreeConn":  FreeConn(h),
		}
		_, checks["State"] = State(h)
		_, checks["Buffered"] = Buffered(h)
		_, checks["Protocol"] = Protocol(h)
		for name, err := range checks {
			var he *HandleError
			if !errors.As(err, &he) || Status(err) != EArg {
				t.Errorf(
					"%s(conn %d): err %v (status %d); want *HandleError, EArg",
					name, h, err, Status(err))
			}
		}
	}
	if s, err := State(c2); err != nil || s != wsengine.StateCreated {
		t.Errorf(
			"State of a new conn = %v, %v",
			s, err)
	}
	if n, err := Active(c); err != nil || n != 0 {
		t.Errorf(
			"Active with a created conn = %d, %v; want 0",
			n, err)
	}
}

func TestArgumentChecks(t *testing.T) {
	ctx, _ := newTestContext(t)
	c, err := NewConn(ctx, "ws://127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
	}{
		{
			name: "send opcode 0",
			err:  Send(c, 0, []byte("x")),
		},
		{
			name: "send opcode 9 (ping)",
			err:  Send(c, 9, []byte("x")),
		},
		{
			name: "ping 126 bytes",
			err:  Ping(c, make([]byte, 126)),
		},
		{
			name: "close 1005",
			err:  Close(c, 1005, ""),
		},
		{
			name: "close 999",
			err:  Close(c, 999, ""),
		},
		{
			name: "close 5000",
			err:  Close(c, 5000, ""),
		},
		{
			name: "close reason 124 bytes",
			err:  Close(c, 1000, string(make([]byte, 124))),
		},
	}
	for _, tc := range cases {
		if Status(tc.err) != EArg {
			t.Errorf(
				"%s: err %v (status %d); want EArg",
				tc.name, tc.err, Status(tc.err))
		}
	}
}

func TestStatus(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{
			err:  nil,
			want: OK,
		},
		{
			err:  &HandleError{Kind: "context", Handle: 3},
			want: EArg,
		},
		{
			err:  &wsengine.OptionError{Name: "origin", Msg: "bad"},
			want: EArg,
		},
		{
			err:  fmt.Errorf("wrapped: %w", &wsengine.OptionError{Name: "x", Msg: "y"}),
			want: EArg,
		},
		{
			err:  asArg(errors.New("bad url")),
			want: EArg,
		},
		{
			err:  wsengine.ErrNotOpen,
			want: EState,
		},
		{
			err:  fmt.Errorf("send: %w", wsengine.ErrBusy),
			want: EState,
		},
		{
			err:  wsengine.ErrQueueFull,
			want: EFull,
		},
		{
			err:  wsengine.ErrTooBig,
			want: ETooBig,
		},
		{
			err:  asArg(wsengine.ErrTooBig),
			want: ETooBig,
		},
		{
			err:  &PanicError{Value: "boom"},
			want: EInternal,
		},
		{
			err:  asArg(&PanicError{Value: "boom"}),
			want: EInternal,
		},
		{
			err:  errors.New("something else"),
			want: EInternal,
		},
	}
	for _, tc := range cases {
		if got := Status(tc.err); got != tc.want {
			t.Errorf(
				"Status(%v) = %d; want %d",
				tc.err, got, tc.want)
		}
	}
}

// Status(nil) is asked for every send (the C ABI's status of each call): it
// must not allocate (it made five, errors.As's targets, until 2026-12-01).
func TestStatusNilAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Status(nil) }); n != 0 {
		t.Fatalf("Status(nil): %v allocations, want 0", n)
	}
}

func TestRecover(t *testing.T) {
	var err error
	func() {
		defer recoverTo(&err)
		var m map[string]int
		//lint:ignore SA5000 the panic is what this test recovers from
		m["x"] = 1 // panics
	}()
	var pe *PanicError
	if !errors.As(err, &pe) || Status(err) != EInternal {
		t.Fatalf(
			"recovered %v (status %d); want *PanicError, EInternal",
			err, Status(err))
	}
}

func TestFreeContextReleasesWaiter(t *testing.T) {
	ctx := NewContext()
	cx, _ := lookupContext(ctx)
	errc := make(chan error, 1)
	go func() {
		_, _, err := NextEvent(ctx, 10*time.Second)
		errc <- err
	}()
	if !waitWaiters(cx, 1, nil) {
		t.Fatal("NextEvent is not waiting")
	}
	if err := FreeContext(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		var he *HandleError
		if !errors.As(err, &he) {
			t.Fatalf(
				"NextEvent blocked while the context was freed: err %v; want *HandleError",
				err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FreeContext did not release a blocked NextEvent")
	}
}

func TestFreeContextDropsEvents(t *testing.T) {
	ctx := NewContext()
	cx, _ := lookupContext(ctx)
	cx.push(msg(1, "a"))
	cx.push(msg(1, "b"))
	if err := FreeContext(ctx); err != nil {
		t.Fatal(err)
	}
	cx.push(msg(1, "after free")) // dropped, no panic
	if n, alive := cx.pending(); n != 0 || alive {
		t.Fatalf(
			"freed context: %d pending, alive %v; want 0, false",
			n, alive)
	}
	if _, _, err := NextEvent(ctx, 0); Status(err) != EArg {
		t.Fatalf(
			"NextEvent on a freed context: %v",
			err)
	}
}
