// Reading on the waiting thread: while the consumer of a context waits for
// its events (between ReadFDs and ReadReady), it reads the context's open
// connections itself (wsengine.Conn.ClaimRead, ReadNow) instead of their
// reader goroutines. When it has not waited for directGrace, the reading
// goes back to the engine, which keeps the connections alive meanwhile.

package hub

import (
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/fdwait"
)

// directGrace is how long the reading stays the consumer's while it is away
// (running handlers) before it goes back to the engine (nanoseconds; a
// variable for the tests).
var directGrace atomic.Int64

func init() { directGrace.Store(int64(20 * time.Millisecond)) }

const (
	// directBudget is about the most ReadReady reads from one connection.
	directBudget = 256 << 10
)

// PollIn and the error bits of poll(2)'s revents.
const (
	PollIn  = fdwait.PollIn
	pollBad = 0x8 | 0x10 | 0x20 // POLLERR, POLLHUP, POLLNVAL
)

// direct is a context's state of reading on the waiting thread.
type direct struct {
	mu      sync.Mutex
	dirty   atomic.Bool // connections may have opened, closed or been handed over
	polled  []*conn     // the connections of fds, in their order (the hand-over pipe last, if asked)
	fds     []int32
	claimed []*conn // handed over or asked
	asked   bool    // some connection is asked: the pipe is in fds
	more    bool    // the last ReadReady left input to read at once
	again   []int   // the indexes in polled of those connections
	spare   []int   // the previous again, reused by the next ReadReady
	gen     uint64  // incremented by each rebuild and releaseAll (conn.drGen)
	inWait  bool    // between ReadFDs and ReadReady
	left    time.Time
	watched bool        // in watcher.list (guarded by watcher.mu, as watches)
	watches uint64      // calls of watcher.watch
	handp   fdwait.Pipe // readable once a connection asked has handed over (opened when needed)
	ep      epollSet    // the descriptors of many polled connections (then fds holds its own)
	reads   uint64      // incremented by each ReadReady (conn.drSeen)
}

func (d *direct) init() {
	d.handp = fdwait.ClosedPipe
	d.ep.fd = -1
	d.dirty.Store(true)
}

// handed is a connection's hand-over callback (on its reader goroutine).
func (d *direct) handed() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dirty.Store(true)
	if d.handp.W >= 0 {
		d.handp.Poke()
	}
}

// ReadFDs claims the reading of the open connections of ctx for the caller
// and returns the descriptors to poll for input (appended to dst[:0]; a pipe
// that tells of a connection handed over is among them), and now: input or
// events are waiting already. Each call is followed by one ReadReady.
func ReadFDs(ctx uint64, dst []int32) (fds []int32, now bool, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return dst[:0], false, err
	}
	d := &cx.dr
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inWait = true
	cx.mu.Lock()
	cx.owePipe()
	queued := len(cx.q) > cx.head
	cx.mu.Unlock()
	if d.dirty.Swap(false) {
		if err := d.rebuild(cx); err != nil {
			return dst[:0], false, err
		}
	}
	return append(dst[:0], d.fds...), d.more || queued, nil
}

// rebuild claims every open connection of cx and lists what to poll.
func (d *direct) rebuild(cx *context) error {
	reg.mu.Lock()
	conns := make([]*conn, 0, len(cx.conns))
	for _, c := range cx.conns {
		conns = append(conns, c)
	}
	reg.mu.Unlock()
	d.polled, d.fds, d.claimed, d.asked, d.again, d.more = d.polled[:0], d.fds[:0], d.claimed[:0], false, d.again[:0], false
	d.gen++
	for _, c := range conns {
		fd, ok, asked := c.ws.ClaimRead()
		switch {
		case ok:
			if c.drGen != d.gen-1 {
				// Newly handed over: what its reader goroutine left
				// buffered (TLS records read with the last ones) does not
				// show on the descriptor. Read it at once.
				d.again = append(d.again, len(d.polled))
				d.more = true
			}
			c.drGen, c.drIdx = d.gen, len(d.polled)
			d.polled = append(d.polled, c)
			d.fds = append(d.fds, int32(fd))
		case asked:
			d.asked = true
		default:
			continue
		}
		d.claimed = append(d.claimed, c)
	}
	if d.ep.use(d.polled, d.fds, d.gen) {
		d.fds = append(d.fds[:0], int32(d.ep.fd))
	}
	if d.asked {
		if err := d.handp.Open(); err != nil {
			return err
		}
		d.fds = append(d.fds, int32(d.handp.R))
	}
	return nil
}

// ReadReady reads the connections whose descriptors (as ReadFDs returned
// them) have revents set: their events are queued. It returns the number of
// events pending then. The caller stops waiting, unless again and nothing is
// pending: then it calls ReadFDs at once (so the watcher is not woken for
// the end of each slice of an idle wait).
func ReadReady(ctx uint64, revents []int16, again bool) (pending int, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return 0, err
	}
	d := &cx.dr
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.inWait {
		n, _ := cx.pending()
		return n, nil
	}
	prev := d.again // read below; this call fills the other slice
	d.more, d.again, d.spare = false, d.spare[:0], prev
	cx.mu.Lock()
	cx.quiet++ // the caller takes what it reads without polling the pipe
	cx.mu.Unlock()
	defer func() {
		cx.mu.Lock()
		cx.quiet--
		cx.mu.Unlock()
	}()
	d.reads++
	conns := len(d.polled) // the hand-over pipe's index in fds
	if d.ep.on {
		conns = 1
	}
	for i, ev := range revents[:min(len(revents), len(d.fds))] {
		switch {
		case ev == 0:
		case i == conns:
			d.handp.Drain()
			d.dirty.Store(true)
		case d.ep.on:
			d.readPolled()
		default:
			d.read(i, ev)
		}
	}
	for _, i := range prev { // input left in user space (TLS) or over the budget
		// Not read above: no event, or not in revents at all (a call that
		// only ends the wait passes none); dropped, it would wait for new bytes.
		if d.polled[i].drSeen != d.reads {
			d.read(i, 0)
		}
	}
	n, _ := cx.pending()
	if again && !d.more && n == 0 {
		return 0, nil // still waiting
	}
	d.inWait = false
	d.left = time.Now()
	if len(d.claimed) > 0 {
		watcher.watch(d)
	}
	return n, nil
}

// read reads polled[i] (poll's revents ev).
func (d *direct) read(i int, ev int16) {
	d.polled[i].drSeen = d.reads
	if d.polled[i].ws.ReadNow(directBudget) {
		d.more = true
		d.again = append(d.again, i)
	} else if ev&pollBad != 0 {
		d.dirty.Store(true)
	}
}

// check gives the reading back to the engine once the consumer has been
// away for directGrace. watch: d still has claims; away: its consumer is not
// waiting (so the watcher must look again).
func (d *direct) check(now time.Time) (watch, away bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case len(d.claimed) == 0:
		return false, false
	case d.inWait:
		return true, false
	case now.Sub(d.left) < time.Duration(directGrace.Load()):
		return true, true
	}
	d.releaseAll()
	return false, false
}

// watcher gives the reading back for every context whose consumer has been
// away for directGrace. It sleeps in nanosleep, not on a runtime timer: while
// a runtime timer is pending, an idle Go thread waits in the runtime's epoll,
// which every packet on a connection read by the consumer then wakes (a
// thread switch a message). While every consumer waits, it parks until one
// leaves its wait, so an idle process has no wakeup from it.
type watchT struct {
	mu      sync.Mutex
	list    []*direct // guarded by mu, as direct.watched
	started bool
	parked  bool
	left    bool // a consumer left its wait since the last scan began
	wake    chan struct{}
}

var watcher = &watchT{wake: make(chan struct{}, 1)}

// watch tells the watcher that d's consumer left its wait with claims
// (called by ReadReady, d.mu held).
func (w *watchT) watch(d *direct) {
	w.mu.Lock()
	d.watches++
	if !d.watched {
		d.watched = true
		w.list = append(w.list, d)
	}
	w.left = true
	if !w.started {
		w.started = true
		go w.run()
	}
	wake := w.parked
	w.parked = false
	w.mu.Unlock()
	if wake {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *watchT) run() {
	for {
		ts := syscall.NsecToTimespec(directGrace.Load())
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
		w.mu.Lock()
		list := slices.Clone(w.list)
		seen := make([]uint64, len(list))
		for i, d := range list {
			seen[i] = d.watches
		}
		w.left = false
		w.mu.Unlock()
		now, away := time.Now(), false
		drop := make([]bool, len(list))
		for i, d := range list {
			watch, out := d.check(now)
			away = away || out
			drop[i] = !watch
		}
		w.mu.Lock()
		for i, d := range list {
			// Dropped unless watched again since the scan began.
			if drop[i] && d.watches == seen[i] {
				d.watched = false
				w.list = slices.DeleteFunc(w.list, func(x *direct) bool { return x == d })
			}
		}
		if len(w.list) == 0 {
			w.started = false // the next watch starts another
			w.mu.Unlock()
			return
		}
		park := !away && !w.left
		w.parked = park
		w.mu.Unlock()
		if park {
			<-w.wake
		}
	}
}

// releaseAll gives every claimed connection back to the engine.
func (d *direct) releaseAll() {
	d.gen++
	for _, c := range d.claimed {
		c.ws.ReleaseRead()
	}
	clear(d.claimed)
	clear(d.polled)
	d.polled, d.fds, d.claimed, d.asked, d.more, d.again = d.polled[:0], d.fds[:0], d.claimed[:0], false, false, d.again[:0]
	d.dirty.Store(true)
}

// free releases the connections and closes the pipe (the context is freed).
func (d *direct) free() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.releaseAll()
	watcher.mu.Lock()
	if d.watched {
		d.watched = false
		watcher.list = slices.DeleteFunc(watcher.list, func(x *direct) bool { return x == d })
	}
	wake := watcher.parked && len(watcher.list) == 0 // to end
	watcher.parked = !wake && watcher.parked
	watcher.mu.Unlock()
	if wake {
		select {
		case watcher.wake <- struct{}{}:
		default:
		}
	}
	d.handp.Close()
	d.ep.close()
}
