// The Server: its options, Listen, StopListening, Close and Abandon, its
// clients (Clients, Broadcast) and the accessors of accepted connections.
// Accepting and the opening handshake are in handshake.go.

package wsengine

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

// Server defaults (see include/verawebsockets.h).
const (
	DefaultHost             = "127.0.0.1"
	DefaultMaxClients       = 100
	DefaultHandshakeTimeout = 10 * time.Second
	maxClientsLimit         = 100000
	maxRequestHeaders       = 100      // request headers kept per handshake (more: HTTP 431)
	maxRequestHeaderBytes   = 32 << 10 // their names and values together (more: HTTP 431)
)

// ErrServerClosed is returned by Broadcast when the server is not listening.
var ErrServerClosed = errors.New("wsengine: server is not listening")

// AcceptFunc is called by a Server for each connection that completed the
// opening handshake, before the connection runs: c is in StateOpen and path
// is the request URI ("/chat?room=1"). It returns the emit function for c's
// events (the first one is EventEstablished with Data = path), or nil to
// refuse the connection (it is then closed with 1001, without events).
type AcceptFunc func(c *Conn, path string) (emit func(Event))

// Server is a WebSocket server (RFC 6455, server role) on a TCP or TLS
// listener. Every accepted connection is a *Conn in the server role: it
// sends unmasked frames, requires masked ones, never dials and never
// reconnects; Send, Ping, Close, State, Buffered, Protocol and Abandon work
// as for a client. permessage-deflate is negotiated with compression = 1.
//
// All methods are safe for concurrent use and return at once (Listen binds
// synchronously). The server runs an accept goroutine while listening, and
// one goroutine per opening handshake.
type Server struct {
	accept AcceptFunc

	mu               sync.Mutex
	opts             options // given to every accepted connection
	host             string
	port             int
	certFile         string
	keyFile          string
	caFile           string // client certificates: verified against these CAs
	requireCert      bool   // a client without a valid certificate fails the TLS handshake
	secure           bool   // listening with TLS
	origins          []string
	anyOrigin        bool
	maxClients       int
	maxPerIP         int     // open connections per client address; 0 = no limit
	rate, burst      float64 // handshakes per second per address, bucket size; 0 = no limit
	handshakeTimeout time.Duration
	ln               net.Listener
	listening        bool
	closed           bool
	clients          map[*Conn]string   // accepted, not yet closed -> client address
	perIP            map[string]int     // accepted or about to be, per client address
	buckets          map[string]*bucket // handshake_rate's token buckets
	swept            time.Time          // when buckets were last swept
	handshakes       int                // in progress
	closeCode        StatusCode
	kept             bool // StopListening: no listener, the clients go on
	closeReason      string

	// Plain HTTP (http.go).
	httpRoot    string // http_root: serve files from here ("" none)
	httpHandler bool   // http_handler: hand requests to onHTTP first
	filter      bool   // filter: hand every admitted handshake to onHTTP before the 101
	// origins = "filter": a handshake the Origin policy refuses goes to the
	// filter (Request.CrossOrigin) instead of getting 403
	originsFilter bool
	maxHTTPBody   int64
	onHTTP        HTTPFunc
	requests      map[*Request]struct{} // waiting for onHTTP's answer
}

// NewServer returns a Server with default options that is not listening yet.
func NewServer(accept AcceptFunc) *Server {
	return &Server{
		accept: accept, opts: defaultOptions(), host: DefaultHost, port: -1,
		maxClients: DefaultMaxClients, handshakeTimeout: DefaultHandshakeTimeout, maxHTTPBody: DefaultMaxHTTPBody,
		clients: make(map[*Conn]string), perIP: make(map[string]int),
	}
}

// SetOption sets one server option from its text form. Server options:
// host, port (required, 0 = any free port), max_clients, handshake_timeout
// (ms), ssl_cert_filepath and ssl_private_key_filepath (PEM; both set: TLS),
// ssl_ca_filepath (PEM: verify client certificates given against these CAs)
// and require_client_cert ("1": refuse clients without one at the TLS
// handshake), origins (comma separated "scheme://host[:port]" origins
// allowed besides the same host, or "*"), max_clients_per_ip (0 = no
// limit), handshake_rate ("rate[,burst]" handshakes per second per address,
// "" = no limit), protocols (accepted subprotocols), compression (accept
// permessage-deflate), http_root (a directory whose files plain HTTP GET and
// HEAD requests get), http_handler ("1": plain HTTP requests go to the
// HTTPFunc first), max_http_body (bytes; larger request bodies get 413),
// and the per-connection options max_message_size,
// max_send_queue, ping_interval, pong_timeout, close_timeout, pong_events,
// writeable_events. It fails with ErrBusy once Listen was called and with
// *OptionError for a bad name or value.
func (s *Server) SetOption(name, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening || s.closed || s.kept {
		return ErrBusy
	}
	var err error
	switch name {
	case "host":
		if v == "" || !validHeaderValue(v) {
			return optErr(name, "want a host name or address, got %q", v)
		}
		s.host = v
	case "port":
		err = setInt(&s.port, name, v, 0, 65535)
	case "max_clients":
		err = setInt(&s.maxClients, name, v, 1, maxClientsLimit)
	case "handshake_timeout":
		var d time.Duration
		if d, err = parseMS(name, v, 1); err == nil {
			s.handshakeTimeout = d
		}
	case "ssl_cert_filepath":
		s.certFile = v
	case "ssl_private_key_filepath":
		s.keyFile = v
	case "ssl_ca_filepath":
		s.caFile = v
	case "require_client_cert":
		s.requireCert, err = parseBool(name, v)
	case "origins":
		var list []string
		var all bool
		s.originsFilter = strings.TrimSpace(v) == "filter"
		if s.originsFilter {
			s.origins, s.anyOrigin = nil, false
		} else if list, all, err = parseOrigins(v); err == nil {
			s.origins, s.anyOrigin = list, all
		}
	case "max_clients_per_ip":
		err = setInt(&s.maxPerIP, name, v, 0, maxClientsLimit)
	case "handshake_rate":
		var r, b float64
		if r, b, err = parseRate(v); err == nil {
			s.rate, s.burst = r, b
		}
	case "http_root":
		if v != "" && !validHeaderValue(v) {
			return optErr(name, "contains control bytes")
		}
		s.httpRoot = v
	case "http_handler":
		s.httpHandler, err = parseBool(name, v)
	case "filter":
		s.filter, err = parseBool(name, v)
	case "max_http_body":
		s.maxHTTPBody, err = parseInt(name, v, 0, maxSizeLimit)
		if err != nil {
			s.maxHTTPBody = DefaultMaxHTTPBody
		}
	case "protocols", "max_message_size", "max_send_queue", "ping_interval", "pong_timeout",
		"close_timeout", "pong_events", "writeable_events", "compression":
		o := s.opts // a rejected value leaves the option as it was
		if err = o.set(name, v); err == nil {
			s.opts = o
		}
	default:
		return &OptionError{Name: name, Msg: "unknown server option"}
	}
	return err
}

// Listen binds host:port (with TLS when a certificate is set) and starts
// accepting connections. Errors (a bad certificate, a port in use) are
// returned here, as *OptionError for missing or bad options and as a
// *net.OpError otherwise.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening || s.closed || s.kept {
		return ErrBusy
	}
	if s.port < 0 {
		return optErr("port", "not set (0 = any free port)")
	}
	var tlsConf *tls.Config
	switch {
	case s.certFile != "" && s.keyFile != "":
		cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return optErr("ssl_cert_filepath", "%v", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case s.certFile != "" || s.keyFile != "":
		return optErr("ssl_private_key_filepath", "ssl_cert_filepath and ssl_private_key_filepath go together")
	}
	if err := s.clientAuth(tlsConf); err != nil {
		return err
	}
	if s.httpRoot != "" {
		if fi, err := os.Stat(s.httpRoot); err != nil || !fi.IsDir() {
			return optErr("http_root", "%s is not a directory", s.httpRoot)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.host, strconv.Itoa(s.port)))
	if err != nil {
		return err
	}
	ln = spillListener{quiet(ln)}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	s.ln = ln
	s.listening = true
	s.secure = tlsConf != nil
	s.port = ln.Addr().(*net.TCPAddr).Port
	lwslog.Printf(lwslog.Notice, "wsengine: server listening on %s (tls %v)", ln.Addr(), tlsConf != nil)
	go s.acceptLoop(ln)
	return nil
}

// clientAuth sets up client certificates on cfg (nil: no TLS) from
// ssl_ca_filepath and require_client_cert.
func (s *Server) clientAuth(cfg *tls.Config) error {
	switch {
	case s.caFile == "" && s.requireCert:
		return optErr("require_client_cert", "needs ssl_ca_filepath (the CAs that sign the client certificates)")
	case s.caFile == "":
		return nil
	case cfg == nil:
		return optErr("ssl_ca_filepath", "client certificates need a TLS server (ssl_cert_filepath and ssl_private_key_filepath)")
	}
	pool, err := loadCAs("ssl_ca_filepath", s.caFile)
	if err != nil {
		return err
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if s.requireCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return nil
}

// Port returns the bound port once listening, or 0.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listening {
		return 0
	}
	return s.port
}

// Listening reports whether the server is accepting connections.
func (s *Server) Listening() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listening
}

// Clients returns the accepted connections that are not closed yet.
func (s *Server) Clients() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.clients))
	for c := range s.clients {
		out = append(out, c)
	}
	return out
}

// Broadcast queues one message to every open client and returns how many
// it was queued to. Clients whose send queue is full are skipped. It takes
// ownership of p, which is shared by every client (a server never changes a
// queued buffer). Text must be valid UTF-8.
func (s *Server) Broadcast(op OpCode, p []byte) (int, error) {
	if op != OpText && op != OpBinary {
		return 0, &OptionError{Name: "opcode", Msg: "must be 1 (text) or 2 (binary)"}
	}
	if op == OpText && !utf8.Valid(p) {
		return 0, &OptionError{Name: "text", Msg: "message is not valid UTF-8 (send it as binary)"}
	}
	s.mu.Lock()
	if !s.listening && !s.kept {
		s.mu.Unlock()
		return 0, ErrServerClosed
	}
	if int64(len(p)) > s.opts.maxMessageSize {
		s.mu.Unlock()
		return 0, ErrTooBig
	}
	clients := make([]*Conn, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range clients {
		if c.queue(op, p, false, false) == nil {
			n++
		}
	}
	return n, nil
}

// Close stops listening and starts the closing handshake with every client
// (code 1001 "going away" if 0); their EventClosed events follow. Closing a
// closed server is a no-op.
func (s *Server) Close(code StatusCode, reason string) error {
	if code == 0 {
		code = CloseGoingAway
	}
	if !ValidCloseCode(code) {
		return &OptionError{Name: "close code", Msg: "not a valid close code (1000-1003, 1007-1014, 3000-4999)"}
	}
	if len(reason) > maxCloseReasonLength || !utf8.ValidString(reason) {
		return &OptionError{Name: "close reason", Msg: "over 123 bytes or not valid UTF-8"}
	}
	for _, c := range s.stop(code, reason) {
		c.Close(code, reason)
	}
	return nil
}

// StopListening closes the listener (the port is free at once) and keeps
// the clients: they go on as before, Broadcast still reaches them, and Close
// or Abandon ends them later. Handshakes still in progress are closed (1001).
// Listening reports false from now on. A no-op unless listening.
func (s *Server) StopListening() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listening {
		return
	}
	s.ln.Close()
	s.ln = nil
	s.listening, s.kept = false, true
	s.giveUpRequests()
	lwslog.Printf(lwslog.Notice, "wsengine: server on port %d stopped listening; %d clients kept", s.port, len(s.clients))
}

// Abandon stops listening and abandons every client (close 1001 without
// waiting, no more events).
func (s *Server) Abandon() {
	for _, c := range s.stop(CloseGoingAway, "") {
		c.Abandon()
	}
}

// stop closes the listener and returns the clients to close.
func (s *Server) stop(code StatusCode, reason string) []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	if !s.closed {
		s.closeCode, s.closeReason = code, reason
	}
	s.listening, s.closed, s.kept = false, true, false
	s.giveUpRequests()
	out := make([]*Conn, 0, len(s.clients))
	for c := range s.clients {
		out = append(out, c)
	}
	return out
}

// release uncounts one client of ip. Called with s.mu held.
func (s *Server) release(ip string) {
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	if ip, ok := s.clients[c]; ok {
		delete(s.clients, c)
		s.release(ip)
	}
	s.mu.Unlock()
}

// RequestHeaders returns the request headers of an accepted connection's
// opening handshake, as the client sent them (Host first), except the
// WebSocket handshake's own (Upgrade, Connection, Sec-WebSocket-*). ok is
// false for a client connection.
func (c *Conn) RequestHeaders() (h [][2]string, ok bool) {
	return c.request, c.accepted
}

// ResponseHeaders returns the headers of the 101 a client connection got at
// its last connect, as the server sent them (all of them); ok is false for an
// accepted connection and for one that never opened.
func (c *Conn) ResponseHeaders() (h [][2]string, ok bool) {
	if c.accepted {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.response, c.response != nil
}

// Peer returns the remote address ("127.0.0.1:54321") of an accepted
// connection; ok is false for a client connection.
func (c *Conn) Peer() (addr string, ok bool) {
	return c.peer, c.accepted
}

// PeerCert returns the subject (RFC 2253, "CN=client,O=Home") of the
// certificate an accepted connection's client presented and the server
// verified (ssl_cert_filepath with ssl_ca_filepath), or "" without one; ok
// is false for a client connection. It never changes after the handshake.
func (c *Conn) PeerCert() (subject string, ok bool) {
	return c.peerCert, c.accepted
}
