// Command vws-helper runs the verawebsockets engine out of process, for
// platforms where Go cannot build a c-shared library (linux/mips*). The C
// proxy (proxy/*.c, built into verawebsockets.so) starts it with a socketpair
// on fd 3 and speaks the protocol of internal/wire over it; every call goes to
// internal/hub, and an event pump per context forwards the hub's events.
//
// The helper exits when the socket reaches EOF (the host closed it or died) or
// when its parent process ends (the host died while a forked child of it
// still holds the socket; see watchParent). Log lines (vws_set_log_level) go to stderr, which
// it shares with the host, and to the proxy while it asks for them (logsink.go). It is static (CGO_ENABLED=0) and not meant to be
// run by hand.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/internal/wire"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// socketFD is where the proxy puts the helper's end of the socketpair.
const socketFD = 3

// abiVersion is VWS_ABI_VERSION of include/verawebsockets.h.
const abiVersion = 1

func main() {
	closeInherited()
	var st syscall.Stat_t
	if err := syscall.Fstat(socketFD, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		fmt.Fprintln(os.Stderr, "vws-helper: the verawebsockets engine helper; started by verawebsockets.so with its socket on fd 3")
		os.Exit(2)
	}
	// Terminal signals go to the whole foreground process group; the host
	// decides about its own life, and the helper follows it through EOF.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP)

	sock := os.NewFile(socketFD, "vws-socket")
	s := newServer(sock)
	s.gates = openGates()
	s.watchParent(os.Getppid())
	if err := s.write(&wire.Msg{Kind: wire.KindHello, Op: wire.Version,
		Args: []wire.Value{wire.Int(int64(os.Getpid())), wire.Int(abiVersion)}}); err != nil {
		os.Exit(1)
	}
	// serve returns only when the connection to the proxy ends: io.EOF is the clean end.
	if err := s.serve(socketFD, bufio.NewReaderSize(sock, 64<<10)); !errors.Is(err, io.EOF) {
		lwslog.Printf(lwslog.Err, "vws-helper: %v", err)
		os.Exit(1)
	}
}

// server holds the tag tables. tags are the proxy's handles (and the
// helper's own for accepted connections); the hub's handles never cross the
// socket.
type server struct {
	wmu sync.Mutex // serializes frames on w
	w   *bufio.Writer

	// Owned by the request loop (serve, loop.go), which also runs the pumps.
	ppid     int // the parent's pid, and a pidfd of it to poll (-1: none; watchParent)
	parentFD int
	ctxs     map[uint64]*pump  // ctx tag -> its pump
	servers  map[uint64]srvRef // server tag -> hub server
	// conn tags whose EventSendError the proxy has not acknowledged (OpSendAck)
	unacked      map[uint64]bool
	conns        map[uint64]connRef // conn tag -> hub connection
	reqs         map[uint64]connRef // HTTP request tag -> hub request, until OpHTTPRespond
	acceptBase   uint64             // accepted connections are tagged acceptBase+1, +2, ...
	lastAccepted uint64             // below wire.AcceptedTagSpan
	gates        *gates             // shared writes (share.go); nil: none
}

type connRef struct {
	hub uint64
	p   *pump
}

type srvRef struct {
	hub uint64
	p   *pump
}

func newServer(w io.Writer) *server {
	return &server{w: bufio.NewWriterSize(w, 64<<10), parentFD: -1, ctxs: make(map[uint64]*pump), unacked: make(map[uint64]bool),
		servers: make(map[uint64]srvRef), conns: make(map[uint64]connRef), reqs: make(map[uint64]connRef), acceptBase: wire.AcceptedTagBase}
}

func (s *server) conn(tag uint64) (connRef, bool) {
	ref, ok := s.conns[tag]
	return ref, ok
}

// pumpFor returns the pump of context tag ctag, making the hub context and
// its pump on first use.
func (s *server) pumpFor(ctag uint64) (*pump, error) {
	if p := s.ctxs[ctag]; p != nil {
		return p, nil
	}
	id := hub.NewRelayContext() // the proxy's queue orders protocol failures (OpConnFail)
	if id == 0 {
		return nil, &hub.PanicError{Value: "hub.NewRelayContext failed"}
	}
	p, err := newPump(s, ctag, id)
	if err != nil {
		hub.FreeContext(id)
		return nil, err
	}
	s.ctxs[ctag] = p
	return p, nil
}

// write sends one frame at once (with the frames buffered before it); a
// failure ends the process (the proxy is gone).
func (s *server) write(m *wire.Msg) error {
	return s.put(m, true)
}

// put writes one frame into the buffer, and with flush sends what is
// buffered. The pumps put events without flush and flush when their queue
// is empty (one write for a burst of events); every reply flushes.
func (s *server) put(m *wire.Msg, flush bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := wire.WriteMsg(s.w, m)
	if err == nil && flush {
		err = s.w.Flush()
	}
	if err != nil {
		s.fail(err)
	}
	return nil
}

// flush sends the buffered frames.
func (s *server) flush() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.w.Buffered() == 0 {
		return
	}
	if err := s.w.Flush(); err != nil {
		s.fail(err)
	}
}

// fail ends the process after a failed write (wmu held): the proxy is gone.
func (s *server) fail(err error) {
	lwslog.Printf(lwslog.Err, "vws-helper: write: %v", err)
	os.Exit(1)
}

// reply answers call m (unless it wants no reply) with err's status and results.
func (s *server) reply(m *wire.Msg, err error, results ...wire.Value) {
	if m.ID == 0 {
		return
	}
	msg := ""
	if err != nil {
		msg = message(err)
	}
	args := append([]wire.Value{wire.Int(int64(hub.Status(err))), wire.String(msg)}, results...)
	s.write(&wire.Msg{Kind: wire.KindReply, Op: m.Op, ID: m.ID, Args: args})
}

// message is err's text for the C caller without the Go package prefix, as
// the in-process variant (capi) writes it.
func message(err error) string {
	msg := err.Error()
	for _, p := range []string{"hub: ", "wsengine: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// errUnknownConn answers a tag the helper does not know (freed, or never made).
func errUnknownConn(tag uint64) error { return &hub.HandleError{Kind: "connection", Handle: tag} }

// call runs one call; panics become EInternal replies.
func (s *server) call(m *wire.Msg) {
	defer func() {
		if r := recover(); r != nil {
			lwslog.Printf(lwslog.Err, "vws-helper: recovered panic: %v\n%s", r, debug.Stack())
			s.reply(m, &hub.PanicError{Value: r})
		}
	}()
	a := m.Reader()
	op := wire.Op(m.Op)
	switch op {
	case wire.OpSetLogLevel:
		mask := a.Int()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		lwslog.SetMask(int(mask))
		s.reply(m, nil)
	case wire.OpSetLogSink:
		on := a.Int()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		s.setLogSink(on != 0)
		s.reply(m, nil)
	case wire.OpCtxFree:
		tag := a.Uint()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		if p := s.ctxs[tag]; p != nil {
			delete(s.ctxs, tag)
			for ct := range p.connTags {
				delete(s.conns, ct)
				delete(s.unacked, ct)
				s.forget(ct)
			}
			for rt, ref := range s.reqs {
				if ref.p == p {
					delete(s.reqs, rt)
				}
			}
			for st, ref := range s.servers {
				if ref.p == p {
					delete(s.servers, st)
				}
			}
			hub.FreeContext(p.hub) // frees its servers too, and closes p.efd
		}
		s.reply(m, nil)
	case wire.OpActive:
		tag := a.Uint()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		p := s.ctxs[tag]
		if p == nil { // no connection was ever made in it here
			s.reply(m, nil, wire.Int(0))
			return
		}
		// Events the pump has taken are out already. Only a 0 must also
		// come after the events still queued (the last CLOSED among them:
		// the proxy's loop ends on 0 with nothing pending); otherwise the
		// reply overtakes them, so that it never waits behind a stream that
		// goes on (issue 11).
		n, err := hub.Active(p.hub)
		if err == nil && n == 0 {
			p.drain()
		}
		s.reply(m, err, wire.Int(int64(n)))
	case wire.OpConnNew:
		ctag, tag, url := a.Uint(), a.Uint(), a.String()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		if _, dup := s.conn(tag); dup {
			s.reply(m, fmt.Errorf("vws-helper: connection tag %d in use", tag))
			return
		}
		p, err := s.pumpFor(ctag)
		if err != nil {
			s.reply(m, err)
			return
		}
		h, err := hub.NewConn(p.hub, url)
		if err == nil {
			p.setTag(h, tag)
			s.conns[tag] = connRef{hub: h, p: p}
			p.connTags[tag] = struct{}{}
		}
		s.reply(m, err)
	case wire.OpConnFree:
		tag := a.Uint()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		ref, ok := s.conns[tag]
		if ok {
			delete(s.conns, tag)
			delete(ref.p.connTags, tag)
		}
		delete(s.unacked, tag)
		s.forget(tag)
		if !ok {
			s.reply(m, errUnknownConn(tag))
			return
		}
		err := hub.FreeConn(ref.hub)
		ref.p.drain() // events it had queued still go out with its tag
		ref.p.setTag(ref.hub, 0)
		s.reply(m, err)
	case wire.OpSendAck: // no reply
		delete(s.unacked, a.Uint())
	case wire.OpAcceptBase:
		base := a.Uint()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		if base < wire.AcceptedTagBase || base > wire.AcceptedTagLimit-wire.AcceptedTagSpan {
			s.reply(m, fmt.Errorf("vws-helper: accepted tag base %d out of range", base))
			return
		}
		s.acceptBase = base
		s.reply(m, nil)
	case wire.OpServerNew:
		ctag, tag := a.Uint(), a.Uint()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		if _, dup := s.servers[tag]; dup {
			s.reply(m, fmt.Errorf("vws-helper: server tag %d in use", tag))
			return
		}
		p, err := s.pumpFor(ctag)
		if err != nil {
			s.reply(m, err)
			return
		}
		h, err := hub.NewServer(p.hub)
		if err == nil {
			p.setTag(h, tag)
			s.servers[tag] = srvRef{hub: h, p: p}
		}
		s.reply(m, err)
	case wire.OpServerFree:
		tag := a.Uint()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		ref, ok := s.servers[tag]
		if !ok {
			s.reply(m, errUnknownServer(tag))
			return
		}
		delete(s.servers, tag)
		err := hub.FreeServer(ref.hub)
		// Connections it accepted before it stopped still get their tags
		// (with this server's) before the tag is forgotten.
		ref.p.drain()
		ref.p.setTag(ref.hub, 0)
		s.reply(m, err)
	case wire.OpHTTPRespond:
		tag, status, headers, body := a.Uint(), a.Int(), a.String(), a.Bytes()
		if err := a.Err(); err != nil {
			s.reply(m, err)
			return
		}
		ref, ok := s.reqs[tag]
		delete(s.reqs, tag)
		if !ok {
			s.reply(m, &hub.HandleError{Kind: "HTTP request", Handle: tag})
			return
		}
		if body == nil {
			body = []byte{}
		}
		s.reply(m, hub.HTTPRespond(ref.hub, int(status), headers, body))
	case wire.OpServerSetOption, wire.OpServerListen, wire.OpServerPort, wire.OpBroadcast,
		wire.OpServerClients, wire.OpServerClose:
		s.serverCall(m, op, a)
	default:
		s.connCall(m, op, a)
	}
}

// errUnknownServer answers a server tag the helper does not know.
func errUnknownServer(tag uint64) error { return &hub.HandleError{Kind: "server", Handle: tag} }

// serverCall runs the calls whose first argument is a server tag.
func (s *server) serverCall(m *wire.Msg, op wire.Op, a *wire.Args) {
	tag := a.Uint()
	ref, known := s.servers[tag]
	var (
		err error
		res []wire.Value
	)
	sv := ref.hub
	switch op {
	case wire.OpServerSetOption:
		name, value := a.String(), a.String()
		if err = a.Err(); err == nil && known {
			err = hub.ServerSetOption(sv, name, value)
		}
	case wire.OpServerListen, wire.OpServerPort:
		var port int
		if err = a.Err(); err == nil && known && op == wire.OpServerListen {
			err = hub.ServerListen(sv)
		}
		if err == nil && known {
			port, err = hub.ServerPort(sv)
		}
		res = []wire.Value{wire.Int(int64(port))}
	case wire.OpBroadcast:
		var n int
		opcode, data := a.Int(), a.Bytes()
		if err = a.Err(); err == nil && known {
			if data == nil {
				data = []byte{}
			}
			n, err = hub.Broadcast(sv, wsengine.OpCode(opcode), data)
		}
		res = []wire.Value{wire.Int(int64(n))}
	case wire.OpServerClients:
		var ids []uint64
		if err = a.Err(); err == nil && known {
			ids, err = hub.ServerClients(sv)
		}
		res = []wire.Value{wire.Bytes(ref.p.packTags(ids))}
	case wire.OpServerClose:
		code, reason := a.Int(), a.String()
		if err = a.Err(); err == nil && known {
			err = hub.ServerClose(sv, int(code), reason)
		}
	}
	if err == nil && !known {
		err = errUnknownServer(tag)
	}
	s.reply(m, err, res...)
}

// connCall runs the calls whose first argument is a connection tag.
func (s *server) connCall(m *wire.Msg, op wire.Op, a *wire.Args) {
	tag := a.Uint()
	ref, known := s.conn(tag)
	var (
		err error
		res []wire.Value
	)
	c := ref.hub
	switch op {
	case wire.OpSetOption:
		name, value := a.String(), a.String()
		if err = a.Err(); err == nil {
			err = hub.SetOption(c, name, value)
		}
	case wire.OpCheck:
		if err = a.Err(); err == nil {
			err = hub.Check(c)
		}
	case wire.OpConnect:
		if err = a.Err(); err == nil {
			err = hub.Connect(c)
		}
	case wire.OpSend:
		opcode, data := a.Int(), a.Bytes()
		if err = a.Err(); err == nil {
			if data == nil {
				data = []byte{}
			}
			err = hub.Send(c, wsengine.OpCode(opcode), data)
		}
	case wire.OpPing:
		data := a.Bytes()
		if err = a.Err(); err == nil {
			err = hub.Ping(c, data)
		}
	case wire.OpClose:
		code, reason := a.Int(), a.String()
		if err = a.Err(); err == nil {
			err = hub.Close(c, int(code), reason)
		}
	case wire.OpShareRest:
		gen, rest := a.Int(), a.Bytes()
		if err = a.Err(); err == nil {
			err = hub.TakeOtherWrite(c, uint32(gen), rest)
		}
	case wire.OpState:
		var st wsengine.State
		if err = a.Err(); err == nil {
			st, err = hub.State(c)
		}
		res = []wire.Value{wire.Int(int64(st))}
	case wire.OpBuffered:
		var n int
		if err = a.Err(); err == nil {
			n, err = hub.Buffered(c)
		}
		res = []wire.Value{wire.Int(int64(n))}
	case wire.OpProtocol:
		var p string
		if err = a.Err(); err == nil {
			p, err = hub.Protocol(c)
		}
		res = []wire.Value{wire.String(p)}
	case wire.OpRequestHeaders:
		var h string
		if err = a.Err(); err == nil {
			h, err = hub.RequestHeaders(c)
		}
		res = []wire.Value{wire.String(h)}
	case wire.OpPeer:
		var p string
		if err = a.Err(); err == nil {
			p, err = hub.Peer(c)
		}
		res = []wire.Value{wire.String(p)}
	case wire.OpConnFail:
		if err = a.Err(); err == nil {
			err = hub.FailNow(c)
		}
	case wire.OpPeerCert:
		var p string
		if err = a.Err(); err == nil {
			p, err = hub.PeerCert(c)
		}
		res = []wire.Value{wire.String(p)}
	default:
		err = fmt.Errorf("vws-helper: unknown op %d", op)
	}
	if err == nil && !known {
		err = errUnknownConn(tag)
		if res != nil {
			res = []wire.Value{res[0]} // keep the reply's shape
		}
	}
	if m.ID == 0 && (op == wire.OpSend || op == wire.OpPing || op == wire.OpClose || op == wire.OpShareRest) {
		s.took(tag) // after its frame was written or queued: see share.go
	}
	if m.ID == 0 && known && err != nil && (op == wire.OpSend || op == wire.OpPing || op == wire.OpClose) {
		s.sendError(ref.p, tag, op, err)
		return
	}
	s.reply(m, err, res...)
}

// sendError reports the failure of an asynchronous (id 0) OpSend, OpPing or
// OpClose of connection tag as an EventSendError; the proxy returns it from
// the connection's next send or ping, and acknowledges it (OpSendAck). EState
// is not reported: the connection closed meanwhile and its CLOSED event
// follows. Nor is a failure while a report waits for its acknowledgement: the
// call was sent before the report was returned, which stands for it.
func (s *server) sendError(p *pump, tag uint64, op wire.Op, err error) {
	status := hub.Status(err)
	if status == hub.EState || s.unacked[tag] {
		return
	}
	s.unacked[tag] = true
	s.write(&wire.Msg{Kind: wire.KindEvent, Op: wire.EventSendError, Args: []wire.Value{
		wire.Int(int64(p.tag)), wire.Int(int64(tag)), wire.Int(int64(op)), wire.Int(0),
		wire.Int(int64(status)), wire.Int(0), wire.Int(0), wire.String(message(err)),
	}})
}
