package main

import (
	"bufio"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

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

// pollFD is struct pollfd.
type pollFD struct {
	fd      int32
	events  int16
	revents int16
}

// serve runs calls from the proxy's socket fd (read through r) and forwards
// events until the socket ends (io.EOF) or breaks.
func (s *server) serve(fd int, r *bufio.Reader) error {
	runtime.LockOSThread()
	var (
		pfd []pollFD
		rev []int16
	)
	for {
		now := false
		for _, p := range s.ctxs {
			p.more = p.forward()
			now = now || p.more
		}
		s.flush()
		if r.Buffered() == 0 {
			pfd = append(pfd[:0], pollFD{fd: int32(fd), events: hub.PollIn}, pollFD{fd: int32(s.parentFD), events: hub.PollIn})
			for _, p := range s.ctxs {
				pfd = append(pfd, pollFD{fd: int32(p.efd), events: hub.PollIn})
				if p.more {
					continue // its event pipe is readable; no more input until it is forwarded
				}
				var (
					ready bool
					err   error
				)
				p.fds, ready, err = hub.ReadFDs(p.hub, p.fds)
				if err != nil {
					continue
				}
				p.claimed, p.first = true, len(pfd)
				for _, f := range p.fds {
					pfd = append(pfd, pollFD{fd: f, events: hub.PollIn})
				}
				now = now || ready
			}
			ppoll(pfd, !now)
			for _, p := range s.ctxs {
				if !p.claimed {
					continue
				}
				rev = rev[:0]
				for _, q := range pfd[p.first : p.first+len(p.fds)] {
					rev = append(rev, q.revents)
				}
				hub.ReadReady(p.hub, rev, false) // its events are forwarded next
				p.claimed = false
			}
			if pfd[1].revents != 0 {
				s.checkParent()
			}
			if pfd[0].revents == 0 {
				continue
			}
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

// ppoll waits for the descriptors of pfd (block: without a deadline, else
// it only looks). A signal (the runtime preempts with one) ends it early,
// with what was ready then.
func ppoll(pfd []pollFD, block bool) {
	var zero syscall.Timespec
	ts := uintptr(unsafe.Pointer(&zero))
	if block {
		ts = 0
	}
	syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd[0])), uintptr(len(pfd)), ts, 0, 0, 0)
}
