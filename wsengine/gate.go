// Writes shared with another process: the out-of-process proxy writes a
// small message's frame to the socket itself (cmd/vws-helper passes it a
// duplicate of the socket) while the engine has nothing to write, instead of
// waking the helper for it. A gate word in memory both processes map says
// who may write:
//
//	bit 0 (GateOther)  the other process is writing a frame
//	bit 1 (GateBusy)   the engine has frames queued or is writing one
//	bits 2-31          the generation the other process was given
//
// The other process starts a write only by a compare-and-swap from its
// generation with both bits clear to the same with GateOther set, and clears
// GateOther when its frame is written (or hands the rest of a frame the
// socket did not take whole to TakeOtherWrite, which clears it). The engine
// sets GateBusy before it writes and looks at GateOther in the same atomic
// operation: a write-through that finds the other writing queues its frame
// instead (it may run on the helper's request loop, which must never wait:
// the other's TakeOtherWrite may be behind it), and the writer goroutine
// waits until the other is done. Both operations are atomic on the one word,
// so one of the two always sees the other.

package wsengine

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"
)

// The bits of a gate word (see above).
const (
	GateOther    uint32 = 1
	GateBusy     uint32 = 2
	GateGenShift        = 2
)

// gateWait is how long the writer goroutine sleeps between looks at a gate
// the other process holds (for one non-blocking write, or until the helper
// takes the rest of its frame).
const gateWait = 20 * time.Microsecond

// ErrNoShare is returned by ShareWrites for a connection whose writes cannot
// be shared: not open, not plain TCP (wss://), compressed, with writeable
// events (the engine would not see the other's writes drain), or with a
// max_send_queue below the messages the other writes (the engine would
// refuse some of them).
var ErrNoShare = errors.New("connection writes cannot be shared")

// ShareWrites lets another process write whole frames of messages of at
// most maxLen bytes to the socket of the connection's current session under
// gate word w (see above; gen is stored in its upper bits), and returns a
// duplicate of the socket for it (close-on-exec; the caller closes it once
// passed on). The session touches w until it ends, then calls release once,
// on the session's goroutine (nil: none): w may then be reused. From now on
// the session shuts its socket down before closing it: the other's copy
// would keep the connection open.
func (c *Conn) ShareWrites(w *uint32, gen uint32, maxLen int, release func()) (fd int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sess
	if c.State() != StateOpen || s == nil || s.sc == nil || s.rb.tls() || s.deflate != nil ||
		c.opts.writeableEvents || c.opts.maxSendQueue < maxLen || s.gate.Load() != nil {
		return -1, ErrNoShare
	}
	fd = -1
	cerr := s.sc.rc.Control(func(sfd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, sfd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			err = errno
			return
		}
		fd = int(r)
	})
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, err
	}
	atomic.StoreUint32(w, gen<<GateGenShift)
	s.gate.Store(w)
	s.gateRelease = release
	s.sc.shared.Store(true)
	s.gateSync()
	return fd, nil
}

// TakeOtherWrite takes over the rest of a frame the other process began
// writing under generation gen (rest: the bytes the socket did not take),
// which goes out before anything else, and clears GateOther. A gen that is
// not the current session's (it ended meanwhile) is ignored.
func (c *Conn) TakeOtherWrite(gen uint32, rest []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sess
	if s == nil || s.gate.Load() == nil || atomic.LoadUint32(s.gate.Load())>>GateGenShift != gen {
		return
	}
	if len(rest) > 0 && !s.writerDone {
		s.sc.mu.Lock()
		s.sc.spill = append(s.sc.spill, rest...)
		s.sc.mu.Unlock()
		s.data = append([]outFrame{{spill: len(rest)}}, s.data...)
		s.gateSync() // busy before the other's bit goes
		s.wakeWriter()
	}
	atomic.AndUint32(s.gate.Load(), ^GateOther)
}

// gateSync sets or clears GateBusy as the session has frames queued or
// being written, or can write no more; c.mu is held.
func (s *session) gateSync() {
	g := s.gate.Load()
	if g == nil {
		return
	}
	if s.writing || len(s.ctrl) > 0 || len(s.data) > 0 || s.closeQueued || s.throughErr != nil || s.writerDone {
		atomic.OrUint32(g, GateBusy)
	} else {
		atomic.AndUint32(g, ^GateBusy)
	}
}

// gateTake sets GateBusy and reports whether the other process is writing;
// c.mu is held.
func (s *session) gateTake() (other bool) {
	g := s.gate.Load()
	return g != nil && atomic.OrUint32(g, GateBusy)&GateOther != 0
}

// gateAwait waits until the other process is not writing (the writer
// goroutine, GateBusy set); false when the session stopped meanwhile.
func (s *session) gateAwait() bool {
	g := s.gate.Load()
	for g != nil && atomic.LoadUint32(g)&GateOther != 0 {
		select {
		case <-s.stop:
			return false
		default:
		}
		time.Sleep(gateWait)
	}
	return true
}
