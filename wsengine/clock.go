package wsengine

import (
	"container/heap"
	"sync"
	"syscall"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/fdwait"
)

// The keepalive clock: the timers of open connections (ping interval, pong
// and close timeouts) kept by one goroutine that sleeps in a poll of its own
// (a wake pipe, with the next deadline as timeout), not in the runtime's timers.
//
// Why: while any runtime timer is pending, an idle runtime thread sleeps in
// epoll_wait until it is due, and that epoll set holds every connection's
// socket, also those the Lua thread reads itself (Conn.ClaimRead): each
// message that arrives on one then wakes that thread for nothing. A client
// with ping_interval set took 0.6-0.75 epoll wakeups and 0.65 context
// switches more a round trip. (The listener's wait is kept out of the poller for the
// same reason: quietListener.)

// quietTimer fires once when due (or every period, when period > 0) by a
// send on C that does not block (a tick the receiver has not taken yet is
// not doubled), as time.Timer and time.Ticker do.
type quietTimer struct {
	C      chan time.Time
	when   time.Time
	period time.Duration
	idx    int  // in clock.h; -1 when not in it
	dead   bool // stopped (a fallback timer's end)
}

// afterQuiet returns a timer that fires once after d.
func afterQuiet(d time.Duration) *quietTimer { return clock.add(d, 0) }

// tickQuiet returns a timer that fires every d (> 0).
func tickQuiet(d time.Duration) *quietTimer { return clock.add(d, d) }

// Stop stops t: it does not fire after Stop returns.
func (t *quietTimer) Stop() {
	clock.mu.Lock()
	defer clock.mu.Unlock()
	t.dead = true
	if t.idx >= 0 {
		heap.Remove(&clock.h, t.idx)
		if len(clock.h) == 0 {
			clock.poke() // to end
		}
	}
}

// quietClock is the clock's state (clock), its goroutine started with the
// first timer and ended (with its pipe) once no timer is left.
type quietClock struct {
	mu      sync.Mutex
	h       timerHeap
	wake    fdwait.Pipe // a byte in it ends the goroutine's sleep
	running bool        // the goroutine was started
	until   time.Time   // when the goroutine's sleep ends (zero before its first sleep)
	poked   bool        // a byte is in the pipe, not read yet
}

var clock quietClock

// add schedules a timer after d (period: repeating); the goroutine is woken
// when it sleeps past it.
func (k *quietClock) add(d, period time.Duration) *quietTimer {
	t := &quietTimer{C: make(chan time.Time, 1), when: time.Now().Add(d), period: period, idx: -1}
	k.mu.Lock()
	defer k.mu.Unlock()
	heap.Push(&k.h, t)
	if !k.running {
		k.wake = fdwait.ClosedPipe
		if err := k.wake.Open(); err != nil {
			// No pipe: a runtime timer drives this one (woken spuriously,
			// as before, but on time).
			heap.Remove(&k.h, t.idx)
			go k.fallback(t)
			return t
		}
		k.running = true
		go k.run()
		return t
	}
	if k.until.IsZero() || t.when.Before(k.until) {
		k.poke()
	}
	return t
}

// poke ends the goroutine's sleep (k.mu held).
func (k *quietClock) poke() {
	if k.running && !k.poked {
		k.poked = true
		k.wake.Poke()
	}
}

// fallback fires t from a runtime timer until it is stopped (its channel may
// then hold a value, as a stopped time.Timer's may).
func (k *quietClock) fallback(t *quietTimer) {
	for {
		time.Sleep(time.Until(t.when))
		k.mu.Lock()
		dead := t.dead
		k.mu.Unlock()
		if dead {
			return
		}
		select {
		case t.C <- time.Now():
		default:
		}
		if t.period <= 0 {
			return
		}
		t.when = t.when.Add(t.period)
	}
}

// run fires the timers that are due, then sleeps until the next one is or
// the pipe is poked; it ends when no timer is left.
func (k *quietClock) run() {
	for {
		k.mu.Lock()
		now := time.Now()
		for len(k.h) > 0 && !k.h[0].when.After(now) {
			t := k.h[0]
			select {
			case t.C <- now:
			default:
			}
			if t.period > 0 {
				t.when = t.when.Add(t.period)
				if !t.when.After(now) { // late: the next tick from now, as a Ticker
					t.when = now.Add(t.period)
				}
				heap.Fix(&k.h, 0)
			} else {
				heap.Pop(&k.h)
			}
		}
		if len(k.h) == 0 {
			k.running, k.poked = false, false
			k.wake.Close()
			k.mu.Unlock()
			return
		}
		k.until = k.h[0].when
		timeout := syscall.NsecToTimespec(int64(k.until.Sub(now)))
		pfd := [1]fdwait.PollFD{{FD: int32(k.wake.R), Events: fdwait.PollIn}}
		k.mu.Unlock()
		fdwait.Ppoll(pfd[:], &timeout)
		if pfd[0].Revents != 0 {
			k.mu.Lock()
			k.wake.Drain()
			k.poked = false
			k.mu.Unlock()
		}
	}
}

// timerHeap orders timers by when (container/heap).
type timerHeap []*quietTimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*quietTimer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.idx = -1
	*h = old[:len(old)-1]
	return t
}
