package wsengine

import (
	"net"
	"sync/atomic"
	"syscall"

	"github.com/verawebsockets/verawebsockets/internal/fdwait"
)

// quietListener waits for connections in a poll of its own (the listening
// socket and a wake pipe), not in the runtime's network poller, and accepts
// only once one is pending, so its Accept never parks there.
//
// Why: a goroutine parked in the poller keeps an idle runtime thread in
// epoll_wait, and that epoll set holds every connection's socket, also those
// the Lua thread reads itself (Conn.ClaimRead). Each message that arrives on
// one of them then wakes that thread for nothing: in the Lua echo server of
// make bench, 1.4 epoll wakeups and 0.8 context switches more a round trip,
// and 43% more CPU.
type quietListener struct {
	*net.TCPListener
	raw    syscall.RawConn
	wake   fdwait.Pipe // readable once Close began
	closed atomic.Bool
}

// quiet wraps ln when it is a TCP listener and a pipe can be had; else ln.
func quiet(ln net.Listener) net.Listener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln
	}
	raw, err := tl.SyscallConn()
	if err != nil {
		return ln
	}
	l := &quietListener{TCPListener: tl, raw: raw, wake: fdwait.ClosedPipe}
	if l.wake.Open() != nil {
		return ln
	}
	return l
}

// Accept waits (wait) until a connection is pending, then takes it.
func (l *quietListener) Accept() (net.Conn, error) {
	l.wait()
	return l.TCPListener.Accept()
}

// wait returns once the listening socket is readable (or failed) or Close
// began. It polls inside RawConn.Control, which holds the socket open: a
// Close waits for it (after waking it through the pipe). When the socket is
// closed already it returns at once (the Accept that follows says so).
func (l *quietListener) wait() {
	l.raw.Control(func(fd uintptr) {
		pfd := [2]fdwait.PollFD{{FD: int32(fd), Events: fdwait.PollIn}, {FD: int32(l.wake.R), Events: fdwait.PollIn}}
		for !l.closed.Load() {
			n, errno := fdwait.Ppoll(pfd[:], nil)
			if errno != syscall.EINTR && (errno != 0 || n > 0) {
				return // ready, closing, or poll failed: Accept tells which
			}
		}
	})
}

// Close wakes a wait, closes the socket (which waits for the wait to leave
// it), then the pipe.
func (l *quietListener) Close() error {
	if l.closed.Swap(true) {
		return l.TCPListener.Close() // its error: closed already
	}
	l.wake.Poke()
	err := l.TCPListener.Close()
	w := l.wake // closes the fds only: l.wake.R was read in Control, which Close waited out (unseen by the race detector)
	w.Close()
	return err
}
