package hub

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// Event types of connections accepted by a server: the libwebsockets 2.4
// server callback reasons (VWS_EV_SERVER_* in include/verawebsockets.h).
// EventClosed (4) is the same on both sides.
const (
	EventServerEstablished wsengine.EventType = 0  // LWS_CALLBACK_ESTABLISHED: data = request URI
	EventServerReceive     wsengine.EventType = 6  // LWS_CALLBACK_RECEIVE
	EventServerReceivePong wsengine.EventType = 7  // LWS_CALLBACK_RECEIVE_PONG
	EventServerWriteable   wsengine.EventType = 11 // LWS_CALLBACK_SERVER_WRITEABLE
	EventHTTP              wsengine.EventType = 12 // LWS_CALLBACK_HTTP: a plain HTTP request
	EventFilter            wsengine.EventType = 20 // LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: a handshake to judge
)

func serverEventType(t wsengine.EventType) wsengine.EventType {
	switch t {
	case wsengine.EventEstablished:
		return EventServerEstablished
	case wsengine.EventReceive:
		return EventServerReceive
	case wsengine.EventReceivePong:
		return EventServerReceivePong
	case wsengine.EventWriteable:
		return EventServerWriteable
	}
	return t
}

// server is a registered WebSocket server.
type server struct {
	id  uint64
	cx  *context
	srv *wsengine.Server
}

func lookupServer(id uint64) (*server, error) {
	reg.mu.Lock()
	sv := reg.servers[id]
	reg.mu.Unlock()
	if sv == nil {
		return nil, &HandleError{Kind: "server", Handle: id}
	}
	return sv, nil
}

// NewServer creates a server in ctx that is not listening yet. Each
// connection it accepts becomes a connection of ctx, with a handle of its
// own; its first event is EventServerEstablished.
func NewServer(ctx uint64) (id uint64, err error) {
	defer recoverTo(&err)
	cx, err := lookupContext(ctx)
	if err != nil {
		return 0, err
	}
	sid := lastConn.Add(1)
	sv := &server{id: sid, cx: cx}
	sv.srv = wsengine.NewServer(func(ws *wsengine.Conn, path string) func(wsengine.Event) {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		if reg.servers[sid] != sv || reg.ctxs[ctx] != cx {
			return nil // freed meanwhile: the engine closes the connection
		}
		c := &conn{id: lastConn.Add(1), cx: cx, ws: ws, server: sid}
		ws.SetFlowControl(cx.room)
		ws.SetFailInOrder(true)
		ws.SetHandover(cx.dr.handed)
		c.setUnsettled()
		reg.conns[c.id] = c
		cx.conns[c.id] = c
		lwslog.Printf(lwslog.Client, "verawebsockets: server %d accepted conn %d: %s", sid, c.id, path)
		return c.emit
	})
	sv.srv.HandleHTTP(func(r *wsengine.Request) bool { return sv.request(ctx, r) })
	reg.mu.Lock()
	if reg.ctxs[ctx] != cx {
		reg.mu.Unlock()
		return 0, &HandleError{Kind: "context", Handle: ctx}
	}
	reg.servers[sid] = sv
	cx.servers[sid] = sv
	reg.mu.Unlock()
	return sid, nil
}

// ServerSetOption sets one server option from its text form (see the header).
func ServerSetOption(id uint64, name, value string) (err error) {
	defer recoverTo(&err)
	sv, err := lookupServer(id)
	if err != nil {
		return err
	}
	return asOption(sv.srv.SetOption(name, value))
}

// ServerListen binds the server's address and starts accepting. A failure
// to bind (address in use, bad certificate) is returned at once.
func ServerListen(id uint64) (err error) {
	defer recoverTo(&err)
	sv, err := lookupServer(id)
	if err != nil {
		return err
	}
	err = sv.srv.Listen()
	var ne *net.OpError
	if errors.As(err, &ne) {
		return &bindError{err} // the address is in use, or not ours to take
	}
	return asOption(err) // a missing or bad option: a certificate, http_root
}

// ServerPort returns the bound port, or 0 when the server is not listening.
func ServerPort(id uint64) (port int, err error) {
	defer recoverTo(&err)
	sv, err := lookupServer(id)
	if err != nil {
		return 0, err
	}
	return sv.srv.Port(), nil
}

// Broadcast queues one message to every open client of the server and
// returns how many it was queued to; it takes ownership of p.
func Broadcast(id uint64, op wsengine.OpCode, p []byte) (n int, err error) {
	defer recoverTo(&err)
	sv, err := lookupServer(id)
	if err != nil {
		return 0, err
	}
	if op != wsengine.OpText && op != wsengine.OpBinary {
		return 0, argf("hub: bad opcode %d (1 text, 2 binary)", op)
	}
	n, err = sv.srv.Broadcast(op, p)
	return n, asArg(err)
}

// ServerClients returns the handles of the server's open connections.
func ServerClients(id uint64) (ids []uint64, err error) {
	defer recoverTo(&err)
	sv, err := lookupServer(id)
	if err != nil {
		return nil, err
	}
	open := make(map[*wsengine.Conn]bool)
	for _, ws := range sv.srv.Clients() {
		if ws.State() == wsengine.StateOpen {
			open[ws] = true
		}
	}
	reg.mu.Lock()
	for cid, c := range sv.cx.conns {
		if c.server == id && open[c.ws] {
			ids = append(ids, cid)
		}
	}
	reg.mu.Unlock()
	return ids, nil
}

// ServerClose stops listening and starts the closing handshake with every
// client (code 1001 if 0); their CLOSED events follow. Closing a closed
// server is no error.
func ServerClose(id uint64, code int, reason string) (err error) {
	defer recoverTo(&err)
	sv, err := lookupServer(id)
	if err != nil {
		return err
	}
	if code == -1 { // stop listening, keep the clients
		sv.srv.StopListening()
		return nil
	}
	if code == 0 {
		code = int(wsengine.CloseGoingAway)
	}
	if !sendableCode(code) {
		return argf("hub: bad close code %d", code)
	}
	if len(reason) > maxReason {
		return argf("hub: close reason of %d bytes (at most %d)", len(reason), maxReason)
	}
	return asArg(sv.srv.Close(wsengine.StatusCode(code), reason))
}

// FreeServer stops listening, abandons the server's clients (close 1001, no
// further events) and invalidates the server handle. Its clients' handles
// stay valid until freed with FreeConn.
func FreeServer(id uint64) (err error) {
	defer recoverTo(&err)
	reg.mu.Lock()
	sv := reg.servers[id]
	if sv != nil {
		delete(reg.servers, id)
		delete(sv.cx.servers, id)
	}
	reg.mu.Unlock()
	if sv == nil {
		return &HandleError{Kind: "server", Handle: id}
	}
	sv.srv.Abandon()
	return nil
}

// ConnServer returns the handle of the server that accepted c, or 0 for a
// client connection. For an HTTP request handle (EventHTTP) it is the
// server the request came to.
func ConnServer(c uint64) (id uint64, err error) {
	defer recoverTo(&err)
	reg.mu.Lock()
	rq := reg.requests[c]
	reg.mu.Unlock()
	if rq != nil {
		return rq.server, nil
	}
	cn, err := lookupConn(c)
	if err != nil {
		return 0, err
	}
	return cn.server, nil
}

// RequestHeaders returns the headers of the other side's opening handshake,
// one "Name: value\n" line each, as sent: for a connection accepted by a
// server the client's request (Host first; the handshake's own headers left
// out), for a client connection the server's 101 of its last connect (all).
func RequestHeaders(c uint64) (text string, err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return "", err
	}
	h, ok := cn.ws.RequestHeaders()
	if !ok {
		if h, ok = cn.ws.ResponseHeaders(); !ok {
			return "", fmt.Errorf("hub: connection %d has not opened yet: %w", c, wsengine.ErrNotOpen)
		}
	}
	var b strings.Builder
	for _, kv := range h {
		b.WriteString(kv[0])
		b.WriteString(": ")
		b.WriteString(kv[1])
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// Peer returns the address of the client of a connection accepted by a server.
func Peer(c uint64) (addr string, err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return "", err
	}
	addr, ok := cn.ws.Peer()
	if !ok {
		return "", argf("hub: connection %d was not accepted by a server", c)
	}
	return addr, nil
}

// PeerCert returns the subject (RFC 2253) of the verified client certificate
// of a connection accepted by a server, or "" when the client gave none.
func PeerCert(c uint64) (subject string, err error) {
	defer recoverTo(&err)
	cn, err := lookupConn(c)
	if err != nil {
		return "", err
	}
	subject, ok := cn.ws.PeerCert()
	if !ok {
		return "", argf("hub: connection %d was not accepted by a server", c)
	}
	return subject, nil
}
