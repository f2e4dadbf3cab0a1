// The session's byte source: waiting for the peer without a buffer, and
// reading what has arrived into a pooled buffer, given back after each read,
// so that an idle connection holds none. Whoever reads (the reader goroutine
// or the waiting thread, see direct.go) feeds the bytes to the parser
// (session.feed), which keeps no reference to them.

package wsengine

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// readBufSize is the size of the pooled read buffers. A large payload is read
// straight into the message instead (session.payloadDst).
const readBufSize = 32 << 10

// readChunk is the most one read puts straight into a message.
const readChunk = 64 << 10

var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// errWouldBlock is a non-blocking read that found nothing. It is a temporary
// net.Error, so tls.Conn keeps its state (as after a read deadline).
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "read would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// kicked reports whether err is a read ended by the deadline that hands the
// reading over (session.claim), or a non-blocking read that found nothing.
func kicked(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errWouldBlock)
}

// readBuf is the session's source of bytes: src (the connection: a tls.Conn
// for wss://) and, for TCP, the spillConn under it (sc), which reads without
// waiting while its rnonblock is set. Its methods are called by one reader at
// a time (session.rmode).
type readBuf struct {
	src   net.Conn
	sc    *spillConn // nil: no descriptor (then reads block; no direct reading)
	early []byte     // read behind the opening handshake, fed first

	waitFn func(fd uintptr) bool // made once: no allocation per wait
	waited bool                  // waitFn was called once and found nothing
	peek   [1]byte
}

// newReadBuf returns a readBuf for nc holding early, the bytes read behind
// the opening handshake (copied).
func newReadBuf(nc net.Conn, early []byte) *readBuf {
	rb := &readBuf{src: nc, sc: spillConnOf(nc)}
	if len(early) > 0 {
		rb.early = append([]byte(nil), early...)
	}
	rb.waitFn = rb.readable
	return rb
}

func getReadBuf() *[]byte { return readPool.Get().(*[]byte) }

func putReadBuf(b *[]byte) { readPool.Put(b) }

// tls reports whether src is a TLS connection over sc.
func (rb *readBuf) tls() bool { return rb.src != net.Conn(rb.sc) }

// wait waits, holding no buffer, until the connection has something to read
// (or an error or its end, which the next read returns). For TLS it reads the
// first byte (p, at most one), which the caller feeds. A kick (session.claim)
// ends it early with a kicked error.
func (rb *readBuf) wait() (p []byte, err error) {
	if rb.sc != nil && !rb.tls() {
		rb.waited = false
		if err := rb.sc.rc.Read(rb.waitFn); err != nil {
			return nil, err
		}
		return nil, nil
	}
	// TLS keeps its own buffers under us: one byte.
	n, err := rb.src.Read(rb.peek[:])
	return rb.peek[:n], err
}

// readable is rc.Read's callback: true once the socket has something to
// read. The first call peeks; after that rc.Read calls it again only when
// the poller reports the socket readable, and nothing else reads it.
func (rb *readBuf) readable(fd uintptr) bool {
	if rb.waited {
		return true
	}
	for {
		_, _, err := syscall.Recvfrom(int(fd), rb.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			rb.waited = true
			return false
		}
		return true // data, the end, or an error: the read will tell
	}
}

// readNow reads into p what has arrived without waiting for more: an
// errWouldBlock when nothing has. Without a descriptor it blocks.
func (rb *readBuf) readNow(p []byte) (int, error) {
	if rb.sc == nil {
		return rb.src.Read(p)
	}
	rb.sc.rnonblock = true
	n, err := rb.src.Read(p)
	rb.sc.rnonblock = false
	return n, err
}

// readNow is spillConn's non-blocking read (rnonblock set).
func (c *spillConn) readNow(p []byte) (int, error) {
	c.rp = p
	err := c.rc.Read(c.readFn)
	n, rerr := c.rn, c.rerr
	c.rp, c.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is rc.Read's callback for readNow: one read, never a wait.
func (c *spillConn) readOnce(fd uintptr) bool {
	for {
		c.rn, c.rerr = syscall.Read(int(fd), c.rp)
		if c.rerr != syscall.EINTR {
			if c.rn < 0 {
				c.rn = 0
			}
			return true
		}
	}
}

// Read reads p: without waiting while rnonblock is set (readBuf.readNow).
func (c *spillConn) Read(p []byte) (int, error) {
	if c.rnonblock {
		return c.readNow(p)
	}
	return c.Conn.Read(p)
}
