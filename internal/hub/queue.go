package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/fdwait"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// compactAt is the number of consumed slots after which the queue's backing
// slice is compacted (when they are also at least half of it).
const compactAt = 256

// The queue's high water: a connection's reader that finds this many events,
// or this many bytes of event data, pending stops reading (see context.room)
// until the consumer has taken the queue down to half of both.
const (
	highEvents = 4096
	highBytes  = 8 << 20
)

// context is one event queue and the state of its waiters and event pipe.
// Its connections are listed in the registry (conns, guarded by reg.mu).
type context struct {
	id      uint64
	conns   map[uint64]*conn   // guarded by reg.mu
	servers map[uint64]*server // guarded by reg.mu
	live    atomic.Int64       // its connections counted by Active (conn.unsettled)

	mu      sync.Mutex
	cond    sync.Cond // on mu: queue grew, Wake, timeout or free
	q       []Event   // q[head:] are pending, oldest first
	head    int
	freed   bool
	waiters int           // goroutines blocked in next
	wakeGen uint64        // incremented by wake; a waiter that sees it change returns
	wakeSet bool          // a wake that found no waiter; consumed by the next next that would wait
	pipe    fdwait.Pipe   // the event pipe, opened by EventFD
	bytes   int           // event data bytes in q[head:]
	roomCh  chan struct{} // closed when the queue is back under half the high water; nil: nobody waits
	// relay: the consumer is no application but forwards events to one (the
	// helper's pump): EventFailPending markers are handed out like events,
	// and the consumer calls FailNow. Else the queue keeps them (see next).
	relay bool
	calls uint64 // calls of next: a new one means the events taken before were handled

	dr direct // reading on the waiting thread (direct.go)
	// quiet: the consumer is reading in ReadReady and takes the events it
	// queues without polling the pipe, so they do not signal it; signaled:
	// the pipe holds its byte. An event fd handed out later is signaled then.
	quiet    int
	signaled bool
}

func newContext(id uint64, relay bool) *context {
	cx := &context{id: id, conns: make(map[uint64]*conn), servers: make(map[uint64]*server), pipe: fdwait.ClosedPipe, relay: relay}
	cx.cond.L = &cx.mu
	cx.dr.init()
	return cx
}

// push appends ev to the queue; it is dropped once the context is freed.
func (cx *context) push(ev Event) { cx.pushThen(ev, nil) }

// pushThen is push, then after() (if not nil) before any reader can see ev:
// state that must change together with the queue (see conn.emit).
func (cx *context) pushThen(ev Event, after func()) {
	cx.mu.Lock()
	defer cx.mu.Unlock()
	if cx.freed {
		return
	}
	cx.q = append(cx.q, ev)
	cx.bytes += len(ev.Data)
	if ev.src != nil {
		ev.src.queued++
	}
	if after != nil {
		after()
	}
	if len(cx.q)-cx.head == 1 && cx.quiet == 0 {
		cx.signalPipe()
	}
	if cx.waiters > 0 {
		cx.cond.Broadcast()
	}
}

// pushFail queues the EventFailPending marker ev of connection c (see
// wsengine.Conn.SetFailInOrder) when its consumer has not handled all of c's
// earlier events yet: some are queued, or the consumer's latest call took
// some and it has not called again since (it delivers one batch at a time).
// Else it fails c at once. In a relay context the marker is always queued.
func (cx *context) pushFail(c *conn, ev Event) {
	cx.mu.Lock()
	now := !cx.relay && c.queued == 0 && (c.taken == 0 || c.taken != cx.calls)
	cx.mu.Unlock()
	if now {
		c.ws.FailNow()
		return
	}
	cx.push(ev)
}

// marker reports whether ev is a marker this queue keeps from its consumer.
func (cx *context) marker(ev *Event) bool {
	return !cx.relay && ev.Type == wsengine.EventFailPending
}

// pending returns the number of queued events.
func (cx *context) pending() (int, bool) {
	cx.mu.Lock()
	defer cx.mu.Unlock()
	return len(cx.q) - cx.head, !cx.freed
}

// next pops the oldest event, waiting up to timeout for one. ok is false on
// timeout, after a wake, or when the context was freed (alive false).
//
// A call is the consumer coming back: it has handled every event it took
// before. So an EventFailPending marker at the head of the queue is popped
// here, never handed out (unless the context relays), and its connection
// fails now, behind what the handlers of its earlier events sent.
func (cx *context) next(timeout time.Duration) (ev Event, ok, alive bool) {
	cx.mu.Lock()
	defer cx.mu.Unlock()
	var (
		deadline time.Time
		timer    *time.Timer
		gen      uint64
	)
	cx.calls++
	for {
		if cx.freed {
			return Event{}, false, false
		}
		for len(cx.q) > cx.head && cx.marker(&cx.q[cx.head]) {
			// Conn.mu after cx.mu, as conn.emit's settle takes it.
			cx.pop().src.ws.FailNow()
		}
		if len(cx.q) > cx.head {
			return cx.pop(), true, true
		}
		if timer == nil {
			// First pass with an empty queue: this call would wait.
			if cx.wakeSet {
				cx.wakeSet = false
				return Event{}, false, true
			}
			if timeout <= 0 {
				return Event{}, false, true
			}
			deadline = time.Now().Add(timeout)
			gen = cx.wakeGen
			timer = time.AfterFunc(timeout, func() {
				cx.mu.Lock()
				cx.cond.Broadcast()
				cx.mu.Unlock()
			})
			defer timer.Stop()
		} else if cx.wakeGen != gen || !time.Now().Before(deadline) {
			return Event{}, false, true
		}
		cx.waiters++
		cx.cond.Wait()
		cx.waiters--
	}
}

// nextBatch pops events into dst (at most len(dst)) as next pops one: the
// first waits up to timeout; further ones are taken while their data fit in
// budget bytes together (the first is always taken; data of hold bytes or
// more count nothing when hold > 0) and up to the next EventFailPending
// marker, which the next call handles. left is the number of events still
// pending (markers included).
func (cx *context) nextBatch(timeout time.Duration, dst []Event, budget, hold int) (n, left int, alive bool) {
	ev, ok, alive := cx.next(timeout)
	if !ok {
		return 0, 0, alive
	}
	dst[0] = ev
	n, budget = 1, budget-batchCost(ev.Data, hold)
	cx.mu.Lock()
	defer cx.mu.Unlock()
	for n < len(dst) && len(cx.q) > cx.head && !cx.freed && !cx.marker(&cx.q[cx.head]) {
		k := batchCost(cx.q[cx.head].Data, hold)
		if k > budget {
			break
		}
		budget -= k
		dst[n] = cx.pop()
		n++
	}
	return n, len(cx.q) - cx.head, true
}

// batchCost is what data take of a batch's budget: nothing from hold bytes
// on (hold > 0), which the taker hands on where they are.
func batchCost(data []byte, hold int) int {
	if hold > 0 && len(data) >= hold {
		return 0
	}
	return len(data)
}

// room returns when the queue is under its high water, the context is freed
// or stop is closed. A connection's reader calls it after each message, so a
// consumer that falls behind slows the peer down (TCP flow control) instead
// of growing the queue without bound. It reports whether it waited.
func (cx *context) room(stop <-chan struct{}) bool {
	cx.mu.Lock()
	if cx.freed || (len(cx.q)-cx.head < highEvents && cx.bytes < highBytes) {
		cx.mu.Unlock()
		return false
	}
	if cx.roomCh == nil {
		cx.roomCh = make(chan struct{})
	}
	ch := cx.roomCh
	cx.mu.Unlock()
	select {
	case <-ch:
	case <-stop:
	}
	return true
}

// pop removes the oldest event; the queue must not be empty. Called with mu held.
func (cx *context) pop() Event {
	ev := cx.q[cx.head]
	cx.q[cx.head] = Event{}
	cx.head++
	cx.bytes -= len(ev.Data)
	if ev.src != nil {
		ev.src.queued--
		ev.src.taken = cx.calls
	}
	if cx.roomCh != nil && len(cx.q)-cx.head <= highEvents/2 && cx.bytes <= highBytes/2 {
		close(cx.roomCh)
		cx.roomCh = nil
	}
	switch {
	case cx.head == len(cx.q):
		cx.q = cx.q[:0]
		cx.head = 0
		cx.drainPipe()
	case cx.head >= compactAt && cx.head*2 >= len(cx.q):
		n := copy(cx.q, cx.q[cx.head:])
		clear(cx.q[n:])
		cx.q = cx.q[:n]
		cx.head = 0
	}
	return ev
}

// wake makes blocked waiters return at once; with no waiter, the next call
// of next that would wait returns at once instead.
func (cx *context) wake() bool {
	cx.mu.Lock()
	defer cx.mu.Unlock()
	if cx.freed {
		return false
	}
	cx.wakeGen++
	if cx.waiters == 0 {
		cx.wakeSet = true
	}
	cx.cond.Broadcast()
	return true
}

// eventFD returns the read end of the event pipe, creating it on first use.
func (cx *context) eventFD() (fd int, alive bool, err error) {
	cx.mu.Lock()
	defer cx.mu.Unlock()
	if cx.freed {
		return -1, false, nil
	}
	if err := cx.pipe.Open(); err != nil {
		return -1, true, err
	}
	cx.owePipe()
	return cx.pipe.R, true, nil
}

// signalPipe writes the one byte that marks the queue non-empty. Called with
// mu held when the queue goes from empty to non-empty; the pipe then holds
// exactly one byte until drainPipe, so the write never blocks.
func (cx *context) signalPipe() {
	if cx.pipe.W < 0 || cx.signaled {
		return
	}
	cx.signaled = true
	cx.pipe.Poke()
}

// owePipe signals the pipe if events are queued that did not (quiet). Called
// with mu held.
func (cx *context) owePipe() {
	if len(cx.q) > cx.head && cx.quiet == 0 {
		cx.signalPipe()
	}
}

// drainPipe empties the event pipe. Called with mu held when the queue empties.
func (cx *context) drainPipe() {
	if cx.pipe.R < 0 || !cx.signaled {
		return
	}
	cx.signaled = false
	cx.pipe.Drain()
}

// free drops the queue, closes the pipe and releases every waiter.
func (cx *context) free() {
	cx.mu.Lock()
	defer cx.mu.Unlock()
	if cx.freed {
		return
	}
	cx.freed = true
	cx.q, cx.head, cx.bytes = nil, 0, 0
	if cx.roomCh != nil {
		close(cx.roomCh)
		cx.roomCh = nil
	}
	cx.pipe.Close()
	cx.cond.Broadcast()
}
