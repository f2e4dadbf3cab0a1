package wsengine

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// writeThroughMax is the largest frame payload Send writes on the caller's
// goroutine. Larger messages go to the writer goroutine: the caller must not
// spend long in a write, and the writer overlaps them with the caller's work.
const writeThroughMax = 16 << 10

// spillConn is the TCP connection under a session (under TLS for wss://). A
// write-through (Send writing on its caller's goroutine) sets nonblock around
// its write: then Write takes what the socket accepts without waiting and keeps
// the rest in spill, which the next blocking Write (the writer goroutine's)
// sends first. Writes are serialized by the session (session.writing) and by
// tls.Conn; mu guards spill against the rare writes outside both (a TLS 1.3
// key update written by the reader).
type spillConn struct {
	net.Conn
	rc       syscall.RawConn
	nonblock atomic.Bool
	shared   atomic.Bool // another process holds a copy of the socket (Conn.ShareWrites)

	mu    sync.Mutex
	spill []byte
	// The non-blocking write's argument and results (under mu), and the
	// function rc.Write calls, made once: no allocation per write.
	wp      []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool

	// The non-blocking read (readBuf.readNow; one reader at a time): its
	// switch, argument and results, and the function rc.Read calls.
	rnonblock bool
	rp        []byte
	rn        int
	rerr      error
	readFn    func(fd uintptr) bool
}

// newSpillConn wraps a TCP connection; other connections are returned as they are.
func newSpillConn(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &spillConn{Conn: nc, rc: rc}
	c.writeFn = c.writeNow
	c.readFn = c.readOnce
	return c
}

// writeNow writes c.wp once without waiting (rc.Write's callback; mu held).
func (c *spillConn) writeNow(fd uintptr) bool {
	for {
		c.wn, c.werr = syscall.Write(int(fd), c.wp)
		if c.werr != syscall.EINTR {
			return true // never wait for writability
		}
	}
}

// Close closes the connection, shutting the socket down first when another
// process holds a copy of it (which would keep the connection open).
func (c *spillConn) Close() error {
	if c.shared.Load() {
		c.rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	}
	return c.Conn.Close()
}

// spillConnOf returns the spillConn under nc (itself or under its TLS), or nil.
func spillConnOf(nc net.Conn) *spillConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, _ := nc.(*spillConn)
	return sc
}

// Write writes p. While nonblock is set it never waits: what the socket does
// not take now is kept for the next blocking Write, and p counts as written.
func (c *spillConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nonblock.Load() {
		if len(c.spill) > 0 {
			c.spill = append(c.spill, p...)
			return len(p), nil
		}
		c.wp = p
		cerr := c.rc.Write(c.writeFn)
		n, err := c.wn, c.werr
		c.wp, c.werr = nil, nil
		if cerr != nil {
			return 0, cerr
		}
		if n < 0 {
			n = 0
		}
		if err != nil && err != syscall.EAGAIN {
			return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
		}
		if n < len(p) {
			c.spill = append(c.spill, p[n:]...)
		}
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// flushLocked writes the spill, waiting as long as it takes; mu is held.
func (c *spillConn) flushLocked() error {
	if len(c.spill) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.spill)
	if cap(c.spill) > 2*writeThroughMax {
		c.spill = nil
	} else {
		c.spill = c.spill[:0]
	}
	return err
}

// flush writes the spill (the writer goroutine's job after a write-through).
func (c *spillConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

// spilled returns the number of bytes waiting in the spill.
func (c *spillConn) spilled() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spill)
}

// spillListener wraps the connections it accepts in a spillConn.
type spillListener struct{ net.Listener }

func (l spillListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newSpillConn(nc), nil
}
