package main

import (
	"sync"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/internal/wire"
)

// logQueueLen bounds the lines waiting to go to the proxy (OpSetLogSink);
// lines beyond it, in a burst, go to stderr only.
const logQueueLen = 256

type logLine struct {
	level int
	msg   string
}

var (
	logOnce  sync.Once
	logLines chan logLine
)

// setLogSink starts or stops sending the helper's log lines to the proxy as
// KindLog frames. A goroutine of its own writes them: a line may be logged
// while s.wmu is held (a failed write).
func (s *server) setLogSink(on bool) {
	if !on {
		lwslog.SetSink(nil)
		return
	}
	logOnce.Do(func() {
		logLines = make(chan logLine, logQueueLen)
		go func() {
			for l := range logLines {
				s.write(&wire.Msg{Kind: wire.KindLog, ID: uint32(l.level), Args: []wire.Value{wire.String(l.msg)}})
			}
		}()
	})
	lwslog.SetSink(func(level int, msg string) {
		select {
		case logLines <- logLine{level, msg}:
		default:
		}
	})
}
