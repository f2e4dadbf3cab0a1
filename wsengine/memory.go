// Memory given back to the operating system after a burst of connections.

package wsengine

import (
	"runtime/debug"
	"sync"
	"time"
)

const (
	// giveBackPeak is the number of open connections a burst must have
	// reached before its end gives memory back.
	giveBackPeak = 64
	// giveBackDelay is how long after the count fell to a quarter of its
	// peak the memory is given back: the rest of a burst closing meanwhile
	// is covered by the same collection.
	giveBackDelay = time.Second
)

// sessions counts the open sessions of the process (clients and accepted).
// When the count falls to a quarter of its peak since the last give-back (a
// peak of at least giveBackPeak), the memory the burst used is given back
// to the operating system once (debug.FreeOSMemory, giveBackDelay later):
// the runtime would otherwise keep it until its next forced collection and
// return it slowly. No timer runs while the count is steady.
var sessions struct {
	mu      sync.Mutex
	open    int
	peak    int
	pending bool // a give-back is scheduled
}

// sessionOpened counts a session that starts.
func sessionOpened() {
	sessions.mu.Lock()
	sessions.open++
	sessions.peak = max(sessions.peak, sessions.open)
	sessions.mu.Unlock()
}

// sessionClosed counts a session that ended and schedules a give-back when
// the count fell far below its peak.
func sessionClosed() {
	sessions.mu.Lock()
	defer sessions.mu.Unlock()
	sessions.open--
	if sessions.peak >= giveBackPeak && sessions.open <= sessions.peak/4 && !sessions.pending {
		sessions.pending = true
		time.AfterFunc(giveBackDelay, giveBack)
	}
}

// giveBack returns the memory freed since the peak to the operating system.
func giveBack() {
	sessions.mu.Lock()
	sessions.pending = false
	sessions.peak = sessions.open
	free := freeOSMemory
	sessions.mu.Unlock()
	free()
}

var freeOSMemory = debug.FreeOSMemory // under sessions.mu (a test counts the calls)
