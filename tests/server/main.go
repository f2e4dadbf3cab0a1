// Command server is the test server of the verawebsockets Lua suite
// (build/test-lua.sh, tests/test-*.lua).
//
// It listens on 127.0.0.1 only, on ephemeral ports, and prints KEY=VALUE lines
// on stdout, ending with READY=1:
//
//	HTTP_PORT        ws://  every route below
//	TLS_PORT         wss:// every route, certificate signed by the test CA (CERT_DIR/ca.pem)
//	MTLS_PORT        wss:// every route, a client certificate signed by the test CA is required
//	SELF_PORT        wss:// every route, self-signed certificate
//	TLS11_PORT       wss:// every route, but only TLS 1.0 and 1.1 (crypto/tls answers a
//	                 client that wants 1.2+ with a protocol_version alert)
//	TLS11_HELLO_PORT answers any ClientHello with a TLS 1.1 ServerHello, as a server
//	                 that knows nothing newer does
//	KILL_PORT        ws://  every route; /kill?ms=N (on any port) closes this listener and
//	                 its connections and listens again on the same port after N ms
//	PROXY_PORT       HTTP CONNECT proxy (no auth), counts tunnels (/stats)
//	PROXY_AUTH_PORT  HTTP CONNECT proxy requiring Basic PROXY_USER:PROXY_PASS
//	CLOSED_PORT      a port nobody listens on (connection refused)
//	BLACKHOLE_PORT   accepts TCP and never answers (connect timeouts)
//	FREE_PORT        a free port for another program (tinyproxy)
//	FREE_PORT2       another one (libwebsockets-test-server)
//	CERT_DIR         ca.pem client.pem client.key wrongca.pem wrongclient.pem wrongclient.key garbage.pem
//
// Routes (WebSocket unless noted; control routes answer plain HTTP GET too):
//
//	/echo[?id=X]              echoes text/binary with the same opcode; the close the
//	                          client sent is recorded under X (see /closeinfo)
//	/closeinfo?id=X           {"seen":bool,"code":N,"reason":"...","clean":bool,"pings":N}
//	                          (while /echo?id=X is still open: seen false, pings so far)
//	/headers                  first message: the request headers as JSON, then echo
//	/subproto                 chooses the first offered of chat, superchat, echo-protocol
//	/badproto                 101 with Sec-WebSocket-Protocol: bogus
//	/status200 /status404     plain HTTP answers
//	/garbage /hangup /halfhs  garbage bytes / close at once / close in the middle of the 101
//	/badaccept /noupgrade /noconnection /noaccept /upgradeother   broken 101 answers
//	/redirect?hops=N&loc=abs|http|rel   302 chain ending at /echo
//	/redirect_noloc           302 without Location
//	/noping                   never answers (pings are read and ignored)
//	/closewith?code=N&reason=S&delay_ms=M   closes with code and reason (no code: empty close)
//	/drop?msg=S               sends S, then drops TCP without a close frame
//	/slow?ms=N                reads nothing for N ms, then reads and discards
//	/slow?hold=K[&ms=N]       reads nothing until /release?key=K (at most N ms, default 60000)
//	/release?key=K            releases the /slow readers held under K (before or after they came)
//	/push?n=N&size=S&binary=1 pushes N messages "1".."N" (padded to S bytes), then echo
//	/fragments                a fragmented text (with a ping inside) and a fragmented binary, then echo
//	/big?n=N                  one binary message of N bytes, then echo
//	/serverping?payload=S     pings the client, then sends "pong:<payload of its pong>"
//	/delay?ms=N               waits N ms before the 101, then echo
//	/endlessheader?mb=N       101, then one header line that never ends: N MiB (default 1)
//	                          of it, or until the client hangs up
//	/manyheaders?n=N          a valid 101 with N extra header lines (default 200), then echo
//	/kill?ms=N                see KILL_PORT
//	/revive                   listens again on KILL_PORT at once (ends a /kill early)
//	/stats                    proxy counters as JSON
//
// It exits after -max-time or when stdin reaches EOF (with -stdin), so it never
// outlives its run.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type server struct {
	certDir string

	mu           sync.Mutex
	closes       map[string]closeRec
	live         map[string]*wsConn       // open /echo?id=X connections
	holds        map[string]chan struct{} // /slow?hold=K, closed by /release?key=K
	tunnels      int
	authTunnels  int
	authRejected int
	lastTarget   string

	kill *killable
}

type closeRec struct {
	Seen   bool   `json:"seen"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	Clean  bool   `json:"clean"`
	Pings  int    `json:"pings"` // pings received from the client
}

func main() {
	dir := flag.String("dir", "", "directory for the certificates (default: a new temp dir)")
	maxTime := flag.Duration("max-time", 10*time.Minute, "exit after this long")
	stdin := flag.Bool("stdin", false, "exit when stdin reaches EOF")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("testserver: ")

	if *dir == "" {
		d, err := os.MkdirTemp("", "vws-testserver-")
		if err != nil {
			log.Fatal(err)
		}
		*dir = d
	}
	certs, err := makeCerts(*dir)
	if err != nil {
		log.Fatal(err)
	}
	s := &server{certDir: *dir, closes: map[string]closeRec{},
		live: map[string]*wsConn{}, holds: map[string]chan struct{}{}}
	h := http.HandlerFunc(s.route)

	out := map[string]string{"CERT_DIR": *dir}
	plain := listen()
	out["HTTP_PORT"] = port(plain)
	go serveHTTP(plain, h, nil)

	// The same routes on the IPv6 loopback, when the machine has one (else
	// HTTP6_PORT is empty and the IPv6 tests skip).
	if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		out["HTTP6_PORT"] = port(ln6)
		go serveHTTP(ln6, h, nil)
	}

	tlsLn := listen()
	out["TLS_PORT"] = port(tlsLn)
	go serveHTTP(tlsLn, h, &tls.Config{Certificates: []tls.Certificate{certs.server}})

	mtls := listen()
	out["MTLS_PORT"] = port(mtls)
	pool := x509.NewCertPool()
	pool.AddCert(certs.ca)
	go serveHTTP(mtls, h, &tls.Config{Certificates: []tls.Certificate{certs.server},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})

	self := listen()
	out["SELF_PORT"] = port(self)
	go serveHTTP(self, h, &tls.Config{Certificates: []tls.Certificate{certs.self}})

	tls11 := listen()
	out["TLS11_PORT"] = port(tls11)
	go serveHTTP(tls11, h, &tls.Config{Certificates: []tls.Certificate{certs.server},
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	tls11Hello := listen()
	out["TLS11_HELLO_PORT"] = port(tls11Hello)
	go oldHello(tls11Hello, tls.VersionTLS11)

	s.kill = newKillable(listen(), h)
	out["KILL_PORT"] = strconv.Itoa(s.kill.port)

	px := listen()
	out["PROXY_PORT"] = port(px)
	go s.serveProxy(px, "")
	pxa := listen()
	out["PROXY_AUTH_PORT"] = port(pxa)
	out["PROXY_USER"], out["PROXY_PASS"] = "vws", "s3cret"
	go s.serveProxy(pxa, "vws:s3cret")

	out["CLOSED_PORT"] = strconv.Itoa(boundPort())
	free := listen()
	out["FREE_PORT"] = port(free)
	free2 := listen()
	out["FREE_PORT2"] = port(free2)
	free.Close()
	free2.Close()

	bh := listen()
	out["BLACKHOLE_PORT"] = port(bh)
	go blackhole(bh)

	for _, k := range []string{"HTTP_PORT", "TLS_PORT", "MTLS_PORT", "SELF_PORT", "TLS11_PORT", "TLS11_HELLO_PORT", "KILL_PORT",
		"PROXY_PORT", "PROXY_AUTH_PORT", "PROXY_USER", "PROXY_PASS", "CLOSED_PORT", "FREE_PORT", "FREE_PORT2",
		"BLACKHOLE_PORT", "CERT_DIR", "HTTP6_PORT"} {
		fmt.Printf("%s=%s\n", k, out[k])
	}
	fmt.Println("READY=1")
	os.Stdout.Sync()

	if *stdin {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			log.Print("stdin closed, exiting")
			os.Exit(0)
		}()
	}
	time.Sleep(*maxTime)
	log.Printf("max-time %v reached, exiting", *maxTime)
}

func listen() net.Listener {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	return ln
}

// boundPort binds a TCP socket to a loopback port without listening and keeps
// it for the life of the process: a connect to that port is refused, and no
// other program can take the port meanwhile.
func boundPort() int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		log.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		log.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

func port(ln net.Listener) string { return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }

func serveHTTP(ln net.Listener, h http.Handler, cfg *tls.Config) {
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	var err error
	if cfg != nil {
		srv.TLSConfig = cfg
		cfg.NextProtos = []string{"http/1.1"}
		err = srv.Serve(tls.NewListener(ln, cfg))
	} else {
		err = srv.Serve(ln)
	}
	if err != nil && err != http.ErrServerClosed {
		log.Printf("serve %s: %v", ln.Addr(), err)
	}
}

func blackhole(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			c.SetDeadline(time.Now().Add(60 * time.Second))
			io.Copy(io.Discard, c)
			c.Close()
		}()
	}
}

// oldHello answers every ClientHello with a ServerHello of version vers and
// nothing more (the client gives up), as a server that knows nothing newer.
func oldHello(ln net.Listener, vers uint16) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var rec [5]byte // the ClientHello's record header, then its body
			if _, err := io.ReadFull(c, rec[:]); err != nil || rec[0] != 22 {
				return
			}
			if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint16(rec[3:]))); err != nil {
				return
			}
			body := binary.BigEndian.AppendUint16(nil, vers) // server_version
			body = append(body, make([]byte, 32)...)         // random
			body = append(body, 0, 0x00, 0x2f, 0)            // no session id, TLS_RSA_WITH_AES_128_CBC_SHA, no compression
			msg := append([]byte{2, 0, 0, byte(len(body))}, body...)
			out := append([]byte{22, byte(vers >> 8), byte(vers)}, binary.BigEndian.AppendUint16(nil, uint16(len(msg)))...)
			c.Write(append(out, msg...))
			io.Copy(io.Discard, c)
		}()
	}
}

// killable is a listener that /kill closes, with all its connections, and
// opens again on the same port later.
type killable struct {
	port int
	h    http.Handler

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	gen   int
}

func newKillable(ln net.Listener, h http.Handler) *killable {
	k := &killable{port: ln.Addr().(*net.TCPAddr).Port, h: h, conns: map[net.Conn]struct{}{}}
	k.start(ln)
	return k
}

func (k *killable) start(ln net.Listener) {
	k.mu.Lock()
	k.ln = ln
	k.mu.Unlock()
	go serveHTTP(trackingListener{ln, k}, k.h, nil)
}

func (k *killable) kill(d time.Duration) {
	k.mu.Lock()
	k.gen++
	gen := k.gen
	if k.ln != nil {
		k.ln.Close()
		k.ln = nil
	}
	for c := range k.conns {
		c.Close()
	}
	k.conns = map[net.Conn]struct{}{}
	k.mu.Unlock()
	log.Printf("kill: port %d down for %v", k.port, d)
	time.AfterFunc(d, func() { k.up(gen) })
}

// revive listens again at once when the port is down (a pending kill's timer then does nothing).
func (k *killable) revive() {
	k.mu.Lock()
	if k.ln != nil {
		k.mu.Unlock()
		return
	}
	k.gen++
	gen := k.gen
	k.mu.Unlock()
	k.up(gen)
}

// up listens again unless another kill or revive came after generation gen.
func (k *killable) up(gen int) {
	k.mu.Lock()
	if k.gen != gen || k.ln != nil {
		k.mu.Unlock()
		return
	}
	k.mu.Unlock()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", k.port)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		log.Printf("kill: relisten: %v", err)
		return
	}
	log.Printf("kill: port %d up again", k.port)
	k.start(ln)
}

type trackingListener struct {
	net.Listener
	k *killable
}

func (t trackingListener) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err == nil {
		t.k.mu.Lock()
		t.k.conns[c] = struct{}{}
		t.k.mu.Unlock()
	}
	return c, err
}

// writeJSON answers a control route: as one text message over WebSocket when the
// request is an upgrade, else as a plain HTTP body.
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, _ := json.Marshal(v)
	if r.Header.Get("Upgrade") == "" {
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	}
	c, br, ok := upgrade(w, r, "")
	if !ok {
		return
	}
	defer c.Close()
	wc := newWSConn(c, br)
	wc.write(opText, b)
	wc.closeHandshake(1000, "")
}
