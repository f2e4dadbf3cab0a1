// Command conformance plays the RFC 6455 cases of package cases (after
// Autobahn|Testsuite) against a peer and judges what it sends back.
//
// Client role (the default): it is a raw-frame test server for a client
// (tests/conformance/client.lua):
//
//	ws://HOST/cases      one text message: a line per case, "ID<TAB>TIMEOUT_MS<TAB>OPT;OPT"
//	ws://HOST/case/ID    the case: echo every message as it came (text as text)
//	ws://HOST/report     one text message with the closing line; the server
//	                     then prints the table and exits (1 on any failure)
//
// Server role (-role server): it starts the echo server
// tests/conformance/server.lua (-lua, -so, -script) with one ws.listen per
// set of case options, and plays the cases of cases.ServerCases as a
// raw-frame client that masks what it writes; then it prints the table and
// exits (1 on any failure).
//
// Grades are Autobahn's: OK, NON-STRICT, FAILED, UNIMPLEMENTED. FAILED and
// UNIMPLEMENTED fail the run; NON-STRICT does only with
// VWS_CONFORMANCE_STRICT=1. On SIGTERM/SIGINT or after -timeout the table is
// printed at once, cases that never ran counting as failures.
package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

// server is the test server of the client role.
type server struct {
	*suite
	keys    map[string]bool
	running sync.WaitGroup // cases being played
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (client role)")
	portFile := flag.String("port-file", "", "write the listening port here (client role)")
	role := flag.String("role", "client", "the role under test: client (we are the server) or server (we are the client)")
	luaCmd := flag.String("lua", "lua5.1", "server role: the Lua interpreter command (may be \"qemu-mipsel -L ... lua5.1\")")
	soDir := flag.String("so", "build/out/amd64/inproc", "server role: the directory of verawebsockets.so")
	luaScript := flag.String("script", "tests/conformance/server.lua", "server role: the Lua echo server")
	run := flag.String("run", "", "only cases whose ID matches this regexp")
	skip := flag.String("skip", "", "leave out cases whose ID matches this regexp (e.g. ^(12|13|x12)\\. without compression)")
	timeout := flag.Duration("timeout", 170*time.Second, "print the report and exit after this long")
	list := flag.Bool("list", false, "print the case table and exit")
	flag.Parse()

	re, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	skipRe, err := regexp.Compile(*skip)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	table := cases.Cases()
	switch *role {
	case "client":
	case "server":
		table = cases.ServerCases()
	default:
		fmt.Fprintln(os.Stderr, "conformance: -role client or server")
		os.Exit(2)
	}
	var picked []cases.Case
	for _, c := range table {
		if re.MatchString(c.ID) && (*skip == "" || !skipRe.MatchString(c.ID)) {
			picked = append(picked, c)
		}
	}
	st, err := newSuite(*role, picked)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	if *list {
		groups := map[string]int{}
		for _, c := range st.all {
			groups[c.Group]++
			fmt.Printf("%-8s %s\n", c.ID, c.Desc)
		}
		fmt.Println(groupLine(groups), "total", len(st.all))
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stop := make(chan string, 1)
	go func() {
		select {
		case <-sig:
			stop <- "interrupted"
		case <-time.After(*timeout):
			stop <- fmt.Sprintf("timed out after %v", *timeout)
		}
	}()
	if *role == "server" {
		d := &driver{suite: st, lua: strings.Fields(*luaCmd), so: *soDir, script: *luaScript}
		os.Exit(d.main(stop))
	}
	go func() { st.finish(<-stop) }()
	s := &server{suite: st, keys: map[string]bool{}}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile+".tmp", []byte(fmt.Sprintln(port)), 0o644); err == nil {
			os.Rename(*portFile+".tmp", *portFile)
		}
	}
	fmt.Fprintf(os.Stderr, "conformance: %d cases, listening on %s\n", len(s.all), ln.Addr())
	for {
		nc, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			continue
		}
		go s.serve(nc)
	}
}

// upgrade checks the client's opening handshake (RFC 6455 section 4.1) and
// answers 101. It returns what is wrong with the request ("" if nothing),
// the negotiated deflate parameters, and why the case is UNIMPLEMENTED (the
// case wants permessage-deflate and the client did not offer it).
func (s *server) upgrade(nc net.Conn, req *http.Request, want *cases.Deflate) (problem string, got *cases.Deflate, unimplemented string, err error) {
	var bad []string
	if req.Method != http.MethodGet || !req.ProtoAtLeast(1, 1) {
		bad = append(bad, fmt.Sprintf("request line %s %s", req.Method, req.Proto))
	}
	if req.Host == "" {
		bad = append(bad, "no Host header")
	}
	if !hasToken(req.Header, "Upgrade", "websocket") {
		bad = append(bad, "Upgrade header is not websocket")
	}
	if !hasToken(req.Header, "Connection", "upgrade") {
		bad = append(bad, "Connection header lacks upgrade")
	}
	if v := req.Header.Get("Sec-WebSocket-Version"); v != "13" {
		bad = append(bad, fmt.Sprintf("Sec-WebSocket-Version %q", v))
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		bad = append(bad, fmt.Sprintf("Sec-WebSocket-Key %q is not 16 bytes in base64", key))
	}
	s.mu.Lock()
	if s.keys[key] {
		bad = append(bad, "Sec-WebSocket-Key reused from an earlier connection")
	}
	s.keys[key] = true
	s.mu.Unlock()

	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp += "Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h[:]) + "\r\n"
	if want != nil {
		if offeredDeflate(req.Header) {
			d := *want
			got = &d
			ext := "permessage-deflate"
			if d.ServerNoContextTakeover {
				ext += "; server_no_context_takeover"
			}
			if d.ClientNoContextTakeover {
				ext += "; client_no_context_takeover"
			}
			if d.ServerMaxWindowBits > 0 {
				ext += fmt.Sprintf("; server_max_window_bits=%d", d.ServerMaxWindowBits)
			}
			resp += "Sec-WebSocket-Extensions: " + ext + "\r\n"
		} else {
			unimplemented = fmt.Sprintf("the client did not offer permessage-deflate (Sec-WebSocket-Extensions %q)", req.Header.Values("Sec-WebSocket-Extensions"))
		}
	}
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(nc, resp+"\r\n")
	return strings.Join(bad, "; "), got, unimplemented, err
}

func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func offeredDeflate(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for _, offer := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(offer, ";")
			if strings.TrimSpace(name) == "permessage-deflate" {
				return true
			}
		}
	}
	return false
}

func (s *server) serve(nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(nc, 64<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	path := req.URL.Path
	switch {
	case path == "/cases":
		var b strings.Builder
		for _, c := range s.all {
			fmt.Fprintf(&b, "%s\t%d\t%s\n", c.ID, c.Limit().Milliseconds(), strings.Join(c.Options, ";"))
		}
		s.sendAndClose(nc, br, req, b.String())
	case path == "/report":
		done := make(chan struct{})
		go func() { s.running.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		s.sendAndClose(nc, br, req, s.closingLine())
		s.finish("")
	case strings.HasPrefix(path, "/case/"):
		c := s.byID[strings.TrimPrefix(path, "/case/")]
		if c == nil {
			io.WriteString(nc, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			return
		}
		s.runCase(nc, br, req, c)
	default:
		io.WriteString(nc, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
	}
}

// sendAndClose upgrades, sends one text message, and closes with 1000.
func (s *server) sendAndClose(nc net.Conn, br *bufio.Reader, req *http.Request, text string) {
	if _, _, _, err := s.upgrade(nc, req, nil); err != nil {
		return
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	nc.Write(cases.Cat(cases.Fr(true, cases.OpText, []byte(text)), cases.CloseFrame(1000, "")))
	w := &wire{nc: nc, br: br, events: make(chan event, 16), masks: map[[4]byte]int{}}
	go w.readLoop()
	for e := range w.events { // until the client's close, then we close TCP
		if e.kind == evClose || e.kind == evEOF {
			break
		}
	}
}
