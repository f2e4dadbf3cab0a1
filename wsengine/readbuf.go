// The session's read buffer: taken from a pool while frames arrive and given
// back while the connection is idle, so that an idle connection holds none.

package wsengine

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// readBufSize is the size of the pooled read buffers. A read of at least
// this much into an empty buffer goes straight to the caller's slice.
const readBufSize = 32 << 10

var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// readBuf buffers the reads of one session (like bufio.Reader) with a buffer
// it holds only while there is something to read: idle gives the buffer back
// to readPool and waits for the connection to become readable without one.
// It is used by the session's reader goroutine only.
type readBuf struct {
	src io.Reader // the connection (a tls.Conn for wss://)
	buf *[]byte   // nil while idle
	r   int       // (*buf)[r:w] is buffered
	w   int
	err error // the error of the read that filled the buffer, returned once it is empty

	// For a plain TCP connection: the descriptor, to wait for readability
	// (rc.Read with waitFn, made once: no allocation per wait).
	rc     syscall.RawConn
	waitFn func(fd uintptr) bool
	waited bool    // waitFn was called once and found nothing
	peek   [1]byte // waitFn's MSG_PEEK target; without rc, idle's one-byte read
}

// newReadBuf returns a readBuf for nc holding early, the bytes read behind
// the opening handshake (copied), first.
func newReadBuf(nc net.Conn, early []byte) *readBuf {
	rb := &readBuf{src: nc}
	if sc, ok := nc.(*spillConn); ok {
		rb.rc = sc.rc
		rb.waitFn = rb.readable
	}
	if len(early) > 0 {
		if len(early) > readBufSize {
			b := make([]byte, len(early)) // not pooled (put drops it)
			rb.buf = &b
		} else {
			rb.get()
		}
		rb.w = copy(*rb.buf, early)
	}
	return rb
}

func (rb *readBuf) get() {
	if rb.buf == nil {
		rb.buf = readPool.Get().(*[]byte)
	}
}

// put gives the buffer back; nothing is buffered.
func (rb *readBuf) put() {
	if rb.buf != nil {
		if cap(*rb.buf) == readBufSize {
			readPool.Put(rb.buf)
		}
		rb.buf = nil
	}
	rb.r, rb.w = 0, 0
}

// Read reads into p what is buffered or, with nothing buffered, what one read
// of the connection returns (straight into p when p is at least as large as
// a buffer).
func (rb *readBuf) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if rb.r == rb.w {
		if rb.err != nil {
			err := rb.err
			rb.err = nil
			return 0, err
		}
		if len(p) >= readBufSize {
			rb.put()
			return rb.src.Read(p)
		}
		rb.get()
		n, err := rb.src.Read(*rb.buf)
		rb.r, rb.w = 0, max(n, 0)
		if rb.w == 0 {
			return 0, err
		}
		rb.err = err
	}
	n := copy(p, (*rb.buf)[rb.r:rb.w])
	rb.r += n
	return n, nil
}

// next returns up to n buffered bytes (reading the connection once when
// none are), valid until the next call of a readBuf method; they may be
// changed in place.
func (rb *readBuf) next(n int) ([]byte, error) {
	if rb.r == rb.w {
		if rb.err != nil {
			err := rb.err
			rb.err = nil
			return nil, err
		}
		rb.get()
		m, err := rb.src.Read(*rb.buf)
		rb.r, rb.w = 0, max(m, 0)
		if rb.w == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, err
		}
		rb.err = err
	}
	k := min(n, rb.w-rb.r)
	p := (*rb.buf)[rb.r : rb.r+k]
	rb.r += k
	return p, nil
}

// idle gives the buffer back unless bytes are buffered and waits until the
// connection has something to read (or an error or its end, which the next
// Read returns). Called between frames.
func (rb *readBuf) idle() {
	if rb.r < rb.w || rb.err != nil {
		return
	}
	rb.put()
	if rb.rc != nil {
		rb.waited = false
		if err := rb.rc.Read(rb.waitFn); err != nil {
			rb.err = err
		}
		return
	}
	// No descriptor to wait on (TLS keeps its own buffers under us): one byte.
	n, err := rb.src.Read(rb.peek[:])
	if n > 0 {
		rb.get()
		(*rb.buf)[0] = rb.peek[0]
		rb.r, rb.w = 0, 1
	}
	rb.err = err
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
		return true // data, the end, or an error: Read will tell
	}
}
