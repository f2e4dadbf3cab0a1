package wsengine

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// fired waits up to limit for t to fire and returns when it did, as the
// clock says (zero: it did not).
func fired(t *quietTimer, limit time.Duration) time.Time {
	select {
	case at := <-t.C:
		return at
	case <-time.After(limit):
		return time.Time{}
	}
}

func TestQuietClock(t *testing.T) {
	t.Run("once, on time", func(t *testing.T) {
		start := time.Now()
		at := fired(afterQuiet(20*time.Millisecond), 5*time.Second)
		if at.IsZero() {
			t.Fatal("a 20 ms timer did not fire within 5 s")
		}
		if d := at.Sub(start); d < 20*time.Millisecond {
			t.Fatalf("a 20 ms timer fired after %v", d)
		}
	})
	t.Run("an earlier timer wakes the clock's sleep", func(t *testing.T) {
		late := afterQuiet(time.Hour)
		defer late.Stop()
		time.Sleep(10 * time.Millisecond) // the clock sleeps towards the hour
		if fired(afterQuiet(10*time.Millisecond), 5*time.Second).IsZero() {
			t.Fatal("a 10 ms timer added while the clock slept for an hour did not fire within 5 s")
		}
	})
	t.Run("in the order of their deadlines", func(t *testing.T) {
		a, b, c := afterQuiet(60*time.Millisecond), afterQuiet(20*time.Millisecond), afterQuiet(40*time.Millisecond)
		ta, tb, tc := fired(a, 5*time.Second), fired(b, 5*time.Second), fired(c, 5*time.Second)
		if ta.IsZero() || tb.IsZero() || tc.IsZero() {
			t.Fatal("a timer did not fire within 5 s")
		}
		if !tb.Before(tc) || !tc.Before(ta) {
			t.Fatalf("fired at +%v (60 ms), +0 (20 ms), +%v (40 ms)", ta.Sub(tb), tc.Sub(tb))
		}
	})
	t.Run("stopped, it does not fire", func(t *testing.T) {
		s := afterQuiet(20 * time.Millisecond)
		s.Stop()
		if !fired(s, 200*time.Millisecond).IsZero() {
			t.Fatal("a stopped timer fired")
		}
	})
	t.Run("a ticker ticks until stopped", func(t *testing.T) {
		k := tickQuiet(10 * time.Millisecond)
		for i := 0; i < 5; i++ {
			if fired(k, 5*time.Second).IsZero() {
				t.Fatalf("tick %d did not come within 5 s", i+1)
			}
		}
		k.Stop()
		fired(k, 0) // a tick sent before Stop
		if !fired(k, 100*time.Millisecond).IsZero() {
			t.Fatal("a stopped ticker ticked")
		}
	})
	t.Run("the clock sleeps in its own poll", func(t *testing.T) {
		k := tickQuiet(time.Hour)
		defer k.Stop()
		buf := make([]byte, 1<<20)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			n := runtime.Stack(buf, true)
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "quietClock).run") && strings.Contains(g, "syscall.Syscall6") {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no clock goroutine in ppoll within 5 s:\n%s", buf[:n])
			}
		}
	})
}
