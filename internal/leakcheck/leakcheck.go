// Package leakcheck fails a test binary whose goroutines outlive its tests.
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
//
// Every goroutine left after m.Run, other than the caller and the runtime's
// and the testing/fuzzing harness's own, is a leak. Connections wind down
// asynchronously, so it waits up to 5 s for them to end before it reports.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// harness names frames of goroutines that belong to the runtime or to the
// testing and fuzzing harness.
var harness = []string{"os/signal.signal_recv", "testing.(*F).Fuzz", "testing.runFuzzing",
	"internal/fuzz.", "testing.(*M).", "runtime.ensureSigM", "testing.tRunner"}

// Main runs the tests, then exits with 1 if they passed but goroutines leaked.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := Wait(5 * time.Second); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "%d leaked goroutines:\n\n%s\n", len(leaks), strings.Join(leaks, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// Wait waits up to d for the leaked goroutines to end and returns the stacks
// of those still running.
func Wait(d time.Duration) []string {
	deadline := time.Now().Add(d)
	leaks := Leaked()
	for len(leaks) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		leaks = Leaked()
	}
	return leaks
}

// Leaked returns the stacks of the goroutines that are neither the caller nor
// part of the runtime or the testing/fuzzing harness.
func Leaked() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || strings.TrimSpace(g) == "" { // the first one is the caller
			continue
		}
		ignore := false
		for _, s := range harness {
			if strings.Contains(g, s) {
				ignore = true
				break
			}
		}
		if !ignore {
			out = append(out, g)
		}
	}
	return out
}
