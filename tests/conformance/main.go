// Command conformance is a raw-frame WebSocket test server: it plays the
// cases of package cases (RFC 6455, after Autobahn|Testsuite) against a
// client and judges what the client sends back.
//
// Protocol with the client (tests/conformance/client.lua):
//
//	ws://HOST/cases      one text message: a line per case, "ID<TAB>TIMEOUT_MS<TAB>OPT;OPT"
//	ws://HOST/case/ID    the case: echo every message as it came (text as text)
//	ws://HOST/report     one text message with the closing line; the server
//	                     then prints the table and exits (1 on any failure)
//
// On SIGTERM/SIGINT or after -timeout the table is printed at once, cases
// that never ran counting as failures.
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
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

type result struct {
	status string // "pass", "FAIL", "NON-STRICT"
	reason string
	dur    time.Duration
}

type server struct {
	all     []cases.Case
	byID    map[string]*cases.Case
	mu      sync.Mutex
	results map[string]result
	keys    map[string]bool
	running sync.WaitGroup // cases being played
	once    sync.Once
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	portFile := flag.String("port-file", "", "write the listening port here")
	run := flag.String("run", "", "only cases whose ID matches this regexp")
	skip := flag.String("skip", "", "leave out cases whose ID matches this regexp (e.g. ^(12|13|x12)\\. without compression)")
	timeout := flag.Duration("timeout", 170*time.Second, "print the report and exit after this long")
	list := flag.Bool("list", false, "print the case table and exit")
	flag.Parse()

	s := &server{byID: map[string]*cases.Case{}, results: map[string]result{}, keys: map[string]bool{}}
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
	for _, c := range cases.Cases() {
		if re.MatchString(c.ID) && (*skip == "" || !skipRe.MatchString(c.ID)) {
			s.all = append(s.all, c)
		}
	}
	for i := range s.all {
		if s.byID[s.all[i].ID] != nil {
			fmt.Fprintln(os.Stderr, "conformance: duplicate case", s.all[i].ID)
			os.Exit(2)
		}
		s.byID[s.all[i].ID] = &s.all[i]
	}
	if *list {
		groups := map[string]int{}
		for _, c := range s.all {
			groups[c.Group]++
			fmt.Printf("%-8s %s\n", c.ID, c.Desc)
		}
		fmt.Println(groupLine(groups), "total", len(s.all))
		return
	}
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
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sig:
			s.finish("interrupted")
		case <-time.After(*timeout):
			s.finish(fmt.Sprintf("timed out after %v", *timeout))
		}
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			continue
		}
		go s.serve(nc)
	}
}

func groupLine(groups map[string]int) string {
	var ks []string
	for k := range groups {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return groupOrder(ks[i]) < groupOrder(ks[j]) })
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s:%d", k, groups[k]))
	}
	return strings.Join(parts, " ")
}

func groupOrder(g string) int {
	var n int
	if _, err := fmt.Sscanf(g, "%d", &n); err == nil {
		return n
	}
	if g == "x" {
		return 100
	}
	return 101
}

// upgrade checks the client's opening handshake (RFC 6455 section 4.1) and
// answers 101. It returns what is wrong with the request ("" if nothing)
// and the negotiated deflate parameters.
func (s *server) upgrade(nc net.Conn, req *http.Request, want *cases.Deflate) (string, *cases.Deflate, error) {
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

	var got *cases.Deflate
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
			bad = append(bad, fmt.Sprintf("client did not offer permessage-deflate (Sec-WebSocket-Extensions %q)", req.Header.Values("Sec-WebSocket-Extensions")))
		}
	}
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(nc, resp+"\r\n")
	return strings.Join(bad, "; "), got, err
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
	if _, _, err := s.upgrade(nc, req, nil); err != nil {
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

func (s *server) record(id string, r result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.results[id]; ok {
		if old.status != "FAIL" {
			old.status = "FAIL"
			old.reason = "case connected more than once; " + old.reason
		}
		s.results[id] = old
		return
	}
	s.results[id] = r
}

func (s *server) count() (passed, failed int, lines []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.all {
		r, ok := s.results[c.ID]
		if !ok {
			r = result{status: "FAIL", reason: "not run (the client never connected to this case)"}
		}
		if r.status == "FAIL" {
			failed++
		} else {
			passed++
		}
		desc := c.Desc
		if len(desc) > 70 {
			desc = desc[:67] + "..."
		}
		reason := r.reason
		if reason == "" {
			reason = "-"
		}
		lines = append(lines, fmt.Sprintf("%-8s %-5s %-10s %6.2fs  %-70s  %s", c.ID, c.Group, r.status, r.dur.Seconds(), desc, reason))
	}
	return passed, failed, lines
}

func (s *server) closingLine() string {
	p, f, _ := s.count()
	return fmt.Sprintf("%d passed, %d failed", p, f)
}

// finish prints the table and exits; the first caller wins.
func (s *server) finish(why string) {
	s.once.Do(func() {
		passed, failed, lines := s.count()
		fmt.Printf("%-8s %-5s %-10s %7s  %-70s  %s\n", "CASE", "GROUP", "RESULT", "TIME", "DESCRIPTION", "REASON")
		for _, l := range lines {
			fmt.Println(l)
		}
		groups := map[string][2]int{}
		s.mu.Lock()
		for _, c := range s.all {
			g := groups[c.Group]
			if r, ok := s.results[c.ID]; ok && r.status != "FAIL" {
				g[0]++
			} else {
				g[1]++
			}
			groups[c.Group] = g
		}
		s.mu.Unlock()
		var ks []string
		for k := range groups {
			ks = append(ks, k)
		}
		sort.Slice(ks, func(i, j int) bool { return groupOrder(ks[i]) < groupOrder(ks[j]) })
		fmt.Print("per group (passed/total):")
		for _, k := range ks {
			fmt.Printf(" %s: %d/%d", k, groups[k][0], groups[k][0]+groups[k][1])
		}
		fmt.Println()
		var ns []string
		s.mu.Lock()
		for _, c := range s.all {
			if s.results[c.ID].status == "NON-STRICT" {
				ns = append(ns, c.ID)
			}
		}
		s.mu.Unlock()
		if len(ns) > 0 {
			fmt.Printf("NON-STRICT (passed, as Autobahn grades them): %d: %s\n", len(ns), strings.Join(ns, " "))
		}
		if why != "" {
			fmt.Println("conformance:", why)
		}
		fmt.Printf("%d passed, %d failed\n", passed, failed)
		if failed > 0 {
			os.Exit(1)
		}
		os.Exit(0)
	})
}
