// Memory given back to the operating system after a burst of connections.

package wsengine

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

const (
	// giveBackPeak is the least change of the number of open connections
	// (a burst opening them, or closing from a peak) that gives memory back.
	giveBackPeak = 64
	// giveBackDelay is how long the count must be still before the memory
	// is given back: the rest of a burst is covered by the same collection.
	giveBackDelay = time.Second
	// giveBackMaxWait bounds the postponing under a steady churn.
	giveBackMaxWait = 5 * time.Second
)

// sessions counts the open sessions of the process (clients and accepted).
// When the count has grown by at least giveBackPeak and a quarter since the
// last give-back (a burst of opening handshakes leaves their garbage), or
// has fallen to a quarter of a peak of at least giveBackPeak (a burst
// closed), the memory is given back to the operating system once the count
// has been still for giveBackDelay (freeOSMemory: two collections, which
// also empty the buffer pools and shrink idle goroutine stacks, then every
// free page returned). The
// runtime would otherwise keep it until its next forced collection (2 min)
// and return it slowly. No timer runs while the count is steady.
var sessions struct {
	mu      sync.Mutex
	open    int
	peak    int         // the most open since the last give-back
	settled int         // open at the last give-back
	timer   *time.Timer // the pending give-back, nil if none
	since   time.Time   // when it was scheduled
}

// sessionOpened counts a session that starts.
func sessionOpened() {
	sessions.mu.Lock()
	sessions.open++
	sessions.peak = max(sessions.peak, sessions.open)
	sessionsChanged()
	sessions.mu.Unlock()
}

// sessionClosed counts a session that ended.
func sessionClosed() {
	sessions.mu.Lock()
	sessions.open--
	sessionsChanged()
	sessions.mu.Unlock()
}

// sessionsChanged schedules a give-back when the count changed that much,
// or postpones the pending one (up to giveBackMaxWait); sessions.mu is held.
func sessionsChanged() {
	s := &sessions
	if s.timer != nil {
		if time.Since(s.since) < giveBackMaxWait {
			s.timer.Reset(giveBackDelay)
		}
		return
	}
	grew := s.open >= s.settled+max(giveBackPeak, s.settled/4)
	shrank := s.peak >= giveBackPeak && s.open <= s.peak/4
	if grew || shrank {
		s.since = time.Now()
		s.timer = time.AfterFunc(giveBackDelay, giveBack)
	}
}

// giveBack returns the memory the runtime holds but does not use to the
// operating system.
func giveBack() {
	sessions.mu.Lock()
	sessions.timer = nil
	sessions.peak = sessions.open
	sessions.settled = sessions.open
	free := freeOSMemory
	sessions.mu.Unlock()
	free()
}

// freeOSMemory collects twice, then returns the free pages: what the pools
// (read and write buffers, compressors) held at the first collection is
// moved to their victim caches and freed only by the second. Under
// sessions.mu (a test counts the calls).
var freeOSMemory = func() {
	runtime.GC()
	debug.FreeOSMemory()
}
