// Package fdwait is waiting on descriptors outside the Go runtime's network
// poller: a wake pipe and ppoll(2). The hub's event and hand-over pipes, the
// helper's loop, and the engine's listener and keepalive clock wait this way
// (a goroutine parked in the poller keeps an idle runtime thread in
// epoll_wait, which every message on a connection read elsewhere then wakes).
package fdwait

import (
	"syscall"
	"unsafe"
)

// Pipe is a non-blocking pipe whose read end poll(2) sees readable from Poke
// until Drain. Its owner serializes the calls.
type Pipe struct{ R, W int }

// ClosedPipe is a Pipe that is not open.
var ClosedPipe = Pipe{R: -1, W: -1}

// Open creates the pipe unless it is open.
func (p *Pipe) Open() error {
	if p.R >= 0 {
		return nil
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		return err
	}
	p.R, p.W = fds[0], fds[1]
	return nil
}

// Poke writes one byte (a full pipe already is readable).
func (p *Pipe) Poke() {
	b := [1]byte{1}
	for {
		_, err := syscall.Write(p.W, b[:])
		if err != syscall.EINTR {
			return
		}
	}
}

// Drain reads what the pipe holds.
func (p *Pipe) Drain() {
	var b [16]byte
	for {
		n, err := syscall.Read(p.R, b[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n < len(b) {
			return
		}
	}
}

// Close closes both ends, if open.
func (p *Pipe) Close() {
	if p.R >= 0 {
		syscall.Close(p.R)
		syscall.Close(p.W)
		*p = ClosedPipe
	}
}

// PollFD is poll(2)'s struct pollfd.
type PollFD struct {
	FD      int32
	Events  int16
	Revents int16
}

// PollIn is POLLIN.
const PollIn = 0x1

// Ppoll waits on pfd (not empty) up to timeout (nil: no limit) and returns
// the number ready, or the error (EINTR when a signal ended it: the runtime
// preempts with one).
func Ppoll(pfd []PollFD, timeout *syscall.Timespec) (int, syscall.Errno) {
	n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd[0])), uintptr(len(pfd)),
		uintptr(unsafe.Pointer(timeout)), 0, 0, 0)
	return int(n), errno
}
