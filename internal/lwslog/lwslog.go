// Package lwslog is a libwebsockets-style leveled logger: a bit mask of
// levels, lines on stderr as "[YYYY/MM/DD HH:MM:SS:mmmm] LEVEL: text".
// It is safe for concurrent use; the mask defaults to 0 (silent).
package lwslog

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Levels, as libwebsockets numbers them (lws_log_levels).
const (
	Err     = 1
	Warn    = 2
	Notice  = 4
	Info    = 8
	Debug   = 16
	Parser  = 32
	Header  = 64
	Ext     = 128
	Client  = 256
	Latency = 512
	User    = 1024
	All     = 2047
)

var names = [...]string{"ERR", "WARN", "NOTICE", "INFO", "DEBUG", "PARSER", "HEADER", "EXT", "CLIENT", "LATENCY", "USER"}

var (
	mask atomic.Int32
	mu   sync.Mutex
	out  io.Writer = os.Stderr
	sink atomic.Pointer[func(level int, msg string)]
)

// SetSink hands every line written from now on to fn as well (its level and
// its text without the time stamp and level name), after it went to the
// output; nil removes it. fn runs on the goroutine that logs: it must be quick
// and must not log.
func SetSink(fn func(level int, msg string)) {
	if fn == nil {
		sink.Store(nil)
		return
	}
	sink.Store(&fn)
}

// SetMask sets the enabled levels (bits above; other bits are ignored).
func SetMask(m int) { mask.Store(int32(m & All)) }

// Mask returns the enabled levels.
func Mask() int { return int(mask.Load()) }

// Enabled reports whether level is enabled; use it to skip costly formatting.
func Enabled(level int) bool { return int(mask.Load())&level != 0 }

// SetOutput redirects the lines (tests); nil restores stderr.
func SetOutput(w io.Writer) {
	mu.Lock()
	defer mu.Unlock()
	if w == nil {
		w = os.Stderr
	}
	out = w
}

// Printf writes one line at level if it is enabled.
func Printf(level int, format string, args ...any) {
	if !Enabled(level) {
		return
	}
	Line(level, fmt.Sprintf(format, args...))
}

// Line writes msg as one line at level if it is enabled.
func Line(level int, msg string) {
	if !Enabled(level) {
		return
	}
	name := "LOG"
	for i, n := range names {
		if level&(1<<i) != 0 {
			name = n
			break
		}
	}
	now := time.Now()
	stamp := fmt.Sprintf("[%s:%04d]", now.Format("2006/01/02 15:04:05"), now.Nanosecond()/100000)
	mu.Lock()
	fmt.Fprintf(out, "%s %s: %s\n", stamp, name, msg)
	mu.Unlock()
	if fn := sink.Load(); fn != nil {
		(*fn)(level, msg)
	}
}
