// The descriptors of many connections read on the waiting thread, in one
// epoll instance: the wait then polls one descriptor for all of them, and
// ReadReady asks the instance which are readable, so a message costs the
// same with 1,000 connections open as with one (poll's cost grows with the
// number of descriptors it is given).

package hub

import (
	"sync/atomic"
	"syscall"
)

// epollMin is the number of polled connections from which a context's
// wait polls an epoll instance instead of their descriptors (a variable for
// the tests). Below it a wait needs one system call (poll), not two.
var epollMin atomic.Int32

func init() { epollMin.Store(16) }

// epollSet is a context's epoll instance (guarded by direct.mu).
type epollSet struct {
	fd    int     // -1: none
	on    bool    // the last rebuild put the polled connections in it
	epoch uint64  // incremented with each instance (conn.drEp)
	reg   []*conn // the connections registered in it
	byFD  []int32 // descriptor -> index in direct.polled + 1 (0: none)
	evs   []syscall.EpollEvent
}

// use puts polled (their descriptors fds, in order) in the instance when
// they are many, and reports whether it did; when it did not, or cannot,
// the wait polls fds.
func (e *epollSet) use(polled []*conn, fds []int32, gen uint64) bool {
	e.on = false
	if len(polled) < int(epollMin.Load()) {
		e.close()
		return false
	}
	if e.fd < 0 {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return false
		}
		e.fd, e.epoch = fd, e.epoch+1
	}
	// Those no longer polled (or polled on another descriptor) go first,
	// before any is added: see del.
	keep := e.reg[:0]
	for _, c := range e.reg {
		if c.drGen == gen && fds[c.drIdx] == c.drFD {
			keep = append(keep, c)
		} else {
			e.del(c)
		}
	}
	clear(e.reg[len(keep):])
	e.reg = keep
	clear(e.byFD)
	for i, c := range polled {
		fd := fds[i]
		if int(fd) >= len(e.byFD) {
			e.byFD = append(e.byFD, make([]int32, int(fd)+1-len(e.byFD))...)
		}
		e.byFD[fd] = int32(i + 1)
		if c.drEp == e.epoch {
			continue
		}
		if !e.add(c, fd) {
			e.close()
			return false
		}
	}
	if e.evs == nil {
		e.evs = make([]syscall.EpollEvent, 64)
	}
	e.on = true
	return true
}

// add registers c's descriptor fd. False: the instance cannot take it.
func (e *epollSet) add(c *conn, fd int32) bool {
	var st syscall.Stat_t
	if syscall.Fstat(int(fd), &st) != nil {
		return true // closed already: the connection is ending (its CLOSED makes a rebuild)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: fd}
	switch err := syscall.EpollCtl(e.fd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err {
	case nil, syscall.EEXIST:
	case syscall.EBADF:
		return true
	default: // ENOMEM, ENOSPC (max_user_watches)
		return false
	}
	c.drEp, c.drFD, c.drDev, c.drIno = e.epoch, fd, uint64(st.Dev), st.Ino
	e.reg = append(e.reg, c)
	return true
}

// del removes c's registration. A descriptor that was closed left the
// instance by itself, and its number may belong to another file since: it
// is removed only if it still names the file that was added. (Files enter
// the instance only through add, under direct.mu, after the removals of the
// same rebuild; so one added later under the same number is never removed
// by mistake.)
func (e *epollSet) del(c *conn) {
	var st syscall.Stat_t
	if syscall.Fstat(int(c.drFD), &st) == nil && uint64(st.Dev) == c.drDev && st.Ino == c.drIno {
		syscall.EpollCtl(e.fd, syscall.EPOLL_CTL_DEL, int(c.drFD), nil)
	}
	c.drEp = 0
}

// index returns the index in direct.polled of the connection with
// descriptor fd, or -1.
func (e *epollSet) index(fd int32) int {
	if fd < 0 || int(fd) >= len(e.byFD) {
		return -1
	}
	return int(e.byFD[fd]) - 1
}

// close closes the instance (its registrations go with it).
func (e *epollSet) close() {
	e.on = false
	if e.fd < 0 {
		return
	}
	syscall.Close(e.fd)
	e.fd = -1
	for _, c := range e.reg {
		c.drEp = 0
	}
	clear(e.reg)
	e.reg = e.reg[:0]
}

// readPolled reads the connections the instance says are readable (up to
// 16 rounds of 64; epoll hands out the rest first next time).
func (d *direct) readPolled() {
	for range 16 {
		n, err := syscall.EpollWait(d.ep.fd, d.ep.evs, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		for _, ev := range d.ep.evs[:n] {
			// EPOLLIN, EPOLLERR and EPOLLHUP have poll's values.
			if i := d.ep.index(ev.Fd); i >= 0 && d.polled[i].drSeen != d.reads {
				d.read(i, int16(ev.Events))
			}
		}
		if n < len(d.ep.evs) {
			return
		}
	}
}
