package hub

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/verawebsockets/verawebsockets/wsengine"
)

// newTestContext makes a context freed at the end of the test.
func newTestContext(t *testing.T) (uint64, *context) {
	t.Helper()
	ctx := NewContext()
	if ctx == 0 {
		t.Fatal("NewContext returned 0")
	}
	t.Cleanup(func() { FreeContext(ctx) })
	cx, err := lookupContext(ctx)
	if err != nil {
		t.Fatalf(
			"lookupContext(%d): %v",
			ctx, err)
	}
	return ctx, cx
}

// msg is a synthetic receive event of connection conn carrying text.
func msg(conn uint64, text string) Event {
	return Event{Conn: conn, Event: wsengine.Event{Type: wsengine.EventReceive, Opcode: wsengine.OpText, Data: []byte(text)}}
}

// readable reports whether fd is readable now (select with a zero timeout).
func readable(t *testing.T, fd int) bool {
	t.Helper()
	var fds syscall.FdSet
	n := 8 * int(unsafe.Sizeof(fds.Bits[0]))
	fds.Bits[fd/n] |= 1 << (uint(fd) % uint(n))
	tv := syscall.Timeval{}
	for {
		n, err := syscall.Select(fd+1, &fds, nil, nil, &tv)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf(
				"select(%d): %v",
				fd, err)
		}
		return n == 1
	}
}

func TestQueueOrder(t *testing.T) {
	ctx, cx := newTestContext(t)
	const n = 1000 // more than compactAt, so the queue compacts on the way
	for i := range n {
		cx.push(msg(7, fmt.Sprint(i)))
		if i == n/2 { // interleave consumption with production
			for j := range n / 4 {
				ev, ok, err := NextEvent(ctx, 0)
				if err != nil || !ok || string(ev.Data) != fmt.Sprint(j) {
					t.Fatalf(
						"NextEvent #%d = %q, %v, %v; want %q, true, nil",
						j, ev.Data, ok, err, fmt.Sprint(j))
				}
			}
		}
	}
	p, err := Pending(ctx)
	if err != nil || p != n-n/4 {
		t.Fatalf(
			"Pending = %d, %v; want %d, nil",
			p, err, n-n/4)
	}
	for j := n / 4; j < n; j++ {
		ev, ok, err := NextEvent(ctx, 0)
		if err != nil || !ok || string(ev.Data) != fmt.Sprint(j) || ev.Conn != 7 || ev.Type != wsengine.EventReceive {
			t.Fatalf(
				"NextEvent #%d = %+v, %v, %v; want data %q",
				j, ev, ok, err, fmt.Sprint(j))
		}
	}
	ev, ok, err := NextEvent(ctx, 0)
	if ok || err != nil {
		t.Fatalf(
			"NextEvent on empty queue = %+v, %v, %v; want ok=false, nil",
			ev, ok, err)
	}
}

func TestQueueConcurrentProducers(t *testing.T) {
	ctx, cx := newTestContext(t)
	const producers, each = 4, 500
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				cx.push(msg(uint64(p+1), fmt.Sprint(i)))
			}
		}()
	}
	next := make([]int, producers+1)
	for got := 0; got < producers*each; got++ {
		ev, ok, err := NextEvent(ctx, 5*time.Second)
		if err != nil || !ok {
			t.Fatalf(
				"NextEvent after %d events: ok=%v err=%v",
				got, ok, err)
		}
		if want := fmt.Sprint(next[ev.Conn]); string(ev.Data) != want {
			t.Fatalf(
				"producer %d: got %q, want %q (FIFO per producer)",
				ev.Conn, ev.Data, want)
		}
		next[ev.Conn]++
	}
	wg.Wait()
}

func TestNextEventTimeout(t *testing.T) {
	ctx, _ := newTestContext(t)
	start := time.Now()
	if _, ok, err := NextEvent(ctx, 0); ok || err != nil {
		t.Fatalf(
			"NextEvent(0) = %v, %v",
			ok, err)
	}
	// NextEvent(0) must not wait; the bound only leaves room for a
	// scheduling stall (-race, loaded CI).
	if d := time.Since(start); d > time.Second {
		t.Errorf(
			"NextEvent(0) took %v",
			d)
	}
	start = time.Now()
	if _, ok, err := NextEvent(ctx, 80*time.Millisecond); ok || err != nil {
		t.Fatalf(
			"NextEvent(80ms) = %v, %v",
			ok, err)
	}
	if d := time.Since(start); d < 80*time.Millisecond || d > 5*time.Second {
		t.Errorf(
			"NextEvent(80ms) returned after %v",
			d)
	}
}

func TestNextEventWaitsForPush(t *testing.T) {
	ctx, cx := newTestContext(t)
	// Push once NextEvent waits (not after a guessed sleep).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		if waitWaiters(cx, 1, stop) {
			cx.push(msg(1, "late"))
		}
	}()
	// The push must end the wait long before the 30 s timeout would.
	start := time.Now()
	ev, ok, err := NextEvent(ctx, 30*time.Second)
	if err != nil || !ok || string(ev.Data) != "late" {
		t.Fatalf(
			"NextEvent = %q, %v, %v",
			ev.Data, ok, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf(
			"NextEvent returned %v after it started waiting; want soon after the push",
			d)
	}
}

// waitWaiters waits, at most 10 s or until stop is closed, for n goroutines
// to be blocked in NextEvent on cx; it reports whether they are.
func waitWaiters(cx *context, n int, stop <-chan struct{}) bool {
	deadline := time.After(10 * time.Second)
	for {
		cx.mu.Lock()
		w := cx.waiters
		cx.mu.Unlock()
		if w == n {
			return true
		}
		select {
		case <-stop:
			return false
		case <-deadline:
			return false
		case <-time.After(time.Millisecond):
		}
	}
}

func TestWake(t *testing.T) {
	ctx, cx := newTestContext(t)

	// A blocked waiter returns at once.
	done := make(chan time.Duration, 2)
	for range 2 {
		go func() {
			start := time.Now()
			_, ok, err := NextEvent(ctx, 10*time.Second)
			if ok || err != nil {
				t.Errorf(
					"woken NextEvent = %v, %v; want false, nil",
					ok, err)
			}
			done <- time.Since(start)
		}()
	}
	if !waitWaiters(cx, 2, nil) {
		t.Fatal("the two NextEvent calls are not waiting")
	}
	if err := Wake(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case d := <-done:
			if d > 5*time.Second {
				t.Errorf(
					"waiter returned after %v",
					d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wake did not release a blocked NextEvent")
		}
	}

	// Both waiters consumed that wake: the next call waits its timeout.
	start := time.Now()
	if _, ok, _ := NextEvent(ctx, 50*time.Millisecond); ok {
		t.Fatal("event out of nowhere")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf(
			"NextEvent after a consumed wake returned after %v; want a full wait",
			d)
	}

	// A wake without a waiter is kept for the next call that would wait,
	// and never hides an event.
	if err := Wake(ctx); err != nil {
		t.Fatal(err)
	}
	cx.push(msg(1, "a"))
	if ev, ok, err := NextEvent(ctx, time.Second); !ok || err != nil || string(ev.Data) != "a" {
		t.Fatalf(
			"NextEvent with a pending wake and an event = %q, %v, %v",
			ev.Data, ok, err)
	}
	start = time.Now()
	if _, ok, err := NextEvent(ctx, 10*time.Second); ok || err != nil {
		t.Fatalf(
			"NextEvent with a pending wake = %v, %v",
			ok, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf(
			"pending wake: NextEvent returned after %v",
			d)
	}
}

func TestEventFD(t *testing.T) {
	ctx, cx := newTestContext(t)
	cx.push(msg(1, "before"))
	fd, err := EventFD(ctx)
	if err != nil || fd < 0 {
		t.Fatalf(
			"EventFD = %d, %v",
			fd, err)
	}
	if fd2, _ := EventFD(ctx); fd2 != fd {
		t.Fatalf(
			"EventFD changed: %d then %d",
			fd, fd2)
	}
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if errno != 0 || flags&syscall.O_NONBLOCK == 0 {
		t.Errorf(
			"fd flags %#x (errno %v): want O_NONBLOCK",
			flags, errno)
	}
	fdflags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 || fdflags&syscall.FD_CLOEXEC == 0 {
		t.Errorf(
			"fd flags %#x (errno %v): want FD_CLOEXEC",
			fdflags, errno)
	}
	if !readable(t, fd) {
		t.Fatal("fd made while an event is pending is not readable")
	}
	if _, ok, _ := NextEvent(ctx, 0); !ok {
		t.Fatal("no event")
	}
	if readable(t, fd) {
		t.Fatal("fd readable with an empty queue")
	}
	for i := range 3 {
		cx.push(msg(1, fmt.Sprint(i)))
		if !readable(t, fd) {
			t.Fatalf(
				"fd not readable with %d events pending",
				i+1)
		}
	}
	for i := range 3 {
		if !readable(t, fd) {
			t.Fatalf(
				"fd not readable with %d events pending",
				3-i)
		}
		if _, ok, _ := NextEvent(ctx, 0); !ok {
			t.Fatal("no event")
		}
	}
	if readable(t, fd) {
		t.Fatal("fd readable after the queue was emptied")
	}
	// The pipe holds at most one byte, so pushes never block or fill it.
	for range 100000 {
		cx.push(msg(1, ""))
	}
	var n int32
	_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	if errno != 0 || n != 1 {
		t.Errorf(
			"bytes in the pipe with 100000 events pending = %d (errno %v); want 1",
			n, errno)
	}
	if err := FreeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); errno != syscall.EBADF {
		t.Errorf(
			"fd %d after FreeContext: errno %v; want EBADF (closed)",
			fd, errno)
	}
}

func TestNextEventsBatch(t *testing.T) {
	ctx, cx := newTestContext(t)
	for i := 0; i < 10; i++ {
		cx.push(msg(1, strings.Repeat("x", 10)))
	}
	dst := make([]Event, 4)
	n, left, err := NextEvents(ctx, 0, dst, 1000, 0)
	if err != nil || n != 4 || left != 6 {
		t.Fatalf("n %d left %d err %v", n, left, err)
	}
	// The budget bounds the events after the first.
	n, left, _ = NextEvents(ctx, 0, dst, 25, 0)
	if n != 2 || left != 4 {
		t.Fatalf("budget 25: n %d left %d", n, left)
	}
	n, left, _ = NextEvents(ctx, 0, dst, 0, 0)
	if n != 1 || left != 3 {
		t.Fatalf("budget 0: n %d left %d", n, left)
	}
	NextEvents(ctx, 0, dst, 1000, 0)
	if n, _, err := NextEvents(ctx, 10*time.Millisecond, dst, 1000, 0); n != 0 || err != nil {
		t.Fatalf("empty: n %d err %v", n, err)
	}
}

// Data of hold bytes or more take nothing of the budget (the taker hands
// them on where they are); smaller ones still do.
func TestNextEventsHold(t *testing.T) {
	ctx, cx := newTestContext(t)
	for _, k := range []int{10, 100, 100, 10, 100, 10} {
		cx.push(msg(1, strings.Repeat("x", k)))
	}
	dst := make([]Event, 8)
	n, left, err := NextEvents(ctx, 0, dst, 15, 100)
	if err != nil || n != 3 || left != 3 {
		t.Fatalf("hold 100, budget 15: n %d left %d err %v; want 3 (10, then two of 100 that count nothing; the next 10 is over), 3 left", n, left, err)
	}
	n, left, _ = NextEvents(ctx, 0, dst, 15, 0)
	if n != 1 || left != 2 {
		t.Fatalf("hold 0, budget 15: n %d left %d; want 1 (then 100 B count), 2 left", n, left)
	}
}

func TestRoomBackpressure(t *testing.T) {
	ctx, cx := newTestContext(t)
	for i := 0; i < highEvents; i++ {
		cx.push(msg(1, "x"))
	}
	done := make(chan bool)
	go func() { done <- cx.room(nil) }()
	select {
	case <-done:
		t.Fatal("room returned with the queue at its high water")
	case <-time.After(50 * time.Millisecond):
	}
	dst := make([]Event, 256)
	for taken := 0; taken < highEvents/2; {
		n, _, _ := NextEvents(ctx, 0, dst, 1<<20, 0)
		taken += n
	}
	select {
	case waited := <-done:
		if !waited {
			t.Fatal("room did not report its wait")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("room still waits with the queue at half its high water")
	}
	// A stop channel and freeing the context release a waiter too.
	for i := 0; i < highEvents; i++ {
		cx.push(msg(1, "x"))
	}
	stop := make(chan struct{})
	go func() { done <- cx.room(stop) }()
	close(stop)
	if !<-done {
		t.Fatal("room did not wait")
	}
	go func() { done <- cx.room(nil) }()
	time.Sleep(10 * time.Millisecond)
	FreeContext(ctx)
	<-done
}
