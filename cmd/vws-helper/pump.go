package main

import (
	"sync"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/internal/wire"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// pumpWait is how long one hub.NextEvent call of a pump waits; calls routed
// to the pump wake it at once (hub.Wake is never lost), so this only bounds
// idle wake-ups.
const pumpWait = 30 * time.Second

// pump forwards the events of one hub context to the proxy, in order, and
// runs the calls that must not overtake them (OpActive, OpConnFree).
type pump struct {
	s   *server
	tag uint64 // the proxy's context handle
	hub uint64 // the hub context

	reqs chan func()

	mu   sync.Mutex
	tags map[uint64]uint64 // hub connection -> proxy connection tag

	connTags map[uint64]struct{} // owned by the request loop
}

func newPump(s *server, tag, id uint64) *pump {
	p := &pump{s: s, tag: tag, hub: id, reqs: make(chan func(), 64),
		tags: make(map[uint64]uint64), connTags: make(map[uint64]struct{})}
	go p.run()
	return p
}

func (p *pump) setTag(h, tag uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tag == 0 {
		delete(p.tags, h)
	} else {
		p.tags[h] = tag
	}
}

// do runs f on the pump goroutine, after the events it has already taken.
func (p *pump) do(f func()) {
	p.reqs <- f
	hub.Wake(p.hub)
}

func (p *pump) run() {
	for {
		p.runCalls()
		ev, ok, err := hub.NextEvent(p.hub, pumpWait)
		if err != nil { // context freed: answer what is left and end
			p.runCalls()
			return
		}
		if ok {
			p.send(ev)
		}
	}
}

func (p *pump) runCalls() {
	for {
		select {
		case f := <-p.reqs:
			f()
		default:
			return
		}
	}
}

// drain forwards every event queued right now.
func (p *pump) drain() {
	for {
		ev, ok, err := hub.NextEvent(p.hub, 0)
		if err != nil || !ok {
			return
		}
		p.send(ev)
	}
}

func (p *pump) send(ev hub.Event) {
	p.mu.Lock()
	tag := p.tags[ev.Conn]
	p.mu.Unlock()
	if tag == 0 {
		return
	}
	st, err := hub.State(ev.Conn)
	if err != nil {
		st = wsengine.StateClosed
	}
	clean := int64(0)
	if ev.Clean {
		clean = 1
	}
	p.s.write(&wire.Msg{Kind: wire.KindEvent, Op: uint8(ev.Type), Args: []wire.Value{
		wire.Int(int64(p.tag)), wire.Int(int64(tag)), wire.Int(int64(ev.Opcode)), wire.Int(clean),
		wire.Int(int64(ev.Code)), wire.Int(int64(ev.Attempt)), wire.Int(int64(st)), wire.Bytes(ev.Data),
	}})
}
