// The server's accepting side: the accept loop and each connection's
// opening handshake (TLS, plain HTTP or upgrade, the Upgrader callbacks,
// admit, the handshake filter, the held 101) up to handing the connection
// over to its session.

package wsengine

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

// acceptLoop accepts connections on ln while it is s's listener and runs
// the opening handshake of each on its own goroutine.
func (s *Server) acceptLoop(ln net.Listener) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		s.mu.Lock()
		live := s.listening && s.ln == ln
		if err == nil && live {
			s.handshakes++
		}
		s.mu.Unlock()
		switch {
		case !live:
			if nc != nil {
				nc.Close()
			}
			return
		case err != nil:
			// Still listening: a transient failure (EMFILE, ...). Back off as
			// net/http does.
			lwslog.Printf(lwslog.Warn, "wsengine: server %s: accept: %v", ln.Addr(), err)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go s.handshake(nc)
	}
}

// handshake runs the opening handshake on nc and hands the connection over.
func (s *Server) handshake(nc net.Conn) {
	s.mu.Lock()
	opts, timeout, maxClients, requireCert := s.opts, s.handshakeTimeout, s.maxClients, s.caFile != ""
	filter := s.filter && s.onHTTP != nil
	onFilter := s.onHTTP
	s.mu.Unlock()
	ip := addrIP(nc.RemoteAddr())
	reserved := false // counted in perIP by OnBeforeUpgrade
	fail := func() {
		nc.Close()
		s.mu.Lock()
		s.handshakes--
		if reserved {
			s.release(ip)
		}
		s.mu.Unlock()
	}
	deadline := time.Now().Add(timeout)
	nc.SetDeadline(deadline)
	peerCert := ""
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			level := lwslog.Info
			if requireCert {
				level = lwslog.Notice // maybe a refused client certificate
			}
			lwslog.Printf(level, "wsengine: server: TLS handshake with %s failed: %v", nc.RemoteAddr(), err)
			fail()
			return
		}
		if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
			peerCert = cs.PeerCertificates[0].Subject.String() // verified: only with ssl_ca_filepath
		}
	}
	// The request's head decides: a WebSocket upgrade, or plain HTTP (served
	// when http_root or http_handler is set; else refused by the upgrader).
	br := bufio.NewReaderSize(nc, maxRequestLine)
	head, upgrade, status := readHead(br)
	s.mu.Lock()
	plain := !upgrade && (s.httpRoot != "" || s.httpHandler)
	s.mu.Unlock()
	switch {
	case status != 0:
		(&httpWriter{nc: nc}).status(status, "request head too large")
		fail()
		return
	case head == nil:
		fail()
		return
	case plain:
		s.mu.Lock()
		s.handshakes--
		s.mu.Unlock()
		s.serveHTTP(nc, head, br, ip, timeout)
		return
	}
	var (
		path         string
		headers      [][2]string
		hbytes       int
		host, origin string
		deflate      *wsflate.Parameters // the permessage-deflate response, if accepted
		refusal      *Response           // the filter's refusal
		crossOrigin  bool                // the Origin policy refuses it (origins = "filter": the filter decides)
	)
	addHeader := func(k, v []byte) error {
		hbytes += len(k) + len(v)
		if len(headers) >= maxRequestHeaders || hbytes > maxRequestHeaderBytes {
			return ws.RejectConnectionError(ws.RejectionStatus(431), // Request Header Fields Too Large
				ws.RejectionReason("too many request headers"))
		}
		headers = append(headers, [2]string{string(k), string(v)})
		return nil
	}
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			path = string(uri)
			return nil
		},
		OnHost: func(h []byte) error {
			host = string(h)
			return addHeader([]byte("Host"), h)
		},
		OnHeader: func(k, v []byte) error {
			if origin == "" && strings.EqualFold(string(k), "Origin") {
				origin = string(v)
				if origin == "" {
					origin = "null" // an empty Origin is no origin we know
				}
			}
			return addHeader(k, v)
		},
		Negotiate: func(opt httphead.Option) (httphead.Option, error) {
			if !opts.compression || deflate != nil {
				return httphead.Option{}, nil // declined (only one permessage-deflate)
			}
			p, ok := acceptDeflate(opt)
			if ok {
				deflate = &p
				return p.Option(), nil
			}
			return httphead.Option{}, nil
		},
		Protocol: func(p []byte) bool {
			for _, want := range opts.protocols {
				if string(p) == want {
					return true
				}
			}
			return false
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			status, reason := s.admit(ip, host, origin, maxClients, &crossOrigin)
			if status != 0 {
				lwslog.Printf(lwslog.Notice, "wsengine: server: refused %s (HTTP %d): %s", nc.RemoteAddr(), status, reason)
				rej := []ws.RejectOption{ws.RejectionStatus(status), ws.RejectionReason(reason)}
				if status == 429 {
					rej = append(rej, ws.RejectionHeader(ws.HandshakeHeaderString("Retry-After: 1\r\n")))
				}
				return nil, ws.RejectConnectionError(rej...)
			}
			reserved = true
			if filter {
				return s.filterHandshake(onFilter, path, head, nc, peerCert, crossOrigin, deadline, &refusal)
			}
			return ws.HandshakeHeaderString(""), nil
		},
	}
	// The answer (101 or a refusal) is held in hw; the 101 goes out when the
	// client is one of s.clients with its session (runSession): a client that
	// has read its 101 is in every broadcast made after that.
	hw := bufio.NewWriterSize(nc, 4096)
	hs, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{io.MultiReader(bytes.NewReader(head), br), hw})
	if err != nil {
		if refusal != nil { // the filter's own answer instead of the upgrader's
			hw.Reset(nc)
			nc.SetWriteDeadline(time.Now().Add(timeout)) // the handshake's may have passed waiting for it
			(&httpWriter{nc: nc}).write(refusal.Status, refusal.Header, refusal.Body, false)
		} else {
			hw.Flush()
		}
		lwslog.Printf(lwslog.Info, "wsengine: server: handshake with %s failed: %v", nc.RemoteAddr(), err)
		fail()
		return
	}
	nc.SetReadDeadline(time.Time{}) // the write deadline bounds the 101 (runSession clears it)

	c := &Conn{
		target:   &target{u: &url.URL{Scheme: "ws", Host: nc.RemoteAddr().String()}},
		uri:      path,
		request:  headers,
		peer:     nc.RemoteAddr().String(),
		peerCert: peerCert,
		opts:     opts,
		kick:     make(chan struct{}, 1),
		accepted: true,
		checked:  true,
		protocol: hs.Protocol,
		running:  true,
		runDone:  make(chan struct{}),
	}
	c.setState(StateOpen) // not yet shared: mu need not be held
	c.emitFn = func(Event) {}
	s.mu.Lock()
	s.handshakes--
	if !s.listening {
		s.release(ip)
		s.mu.Unlock()
		ws.WriteFrame(hw, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "")))
		hw.Flush()
		nc.Close()
		return
	}
	s.clients[c] = ip // perIP counts it since OnBeforeUpgrade
	s.mu.Unlock()

	emit := s.accept(c, path)
	if emit == nil {
		s.forget(c)
		ws.WriteFrame(hw, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "")))
		hw.Flush()
		nc.Close()
		return
	}
	c.emitMu.Lock()
	c.emitFn = emit
	c.emitMu.Unlock()
	var early []byte
	if n := br.Buffered(); n > 0 { // frames the client sent right behind its request
		early, _ = br.Peek(n)
		early = bytes.Clone(early)
	}
	go c.serveAccepted(s, &established{nc: nc, early: early, protocol: hs.Protocol, deflate: deflate, answer: hw})
}

// errFiltered ends an upgrade the filter refused (its answer is written instead).
var errFiltered = errors.New("refused by the handshake filter")

// filterHandshake hands an admitted handshake to the filter (f, as a Request
// with Upgrade set: its target as the upgrader read it, the headers of its
// head, the verified client certificate's subject as Body) and waits for the
// answer until deadline (the handshake timeout): 0 goes on with the 101, a
// status refuses with it (*refusal is set), no answer in time refuses with 503.
func (s *Server) filterHandshake(f HTTPFunc, target string, head []byte, nc net.Conn, peerCert string, crossOrigin bool,
	deadline time.Time, refusal **Response) (ws.HandshakeHeader, error) {
	r := &Request{Method: "GET" /* the upgrader takes GET only */, Target: target, Header: rawHeaders(head),
		Body: []byte(peerCert), Peer: nc.RemoteAddr().String(), Upgrade: true, CrossOrigin: crossOrigin,
		done: make(chan struct{})}
	resp := s.ask(r, f, deadline)
	switch {
	case resp == nil:
		lwslog.Printf(lwslog.Notice, "wsengine: server: refused %s (HTTP 503): no answer from the handshake filter in time", nc.RemoteAddr())
		*refusal = &Response{Status: 503, Header: [][2]string{{"Content-Type", "text/plain; charset=utf-8"}},
			Body: []byte("no answer in time\n")}
		return nil, errFiltered
	case resp.Status != 0:
		lwslog.Printf(lwslog.Notice, "wsengine: server: refused %s (HTTP %d): by the handshake filter", nc.RemoteAddr(), resp.Status)
		*refusal = resp
		return nil, errFiltered
	}
	return ws.HandshakeHeaderString(""), nil
}

// admit decides, before the 101, whether a complete handshake from ip may
// go on: it returns 0, having counted the client in perIP, or the refusal's
// HTTP status and reason. The checks, in order: handshake_rate (429), the
// Origin policy (403), max_clients and max_clients_per_ip (503).
func (s *Server) admit(ip, host, origin string, maxClients int, crossOrigin *bool) (status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*crossOrigin = !originAllowed(origin, host, s.secure, s.origins, s.anyOrigin)
	switch {
	case !s.takeToken(ip, time.Now()):
		return 429, fmt.Sprintf("too many handshakes from %s (handshake_rate %g/s, burst %g)", ip, s.rate, s.burst)
	case *crossOrigin && !(s.originsFilter && s.filter && s.onHTTP != nil):
		return 403, fmt.Sprintf("origin %q is not allowed for host %q (see the origins option)", origin, host)
	case len(s.clients) >= maxClients:
		return 503, fmt.Sprintf("too many clients (max_clients %d)", maxClients)
	case s.maxPerIP > 0 && s.perIP[ip] >= s.maxPerIP:
		return 503, fmt.Sprintf("too many clients from %s (max_clients_per_ip %d)", ip, s.maxPerIP)
	}
	s.perIP[ip]++
	return 0, ""
}

// acceptDeflate answers one permessage-deflate offer (RFC 7692 section 7.1).
// Offers with unknown, invalid or repeated parameters are declined (section
// 7.1). The server never takes its compression context over (each message
// gets a fresh window) and says so (server_no_context_takeover); it keeps
// the client's client_no_context_takeover when offered. An offer's
// server_max_window_bits is accepted by answering it with the same value
// (section 7.1.2.1); below 15 the server compresses without back-references
// (deflater), which fits any window. A client window limit in the offer
// needs no answer (any window up to 2^15 inflates).
func acceptDeflate(opt httphead.Option) (wsflate.Parameters, bool) {
	if !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
		return wsflate.Parameters{}, false
	}
	// wsflate's Parse lets a value-less client_max_window_bits repeat.
	seen := map[string]bool{}
	repeated := false
	opt.Parameters.ForEach(func(k, _ []byte) bool {
		repeated = seen[string(k)]
		seen[string(k)] = true
		return !repeated
	})
	var offer wsflate.Parameters
	if repeated || offer.Parse(opt) != nil {
		return wsflate.Parameters{}, false
	}
	return wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: offer.ClientNoContextTakeover,
		ServerMaxWindowBits: offer.ServerMaxWindowBits}, true
}

// serveAccepted runs an accepted connection until it closes: the server
// role's version of run (no dialing, no reconnecting).
func (c *Conn) serveAccepted(s *Server, est *established) {
	defer s.forget(c)
	defer close(c.runDone)
	c.mu.Lock()
	c.runSession(est, Event{Type: EventEstablished, Attempt: 1, Data: []byte(c.uri)})
}
