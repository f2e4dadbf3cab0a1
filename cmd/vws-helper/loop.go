package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/fdwait"
	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/internal/wire"
)

// The request loop: one thread runs the proxy's calls, forwards every
// context's events, and while it waits reads the contexts' connections
// itself (hub.ReadFDs, hub.ReadReady), as the Lua thread does in process.
// So a message from a peer goes from its socket to the proxy's on this
// thread, without a hand-over between goroutines. While the loop is away
// (a long call, a write the proxy is slow to read), the engine's goroutines
// take the reading back after a grace (internal/hub/direct.go) and keep the
// connections alive. Nothing else may wait in the runtime's poller while
// the loop reads (watchParent): an idle Go thread would then wait in epoll
// and wake for every packet on the connections the loop reads.

// serveCalls bounds the calls the loop runs before it forwards events again.
const serveCalls = 64

// serve runs calls from the proxy's socket fd (read through r) and forwards
// events until the socket ends (io.EOF) or breaks.
func (s *server) serve(fd int, r *bufio.Reader) error {
	runtime.LockOSThread()
	w := waiter{spin: spinFor}
	for {
		now := false
		for _, p := range s.ctxs {
			p.more = p.forward()
			now = now || p.more
		}
		s.flush()
		if r.Buffered() == 0 && !w.wait(s, fd, now) {
			continue
		}
		for range serveCalls {
			m, err := wire.ReadMsg(r)
			if err != nil {
				return err
			}
			if m.Kind != wire.KindCall {
				return fmt.Errorf("unexpected frame kind %d", m.Kind)
			}
			s.call(m)
			if r.Buffered() == 0 {
				break
			}
		}
	}
}

// waiter is the loop's wait: its poll set and revents, reused.
type waiter struct {
	pfd []fdwait.PollFD
	rev []int16

	spin  time.Duration // spinFor, or 0 (tests set their own)
	quick bool          // the last wait ended soon: spin before blocking in the next
}

// spinFor is how long the loop looks at its descriptors without sleeping
// before it blocks, when its last wait ended within that. A round trip
// out of process waits for four wakeups in a row (the helper for Lua's send,
// the peer, the helper for the answer, Lua) where in process it waits for
// two; while answers come this fast, the helper's two are spared: on a
// 2-core VM about twice the round trips a second for the same CPU, a sleep
// and a wakeup costing there about what the spin does (docs/platforms.md).
// A slower peer ends the spinning after one window (a spin that finds
// nothing is not tried again until a wait that blocked ends within the
// window); an idle helper blocks after at most one window. Off (0) on one
// CPU, where the peer itself needs the CPU the spin would take;
// VWS_HELPER_SPIN_US sets it (0: off, at most 1000).
var spinFor = spinDefault(runtime.NumCPU(), os.Getenv("VWS_HELPER_SPIN_US"))

const spinWindow = 100 * time.Microsecond

func spinDefault(cpus int, env string) time.Duration {
	if env != "" {
		if n, err := strconv.Atoi(env); err == nil && n >= 0 {
			return time.Duration(min(n, 1000)) * time.Microsecond
		}
	}
	if cpus < 2 {
		return 0
	}
	return spinWindow
}

// wait polls the proxy's socket fd, the parent's pidfd, every context's
// event pipe and the connections of those with nothing left to forward
// (without blocking when now), reads the connections that are ready, and
// reports whether the socket is readable.
func (w *waiter) wait(s *server, fd int, now bool) (calls bool) {
	w.pfd = append(w.pfd[:0], fdwait.PollFD{FD: int32(fd), Events: fdwait.PollIn}, fdwait.PollFD{FD: int32(s.parentFD), Events: fdwait.PollIn})
	for _, p := range s.ctxs {
		w.pfd = append(w.pfd, fdwait.PollFD{FD: int32(p.efd), Events: fdwait.PollIn})
		if p.more {
			continue // its event pipe is readable; no more input until it is forwarded
		}
		var (
			ready bool
			err   error
		)
		if p.fds, ready, err = hub.ReadFDs(p.hub, p.fds); err != nil {
			continue
		}
		p.claimed, p.first = true, len(w.pfd)
		for _, f := range p.fds {
			w.pfd = append(w.pfd, fdwait.PollFD{FD: f, Events: fdwait.PollIn})
		}
		now = now || ready
	}
	w.poll(!now)
	for _, p := range s.ctxs {
		if !p.claimed {
			continue
		}
		w.rev = w.rev[:0]
		for _, q := range w.pfd[p.first : p.first+len(p.fds)] {
			w.rev = append(w.rev, q.Revents)
		}
		hub.ReadReady(p.hub, w.rev, false) // its events are forwarded next
		p.claimed = false
	}
	if w.pfd[1].Revents != 0 {
		s.checkParent()
	}
	return w.pfd[0].Revents != 0
}

// poll waits for the descriptors of the poll set (block) or looks at them.
// A blocking wait first looks for up to w.spin when the last one ended
// within that (the last spin found something, or the last block was that
// short); a spin that found nothing makes the next wait block at once.
func (w *waiter) poll(block bool) {
	if !block {
		ppoll(w.pfd, false)
		return
	}
	if w.spin <= 0 {
		ppoll(w.pfd, true)
		return
	}
	t0 := time.Now()
	if w.quick {
		for time.Since(t0) < w.spin {
			if ppoll(w.pfd, false) > 0 {
				return // still quick
			}
		}
		w.quick = ppoll(w.pfd, true) <= 0 // interrupted by a signal: try again
		return
	}
	w.quick = ppoll(w.pfd, true) > 0 && time.Since(t0) < w.spin // a signal's interruption says nothing
}

// ppoll waits for the descriptors of pfd (block: without a deadline, else
// it only looks) and returns the number ready (< 0: an error). A signal (the
// runtime preempts with one) ends it early, with what was ready then.
func ppoll(pfd []fdwait.PollFD, block bool) int {
	var zero syscall.Timespec
	ts := &zero
	if block {
		ts = nil
	}
	n, errno := fdwait.Ppoll(pfd, ts)
	if errno != 0 {
		return -1
	}
	return n
}
