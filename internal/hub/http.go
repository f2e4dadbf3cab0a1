package hub

import (
	"strings"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// request is a plain HTTP request of a server (EventHTTP) waiting for
// HTTPRespond. Its handle is forgotten once it is answered or the engine
// gave up on it (the handshake timeout, the server closed).
type request struct {
	server uint64
	r      *wsengine.Request
}

// request queues EventHTTP (EventFilter for a handshake) for r in the server's context: conn = a new
// request handle, data = the request as text (see httpEventData). It
// returns false when the server or its context was freed.
func (sv *server) request(ctx uint64, r *wsengine.Request) bool {
	reg.mu.Lock()
	if reg.servers[sv.id] != sv || reg.ctxs[ctx] != sv.cx {
		reg.mu.Unlock()
		return false
	}
	id := lastConn.Add(1)
	reg.requests[id] = &request{server: sv.id, r: r}
	reg.mu.Unlock()
	go func() {
		<-r.Done()
		reg.mu.Lock()
		delete(reg.requests, id)
		reg.mu.Unlock()
	}()
	typ := EventHTTP
	if r.Upgrade {
		typ = EventFilter
	}
	lwslog.Printf(lwslog.Info, "verawebsockets: server %d: HTTP request %d (event %d): %s %s", sv.id, id, typ, r.Method, r.Target)
	ev := Event{Conn: id, Event: wsengine.Event{Type: typ, Data: httpEventData(r)}}
	if r.CrossOrigin {
		ev.Opcode = 403 // EventFilter: the Origin policy would refuse it
	}
	sv.cx.push(ev)
	return true
}

// httpEventData is the data of EventHTTP: "METHOD TARGET PEER\n", the
// request headers as "Name: value\n" lines as sent, an empty line, the body.
func httpEventData(r *wsengine.Request) []byte {
	var b strings.Builder
	b.Grow(64 + len(r.Body))
	b.WriteString(r.Method + " " + r.Target + " " + r.Peer + "\n")
	for _, h := range r.Header {
		b.WriteString(h[0] + ": " + h[1] + "\n")
	}
	b.WriteByte('\n')
	b.Write(r.Body)
	return []byte(b.String())
}

// HTTPRespond answers HTTP request id (EventHTTP) with status (0: not
// handled, the server serves it from http_root or answers 404), header
// lines ("Name: value", separated by LF or CRLF) and body. The handle is
// invalid afterwards. A request the server gave up on (503 sent) is an
// EState error.
func HTTPRespond(id uint64, status int, headers string, body []byte) (err error) {
	defer recoverTo(&err)
	reg.mu.Lock()
	rq := reg.requests[id]
	delete(reg.requests, id)
	reg.mu.Unlock()
	if rq == nil {
		return argf("hub: unknown HTTP request handle %d (answered already?)", id)
	}
	var hdr [][2]string
	for _, line := range strings.Split(headers, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			rq.r.Respond(wsengine.Response{Status: 500})
			return argf("hub: header line %q is not \"Name: value\"", line)
		}
		hdr = append(hdr, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	err = rq.r.Respond(wsengine.Response{Status: status, Header: hdr, Body: body})
	if err == wsengine.ErrRequestDone {
		return err
	}
	if err != nil {
		rq.r.Respond(wsengine.Response{Status: 500})
		return asArg(err)
	}
	return nil
}
