// Package echotest is a WebSocket echo server on 127.0.0.1 for the Go tests
// of the engine's two C ABI implementations (internal/hub, capi, cmd/vws-helper),
// plus RefusedAddr, a port that refuses connections, for those and wsengine.
package echotest

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Server echoes every message with its opcode and picks the subprotocol
// "echo" when a client offers it. It stops, closing every connection, when
// the test ends.
type Server struct {
	// URL is ws://127.0.0.1:PORT/echo.
	URL string
	// Ended receives the read error of each connection that ended (up to 64
	// are buffered; later ones are dropped).
	Ended chan error

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	codes []ws.StatusCode
}

// New starts a Server for the test t.
func New(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &Server{
		URL:   "ws://" + ln.Addr().String() + "/echo",
		Ended: make(chan error, 64),
		ln:    ln,
		conns: make(map[net.Conn]bool),
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

// RefusedAddr returns "127.0.0.1:PORT" of a loopback TCP port that refuses
// connections for the rest of the test: a socket bound to it that never
// listens holds it until the test ends. Unlike a port freed by closing a
// listener, no other program can take it meanwhile, and Linux answers every
// connect to it with a reset (ECONNREFUSED).
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// CloseCodes returns the close codes received from clients so far.
func (s *Server) CloseCodes() []ws.StatusCode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ws.StatusCode(nil), s.codes...)
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	u := ws.Upgrader{Protocol: func(p []byte) bool { return string(p) == "echo" }}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := u.Upgrade(c); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	for {
		p, op, err := wsutil.ReadClientData(c)
		if err != nil {
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				s.mu.Lock()
				s.codes = append(s.codes, ce.Code)
				s.mu.Unlock()
			}
			select {
			case s.Ended <- err:
			default:
			}
			return
		}
		if err := wsutil.WriteServerMessage(c, op, p); err != nil {
			return
		}
	}
}

func (s *Server) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
