package wsengine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// httpDo sends raw (a whole request) to the server and returns the status
// code, the headers (lower-case names) and the body of the answer.
func httpDo(t *testing.T, port int, raw string) (int, map[string]string, string) {
	t.Helper()
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	var code int
	line, err := br.ReadString('\n')
	if _, serr := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err != nil || serr != nil {
		t.Fatalf("status line %q: %v", line, err)
	}
	hdr := map[string]string{}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("headers: %v", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		hdr[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	body, _ := io.ReadAll(br)
	return code, hdr, string(body)
}

// httpRoot makes a directory of test files and a symlink that leaves it.
func httpRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	for name, data := range map[string]string{
		"www/index.html": "<p>home</p>", "www/app.js": "1;", "www/s.css": "p{}", "www/d.json": "{}",
		"www/i.png": "png", "www/i.JPG": "jpg", "www/i.svg": "<svg/>", "www/t.txt": "text", "www/f.ico": "ico",
		"www/blob.bin": "bin", "www/sub/index.html": "<p>sub</p>", "www/nodex/a.txt": "a", "secret.txt": "secret",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(root, "out.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "t.txt"), filepath.Join(root, "in.txt")); err != nil {
		t.Fatal(err)
	}
	return root
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

func TestHTTPFiles(t *testing.T) {
	root := httpRoot(t)
	s, _ := testServer(t, false, "http_root="+root)
	for _, tc := range []struct {
		req, ctype, body string
		code             int
	}{
		{get("/"), "text/html; charset=utf-8", "<p>home</p>", 200},
		{get("/index.html"), "text/html; charset=utf-8", "<p>home</p>", 200},
		{get("/app.js?v=1"), "text/javascript; charset=utf-8", "1;", 200},
		{get("/s.css"), "text/css; charset=utf-8", "p{}", 200},
		{get("/d.json"), "application/json", "{}", 200},
		{get("/i.png"), "image/png", "png", 200},
		{get("/i.JPG"), "image/jpeg", "jpg", 200},
		{get("/i.svg"), "image/svg+xml", "<svg/>", 200},
		{get("/t.txt"), "text/plain; charset=utf-8", "text", 200},
		{get("/f.ico"), "image/x-icon", "ico", 200},
		{get("/blob.bin"), "application/octet-stream", "bin", 200},
		{get("/sub/"), "text/html; charset=utf-8", "<p>sub</p>", 200},
		{get("/%74.txt"), "text/plain; charset=utf-8", "text", 200},
		{get("/in.txt"), "text/plain; charset=utf-8", "text", 200}, // a symlink inside the root
		{"HEAD /t.txt HTTP/1.1\r\nHost: x\r\n\r\n", "text/plain; charset=utf-8", "", 200},
		{get("/missing.txt"), "", "", 404},
		{get("/nodex/"), "", "", 404},
		{get("/../secret.txt"), "", "", 403},
		{get("/sub/../../secret.txt"), "", "", 403},
		{get("/%2e%2e/secret.txt"), "", "", 403},
		{get("/%2E%2E%2fsecret.txt"), "", "", 403},
		{get("/out.txt"), "", "", 403}, // a symlink leaving the root
		{"POST /t.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "", "", 405},
		{"DELETE /t.txt HTTP/1.1\r\nHost: x\r\n\r\n", "", "", 405},
		{get("/sub"), "", "", 301},
		{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "", "", 505},
		{"garbage\r\n\r\n", "", "", 400},
	} {
		code, hdr, body := httpDo(t, s.Port(), tc.req)
		if code != tc.code {
			t.Errorf("%q: status %d, want %d (%q)", tc.req, code, tc.code, body)
			continue
		}
		if tc.code == 200 && (hdr["content-type"] != tc.ctype || body != tc.body) {
			t.Errorf("%q: %q %q, want %q %q", tc.req, hdr["content-type"], body, tc.ctype, tc.body)
		}
		if tc.code == 200 && (hdr["last-modified"] == "" || hdr["connection"] != "close") {
			t.Errorf("%q: headers %v", tc.req, hdr)
		}
		if strings.HasPrefix(tc.req, "HEAD") && hdr["content-length"] != "4" {
			t.Errorf("HEAD: content-length %q", hdr["content-length"])
		}
		if tc.code == 405 && hdr["allow"] != "GET, HEAD" {
			t.Errorf("405: allow %q", hdr["allow"])
		}
		if tc.code == 301 && hdr["location"] != "/sub/" {
			t.Errorf("301: location %q", hdr["location"])
		}
	}
	// If-Modified-Since: 304 when the file is not newer, 200 when it is.
	_, hdr, _ := httpDo(t, s.Port(), get("/t.txt"))
	lm := hdr["last-modified"]
	if code, _, body := httpDo(t, s.Port(), "GET /t.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: "+lm+"\r\n\r\n"); code != 304 || body != "" {
		t.Errorf("If-Modified-Since %s: %d %q", lm, code, body)
	}
	old := time.Now().Add(-48 * time.Hour).UTC().Format(http.TimeFormat)
	if code, _, _ := httpDo(t, s.Port(), "GET /t.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: "+old+"\r\n\r\n"); code != 200 {
		t.Errorf("If-Modified-Since %s: %d", old, code)
	}
}

// Without http_root or http_handler a plain GET is refused as before (400).
func TestHTTPOff(t *testing.T) {
	s, _ := testServer(t, false)
	if code, _, _ := httpDo(t, s.Port(), get("/")); code != 400 {
		t.Fatalf("status %d", code)
	}
}

func TestHTTPRootMustBeADirectory(t *testing.T) {
	s := NewServer(func(*Conn, string) func(Event) { return nil })
	s.SetOption("port", "0")
	s.SetOption("http_root", filepath.Join(t.TempDir(), "nope"))
	if err := s.Listen(); err == nil || !strings.Contains(err.Error(), "http_root") {
		s.Abandon()
		t.Fatalf("Listen: %v", err)
	}
}

// handlerServer is a server with http_root and http_handler whose requests
// are answered by answer (nil: never).
func handlerServer(t *testing.T, answer func(r *Request) *Response, opts ...string) *Server {
	t.Helper()
	s := NewServer(func(*Conn, string) func(Event) { return nil })
	s.HandleHTTP(func(r *Request) bool {
		if resp := answer(r); resp != nil {
			go r.Respond(*resp)
		}
		return true
	})
	for _, kv := range append([]string{"port=0", "http_handler=1", "http_root=" + httpRoot(t)}, opts...) {
		name, value, _ := strings.Cut(kv, "=")
		if err := s.SetOption(name, value); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Abandon)
	return s
}

func TestHTTPHandler(t *testing.T) {
	got := make(chan *Request, 4)
	s := handlerServer(t, func(r *Request) *Response {
		got <- r
		switch r.Target {
		case "/api?x=1":
			return &Response{Status: 201, Header: [][2]string{{"Content-Type", "application/json"}, {"X-A", "b"}}, Body: []byte(`{"ok":true}`)}
		case "/slow":
			return nil
		}
		return &Response{} // not handled: the files
	}, "handshake_timeout=300", "max_http_body=10")
	code, hdr, body := httpDo(t, s.Port(), "POST /api?x=1 HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\nContent-Length: 5\r\n\r\nhello")
	if code != 201 || hdr["x-a"] != "b" || hdr["content-type"] != "application/json" || body != `{"ok":true}` {
		t.Fatalf("handler: %d %v %q", code, hdr, body)
	}
	r := <-got
	if r.Method != "POST" || string(r.Body) != "hello" || len(r.Header) != 3 || r.Header[1] != [2]string{"X-Test", "yes"} ||
		!strings.HasPrefix(r.Peer, "127.0.0.1:") {
		t.Fatalf("request %+v", r)
	}
	if code, _, body := httpDo(t, s.Port(), get("/t.txt")); code != 200 || body != "text" {
		t.Fatalf("fallback to files: %d %q", code, body)
	}
	<-got
	if code, _, _ := httpDo(t, s.Port(), get("/slow")); code != 503 {
		t.Fatalf("no answer: %d", code)
	}
	r = <-got
	if err := r.Respond(Response{Status: 200}); err != ErrRequestDone {
		t.Fatalf("late answer: %v", err)
	}
	if code, _, _ := httpDo(t, s.Port(), "POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"); code != 413 {
		t.Fatalf("body over max_http_body: %d", code)
	}
	if code, _, _ := httpDo(t, s.Port(), "POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"); code != 413 {
		t.Fatalf("chunked body over max_http_body: %d", code)
	}
	if err := (&Request{done: make(chan struct{})}).Respond(Response{Status: 99}); err == nil {
		t.Fatal("status 99 accepted")
	}
	if err := (&Request{done: make(chan struct{})}).Respond(Response{Status: 200, Header: [][2]string{{"X", "a\r\nb"}}}); err == nil {
		t.Fatal("CR LF in a header value accepted")
	}
}

// Closing the server answers a request waiting for its handler with 503 at once.
func TestHTTPHandlerServerClosed(t *testing.T) {
	got := make(chan *Request, 1)
	s := handlerServer(t, func(r *Request) *Response { got <- r; return nil })
	done := make(chan int, 1)
	go func() {
		code, _, _ := httpDo(t, s.Port(), get("/wait"))
		done <- code
	}()
	<-got
	s.Abandon()
	select {
	case code := <-done:
		if code != 503 {
			t.Fatalf("status %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer after Abandon")
	}
}

// max_clients_per_ip and handshake_rate apply to plain requests; the Origin policy does not.
func TestHTTPGuards(t *testing.T) {
	root := httpRoot(t)
	s, _ := testServer(t, false, "http_root="+root, "handshake_rate=1,2")
	for i, want := range []int{200, 200, 429} {
		if code, _, _ := httpDo(t, s.Port(), "GET /t.txt HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\r\n"); code != want {
			t.Fatalf("request %d: %d, want %d", i, code, want)
		}
	}
	s2, _ := testServer(t, false, "http_root="+root, "max_clients_per_ip=1")
	// The held request and a probe race: when a probe is counted first, the
	// held request is the one refused (answered, closed); a new round then.
	for round := 1; ; round++ {
		held, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s2.Port()))
		if err != nil {
			t.Fatal(err)
		}
		held.Write([]byte("POST /t.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")) // body never comes
		refused := false
		deadline := time.Now().Add(5 * time.Second)
		for !refused {
			code, _, _ := httpDo(t, s2.Port(), get("/t.txt"))
			if code == 503 {
				held.Close()
				return
			}
			held.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			var one [1]byte
			if _, err := held.Read(one[:]); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				refused = true // the held request got the answer (or was closed)
			}
			if time.Now().After(deadline) {
				t.Fatalf("second request from the address: %d, want 503", code)
			}
		}
		held.Close()
		if round == 5 {
			t.Fatal("the held request was refused in 5 rounds")
		}
	}
}

// The handshake filter gets the upgrade's method, target and every header
// (the WebSocket ones too), and its refusal's status, headers and body are
// what the client reads; status 0 lets the upgrade go on.
func TestHandshakeFilter(t *testing.T) {
	s, acc := testServer(t, false, "filter=1")
	got := make(chan *Request, 2)
	s.HandleHTTP(func(r *Request) bool {
		got <- r
		go func() {
			for _, h := range r.Header {
				if h[0] == "Authorization" && h[1] == "Bearer good" {
					r.Respond(Response{})
					return
				}
			}
			r.Respond(Response{Status: 401, Header: [][2]string{{"WWW-Authenticate", `Bearer realm="t"`}}, Body: []byte("token\n")})
		}()
		return true
	})
	up := "GET /f?x=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n"
	code, hdr, body := httpDo(t, s.Port(), up+"\r\n")
	if code != 401 || hdr["www-authenticate"] != `Bearer realm="t"` || body != "token\n" {
		t.Fatalf("refusal: %d %v %q", code, hdr, body)
	}
	r := <-got
	protocol := ""
	for _, h := range r.Header {
		if h[0] == "Sec-WebSocket-Protocol" {
			protocol = h[1]
		}
	}
	if !r.Upgrade || r.Method != "GET" || r.Target != "/f?x=1" || protocol != "chat" {
		t.Fatalf("request: upgrade %v method %q target %q protocol %q", r.Upgrade, r.Method, r.Target, protocol)
	}
	nc, _, _ := rawClient(t, s, "Authorization: Bearer good\r\n") // fails the test unless 101
	defer nc.Close()
	nextAccepted(t, acc)
}
