package main

import (
	"encoding/binary"

	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/internal/wire"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// pumpBatch and pumpBudget bound the events a pump takes from the hub at a
// time (one lock for many): at most 64, and their payloads 256 KiB past the
// first. pumpRounds bounds the batches it forwards before the loop turns to
// the proxy's calls and the other contexts again.
const (
	pumpBatch  = 64
	pumpBudget = 256 << 10
	pumpRounds = 16
)

// pump forwards the events of one hub context to the proxy, in order, on
// the request loop (serve, loop.go), which also reads the context's
// connections while it waits. It tags the connections that servers accept.
// Events are buffered and written when the loop has forwarded what was
// queued (a burst of events is one write) or with the next reply.
type pump struct {
	s   *server
	tag uint64 // the proxy's context handle
	hub uint64 // the hub context
	efd int    // the hub context's event pipe (hub.EventFD)

	// The loop's reading of the context's connections: the descriptors
	// from hub.ReadFDs, at pfd[first:] of its poll (claimed: ReadFDs was
	// called, so ReadReady must be); more: forward left events queued.
	fds     []int32
	first   int
	claimed bool
	more    bool

	tags map[uint64]uint64 // hub connection or server -> its tag (hub handles never collide)

	connTags map[uint64]struct{} // the context's connection tags (dropped by OpCtxFree)

	// The events being forwarded, and the frame of one (send): reused,
	// since put has encoded it before it returns.
	batch [pumpBatch]hub.Event
	msg   wire.Msg
	args  [9]wire.Value
	// The payloads forwarded, handed back to the engine after each batch
	// (forward, drain): one lock a batch, not one a message.
	bin wsengine.PayloadBin
}

func newPump(s *server, tag, id uint64) (*pump, error) {
	efd, err := hub.EventFD(id)
	if err != nil {
		return nil, err
	}
	return &pump{s: s, tag: tag, hub: id, efd: efd,
		tags: make(map[uint64]uint64), connTags: make(map[uint64]struct{})}, nil
}

// packTags returns the tags of hub connections ids as u64 big-endian values
// (OpServerClients); connections without a tag are left out.
func (p *pump) packTags(ids []uint64) []byte {
	out := []byte{}
	if len(ids) == 0 {
		return out
	}
	for _, h := range ids {
		if tag := p.tags[h]; tag != 0 {
			out = binary.BigEndian.AppendUint64(out, tag)
		}
	}
	return out
}

// accept tags hub connection h, just accepted by a server of this context
// (its first event, EventServerEstablished, is being forwarded), and returns
// its tag and its server's tag, or zeros when it must be dropped: its server
// was freed meanwhile, or no tag is left.
func (p *pump) accept(h uint64) (tag, srv uint64) {
	sid, err := hub.ConnServer(h)
	srv = p.tags[sid]
	if err != nil || sid == 0 || srv == 0 {
		hub.FreeConn(h)
		return 0, 0
	}
	if p.s.lastAccepted == wire.AcceptedTagSpan-1 {
		hub.FreeConn(h)
		return 0, 0
	}
	p.s.lastAccepted++
	tag = p.s.acceptBase + p.s.lastAccepted
	p.s.conns[tag] = connRef{hub: h, p: p}
	p.connTags[tag] = struct{}{}
	p.setTag(h, tag)
	return tag, srv
}

// request tags hub HTTP request h (its EventHTTP is being forwarded) from
// the accepted connections' counter and returns its tag and its server's
// tag, or zeros when its server was freed meanwhile or no tag is left (the
// engine then answers it with 503 after the handshake timeout, or at once
// when the server closed).
func (p *pump) request(h uint64) (tag, srv uint64) {
	sid, err := hub.ConnServer(h)
	srv = p.tags[sid]
	if err != nil || sid == 0 || srv == 0 {
		return 0, 0
	}
	if p.s.lastAccepted == wire.AcceptedTagSpan-1 {
		return 0, 0
	}
	p.s.lastAccepted++
	tag = p.s.acceptBase + p.s.lastAccepted
	p.s.reqs[tag] = connRef{hub: h, p: p}
	return tag, srv
}

// setTag maps hub connection or server h to the tag the proxy knows it by (0: forget it).
func (p *pump) setTag(h, tag uint64) {
	if tag == 0 {
		delete(p.tags, h)
	} else {
		p.tags[h] = tag
	}
}

// forward forwards the events queued now, up to pumpRounds batches; more:
// some are left.
func (p *pump) forward() (more bool) {
	for range pumpRounds {
		_, left, err := p.take(pumpBatch)
		if err != nil || left == 0 {
			return false
		}
	}
	return true
}

// drain forwards the events queued right now, not those that arrive
// meanwhile: under a stream that goes on it would never end.
func (p *pump) drain() {
	n, err := hub.Pending(p.hub)
	for err == nil && n > 0 {
		var k int
		if k, _, err = p.take(min(n, pumpBatch)); k == 0 {
			return
		}
		n -= k
	}
}

// take forwards one batch of queued events (hub.NextEvents: up to most,
// which is at most pumpBatch, within pumpBudget) and hands their payloads
// back; left: the events still queued.
func (p *pump) take(most int) (n, left int, err error) {
	n, left, err = hub.NextEvents(p.hub, 0, p.batch[:most], pumpBudget, 0)
	for i := range n {
		p.send(p.batch[i])
		p.batch[i] = hub.Event{} // its payload is in p.bin now
	}
	p.bin.Flush()
	return n, left, err
}

func (p *pump) send(ev hub.Event) {
	tag := p.tags[ev.Conn]
	code := int64(ev.Code)
	if tag == 0 {
		var srv uint64
		switch ev.Type {
		case hub.EventServerEstablished:
			tag, srv = p.accept(ev.Conn)
		case hub.EventHTTP, hub.EventFilter:
			tag, srv = p.request(ev.Conn)
		}
		if tag == 0 {
			return // freed by the proxy
		}
		code = int64(srv) // SERVER_ESTABLISHED, HTTP: code = the server's tag
	}
	st, err := hub.State(ev.Conn)
	if err != nil {
		st = wsengine.StateClosed
	}
	if ev.Type == wsengine.EventClosed || ev.Type == wsengine.EventConnectionError {
		// The proxy keeps each connection's state from its events: closed
		// exactly when this event ends it for good (a state read now may
		// be that of a later run, or not yet closed).
		if ev.Final {
			st = wsengine.StateClosed
		} else if st == wsengine.StateClosed {
			st = wsengine.StateConnecting
		}
	}
	clean := int64(0)
	if ev.Clean {
		clean = 1
	}
	op := uint8(ev.Type)
	if ev.Type == wsengine.EventFailPending {
		op = wire.EventFailPending // the proxy answers OpConnFail once the events before it were handled
	}
	args := append(p.args[:0],
		wire.Int(int64(p.tag)), wire.Int(int64(tag)), wire.Int(int64(ev.Opcode)), wire.Int(clean),
		wire.Int(code), wire.Int(int64(ev.Attempt)), wire.Int(int64(st)), wire.Bytes(ev.Data))
	if ev.Type == wsengine.EventEstablished { // also hub.EventServerEstablished (0)
		// The negotiated subprotocol: the proxy answers vws_conn_protocol with it.
		proto, _ := hub.Protocol(ev.Conn)
		args = append(args, wire.String(proto))
	}
	p.msg = wire.Msg{Kind: wire.KindEvent, Op: op, Args: args}
	p.s.put(&p.msg, false) // flushed by the loop once it has forwarded what was queued, or by a reply
	clear(p.args[:])
	if (ev.Type == wsengine.EventEstablished || ev.Type == hub.EventServerEstablished) && p.s.gates != nil {
		p.s.share(p, ev.Conn, tag) // right behind its ESTABLISHED
	}
	hub.RecycleTo(&p.bin, &ev) // put copied the payload
}
