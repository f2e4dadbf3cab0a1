package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/fdwait"
)

func TestSpinDefault(t *testing.T) {
	for _, c := range []struct {
		cpus int
		env  string
		want time.Duration
	}{
		{1, "", 0},
		{2, "", spinWindow},
		{8, "", spinWindow},
		{2, "0", 0},
		{1, "30", 30 * time.Microsecond},
		{4, "5000", time.Millisecond},
		{2, "fast", spinWindow},
		{2, "-5", spinWindow},
	} {
		if got := spinDefault(c.cpus, c.env); got != c.want {
			t.Errorf("spinDefault(%d, %q) = %v; want %v", c.cpus, c.env, got, c.want)
		}
	}
}

// The wait spins only while the last one ended within the spin, and blocks
// when nothing comes within the spin: a spin that found nothing, or an
// answer after a long wait, ends the spinning; one that is there at once
// starts it again.
func TestWaiterSpin(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	var buf [16]byte
	// wait writes a byte after delay (0: before the wait), waits, and
	// checks that the wait saw it and how quick it left the waiter.
	wait := func(w *waiter, delay time.Duration, quick bool, what string) {
		t.Helper()
		w.pfd = append(w.pfd[:0], fdwait.PollFD{FD: int32(fds[0]), Events: fdwait.PollIn})
		t0 := time.Now() // before the timer starts: the byte comes delay after this at the earliest
		if delay == 0 {
			syscall.Write(fds[1], []byte{1})
		} else {
			tm := time.AfterFunc(delay, func() { syscall.Write(fds[1], []byte{1}) })
			defer tm.Stop()
		}
		w.poll(true)
		polls := 1
		for w.pfd[0].Revents == 0 && time.Since(t0) < delay+5*time.Second {
			w.poll(true) // a signal (the runtime's) ended the wait early
			polls++
		}
		took := time.Since(t0)
		if w.pfd[0].Revents == 0 {
			t.Fatalf("%s: the wait returned after %v without the byte", what, took)
		}
		if delay > 0 && took < delay {
			t.Fatalf("%s: the wait returned after %v, before the byte came (%v)", what, took, delay)
		}
		if polls > 3 {
			t.Fatalf("%s: %d waits returned before the byte (a signal ends one now and then, not this many)", what, polls-1)
		}
		if polls > 1 {
			t.Logf("%s: the wait was interrupted %d times; its spinning is not checked", what, polls-1)
		} else if w.quick != quick {
			t.Fatalf("%s: quick %v after a wait of %v; want %v", what, w.quick, took, quick)
		}
		syscall.Read(fds[0], buf[:])
	}

	w := &waiter{spin: time.Second}
	wait(w, 0, true, "a byte there at once")
	wait(w, 20*time.Millisecond, true, "a byte within the spin") // the spin catches it
	w.spin = time.Millisecond
	wait(w, 50*time.Millisecond, false, "a byte after the spin") // it blocks, then waits no more
	wait(w, 20*time.Millisecond, false, "a byte after a wait that was not quick")
	w.spin = time.Second
	wait(w, 0, true, "a byte there at once again")
	w.spin = 20 * time.Millisecond
	wait(w, 30*time.Millisecond, false, "a byte soon after the spin") // the spin missed it
	wait(w, 0, true, "a byte there at once, after a miss")

	off := &waiter{}
	wait(off, 0, false, "spin off")
	wait(off, 10*time.Millisecond, false, "spin off, a late byte")
}
