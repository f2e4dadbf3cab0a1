// Who reads a session: its reader goroutine, or the thread that waits for
// the connection's events (the Lua thread in ws.loop), which then reads and
// parses on its own stack, with no hand-off between threads per message.
//
// The reading changes hands only between reads (session.rmode, under rmu):
// the waiting thread asks (claim), which kicks the goroutine out of its wait
// with a read deadline in the past; the goroutine hands over (rmode
// readDirect, the handover callback) and ends, and release starts another
// when it gives the reading back. So a connection whose waiting thread reads
// it has no reader goroutine (no stack) while idle. The waiting thread reads
// under rmu, so the session cannot end in the middle of one of its reads;
// teardown ends a reading that no goroutine runs itself.

package wsengine

import (
	"sync"
	"sync/atomic"
	"time"
)

// readOwner is the session's part in the hand-over of its reading.
type readOwner struct {
	rmu      sync.Mutex   // held by the waiting thread's reads; guards the rest
	rmode    atomic.Int32 // readEngine, readAsked, readDirect (changed under rmu)
	kick     bool         // a kick's deadline is set on the connection
	rEnded   bool         // the reading ended (rExit closed, rRes set)
	rRunning bool         // a reader goroutine runs (not while handed over)
	fd       int          // the descriptor to poll; -1: never handed over
}

const (
	readEngine = iota // the reader goroutine reads
	readAsked         // the waiting thread asked; the goroutine hands over when its wait or read returns
	readDirect        // the waiting thread reads; no reader goroutine runs
)

// What the reader goroutine does next (engineTurn).
const (
	turnRead   = iota // read on
	turnHanded        // the reading is handed over: end (release starts another)
	turnEnded         // the reading ended, or the session is torn down
)

// readTornDown ends a reading that teardown stopped.
var readTornDown = readResult{code: CloseAbnormal, reason: "closed"}

// aLongTimeAgo is the deadline that kicks the reader goroutine out of a wait.
var aLongTimeAgo = time.Unix(1, 0)

// SetHandover sets fn, which a connection calls (on an engine goroutine)
// when it has handed its reading over after ClaimRead asked for it. Set it
// before Connect (for an accepted connection, in the server's AcceptFunc).
func (c *Conn) SetHandover(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handover = fn
}

func (c *Conn) session() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// ClaimRead asks that the calling thread read the connection itself (ReadNow)
// from now on. Once the reading is handed over it returns the descriptor to
// wait on for readability (ok); until then (asked) the reader goroutine reads,
// and it calls the handover function when it hands over. A connection that is
// not open, or has no descriptor, is never handed over (neither).
func (c *Conn) ClaimRead() (fd int, ok, asked bool) {
	s := c.session()
	if s == nil {
		return -1, false, false
	}
	return s.claim()
}

// ReadNow reads and handles what has arrived, without waiting, while the
// connection's reading is the caller's (ClaimRead): its events are emitted on
// the calling thread. It stops after about budget bytes (more: there may be
// more to read now, some of it perhaps buffered where the descriptor does
// not show it).
func (c *Conn) ReadNow(budget int) (more bool) {
	s := c.session()
	if s == nil {
		return false
	}
	return s.readDirect(budget)
}

// ReleaseRead gives the reading back to the connection's reader goroutine
// (or withdraws a claim not yet handed over).
func (c *Conn) ReleaseRead() {
	if s := c.session(); s != nil {
		s.release()
	}
}

func (c *Conn) handoverFn() func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handover
}

func (s *session) claim() (fd int, ok, asked bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.fd < 0 || s.rEnded {
		return -1, false, false
	}
	switch s.rmode.Load() {
	case readDirect:
		return s.fd, true, false
	case readEngine:
		s.rmode.Store(readAsked)
		s.kick = true
		s.rb.sc.SetReadDeadline(aLongTimeAgo) // under rmu: before the goroutine's hand-over clears it
	}
	return -1, false, true
}

func (s *session) release() {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	switch s.rmode.Load() {
	case readAsked:
		s.rmode.Store(readEngine) // the kicked goroutine clears the deadline and reads on
	case readDirect:
		s.rmode.Store(readEngine)
		if !s.rRunning && !s.rEnded {
			s.rRunning = true
			go s.readOn(readResult{}, false)
		}
	}
}

// readDirect is ReadNow.
func (s *session) readDirect(budget int) (more bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.rmode.Load() != readDirect || s.rEnded {
		return false
	}
	for budget > 0 {
		n, room, res, end := s.readOnce(true)
		if end {
			s.endReadLocked(res)
			return false
		}
		if n == 0 || (n < room && !s.rb.tls()) {
			// Drained (a short read of a socket: poll tells of more;
			// TLS may hold more records than one read returns).
			return false
		}
		budget -= n
	}
	return true
}

// readOnce reads what has arrived once, without waiting, and feeds it to the
// parser: n is 0 when nothing had; end: the reader stops with res.
func (s *session) readOnce(direct bool) (n, room int, res readResult, end bool) {
	dst := s.payloadDst()
	var buf *[]byte
	if dst == nil {
		buf = getReadBuf()
		dst = *buf
	}
	room = len(dst)
	n, err := s.rb.readNow(dst)
	if n > 0 {
		if buf != nil {
			res, end = s.feed(dst[:n], direct)
		} else {
			res, end = s.payloadIn(n, direct)
		}
	}
	if buf != nil {
		putReadBuf(buf)
	}
	if end {
		return n, room, res, true
	}
	if err != nil && !kicked(err) {
		return n, room, ioResult(err), true
	}
	return n, room, readResult{}, false
}

// readLoop is the reader goroutine of a new session: the bytes that came
// with the handshake, then readOn.
func (s *session) readLoop() {
	res, end := s.feed(s.rb.early, false)
	s.rb.early = nil
	s.readOn(res, end)
}

// readOn reads while the reading is the engine's, until the connection ends
// (then it ends the reading) or the reading is handed over (then it returns,
// and release starts it again on a goroutine of its own).
func (s *session) readOn(res readResult, end bool) {
	for !end {
		switch s.engineTurn() {
		case turnHanded:
			return
		case turnEnded:
			s.endRead(readTornDown) // the first end counts
			return
		}
		res, end = s.readSome()
	}
	s.endRead(res)
}

// readSome waits for the peer and reads what arrived.
func (s *session) readSome() (res readResult, end bool) {
	p, err := s.rb.wait()
	if len(p) > 0 {
		if res, end := s.feed(p, false); end {
			return res, true
		}
	}
	if err != nil {
		if kicked(err) {
			return readResult{}, false
		}
		return ioResult(err), true
	}
	for {
		n, _, res, end := s.readOnce(false)
		if end || n < readBufSize || s.rmode.Load() != readEngine {
			return res, end
		}
	}
}

// engineTurn is called by the reader goroutine between reads: it hands the
// reading over when the waiting thread asked (turnHanded: the goroutine
// ends), and tells it to read on or that the reading has ended.
func (s *session) engineTurn() int {
	s.rmu.Lock()
	if s.rEnded {
		s.rmu.Unlock()
		return turnEnded
	}
	if s.kick {
		s.kick = false
		s.rb.sc.SetReadDeadline(time.Time{})
	}
	if s.rmode.Load() != readAsked {
		s.rmu.Unlock()
		return turnRead
	}
	select {
	case <-s.stop: // teardown: it ends the reading only if no goroutine runs
		s.rmu.Unlock()
		return turnEnded
	default:
	}
	s.rmode.Store(readDirect)
	s.rRunning = false
	s.rmu.Unlock()
	if fn := s.c.handoverFn(); fn != nil {
		fn()
	}
	return turnHanded
}

// endReadIdle ends the reading at teardown if no reader goroutine runs
// (handed over): one that runs ends it when its read fails.
func (s *session) endReadIdle() {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if !s.rRunning {
		s.endReadLocked(readTornDown)
	}
}

// endRead ends the reading with res (the first end counts).
func (s *session) endRead(res readResult) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.endReadLocked(res)
}

func (s *session) endReadLocked(res readResult) {
	if s.rEnded {
		return
	}
	s.rEnded = true
	s.rRes = res
	if s.inflate != nil {
		s.inflate.abort() // a message left open: stop its worker
	}
	close(s.rExit)
}
