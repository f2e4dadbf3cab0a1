package wsengine

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/echotest"
)

// respondServer answers every handshake with resp(request).
func respondServer(t *testing.T, resp func(*http.Request) string) *server {
	return newServer(t, func(nc net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		io.WriteString(nc, resp(req))
		io.Copy(io.Discard, nc)
	})
}

func okHead(req *http.Request) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
}

func TestHandshakeFailures(t *testing.T) {
	cases := []struct {
		name, want string
		resp       func(*http.Request) string
		opts       []string
	}{
		{"404", "HS: ws upgrade response not 101 (status 404)", func(*http.Request) string {
			return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
		}, nil},
		{"bad accept", "HS: Accept hash wrong", func(*http.Request) string {
			return "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
		}, nil},
		{"no accept", "HS: ACCEPT missing", func(*http.Request) string {
			return "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
		}, nil},
		{"no upgrade", "HS: UPGRADE missing", func(r *http.Request) string {
			return strings.Replace(okHead(r), "Upgrade: websocket\r\n", "", 1) + "\r\n"
		}, nil},
		{"upgrade other", "HS: Upgrade to something other than websocket", func(r *http.Request) string {
			return strings.Replace(okHead(r), "Upgrade: websocket", "Upgrade: h2c", 1) + "\r\n"
		}, nil},
		{"no connection", "HS: CONNECTION missing", func(r *http.Request) string {
			return strings.Replace(okHead(r), "Connection: Upgrade\r\n", "", 1) + "\r\n"
		}, nil},
		{"protocol not offered", "HS: Cannot match protocol", func(r *http.Request) string {
			return okHead(r) + "Sec-WebSocket-Protocol: other\r\n\r\n"
		}, []string{"protocols", "chat"}},
		{"protocol without offer", "HS: Cannot match protocol", func(r *http.Request) string {
			return okHead(r) + "Sec-WebSocket-Protocol: chat\r\n\r\n"
		}, nil},
		{"extension not offered", "HS: Unrequested extension", func(r *http.Request) string {
			return okHead(r) + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
		}, nil},
		{"hang up", "Peer hung up", func(*http.Request) string { return "" }, nil},
		{"redirect no location", "HS: Redirect code but no Location", func(*http.Request) string {
			return "HTTP/1.1 302 Found\r\n\r\n"
		}, []string{"max_redirects", "3"}},
		{"redirects off", "HS: Redirect failed: too many redirects (max_redirects 0)", func(*http.Request) string {
			return "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n"
		}, nil},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			resp := tc.resp
			var srv *server
			if tc.name == "hang up" {
				srv = newServer(t, func(nc net.Conn) { http.ReadRequest(bufio.NewReader(nc)) })
			} else {
				srv = respondServer(t, resp)
			}
			c, ev := dialTest(t, srv.url, tc.opts...)
			e := ev.expect(EventConnectionError)
			if string(e.Data) != tc.want || e.Attempt != 1 {
				t.Fatalf("reason %q attempt %d, want %q", e.Data, e.Attempt, tc.want)
			}
			waitRun(t, c)
			if c.State() != StateClosed {
				t.Fatalf("state %d", c.State())
			}
			ev.none(20 * time.Millisecond)
		})
	}
}

func TestHandshakeRequest(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	srv := newServer(t, echoHandler("Sec-WebSocket-Protocol: b\r\n", func(r *http.Request) { reqs <- r }))
	c, ev := dialTest(t, srv.url+"/p/a?q=1", "protocols", "a, b", "header", "X-Token: 42", "header", "X-Two: 2", "origin", "http://o.example")
	e := ev.expect(EventEstablished)
	if string(e.Data) != "b" || c.Protocol() != "b" {
		t.Fatalf("protocol %q %q", e.Data, c.Protocol())
	}
	r := <-reqs
	if r.RequestURI != "/p/a?q=1" || r.Header.Get("X-Token") != "42" || r.Header.Get("X-Two") != "2" ||
		r.Header.Get("Origin") != "http://o.example" || r.Header.Get("Sec-WebSocket-Protocol") != "a, b" ||
		r.Host != strings.TrimPrefix(srv.url, "ws://") {
		t.Fatalf("request %s %v host %s", r.RequestURI, r.Header, r.Host)
	}
}

func TestConnectRefused(t *testing.T) {
	_, ev := dialTest(t, "ws://"+echotest.RefusedAddr(t)+"/")
	if e := ev.expect(EventConnectionError); string(e.Data) != "connect failed: connection refused" {
		t.Fatalf("reason %q", e.Data)
	}
}

func TestConnectTimeout(t *testing.T) {
	srv := newServer(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	start := time.Now()
	_, ev := dialTest(t, srv.url, "connect_timeout", "200")
	if e := ev.expect(EventConnectionError); string(e.Data) != "timeout: no connection within 200ms" {
		t.Fatalf("reason %q", e.Data)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestNetErrorMapping(t *testing.T) {
	err := netError(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}})
	if !strings.HasPrefix(err.Error(), "getaddrinfo (ipv4) failed") {
		t.Fatalf("dns: %v", err)
	}
	if err := tlsError(errors.New("remote error: tls: bad certificate")); !strings.HasPrefix(err.Error(), "TLS: ") {
		t.Fatalf("tls: %v", err)
	}
	if err := tlsError(io.EOF); err.Error() != "Peer hung up" {
		t.Fatalf("eof: %v", err)
	}
	if r, _ := handshakeReason(context.DeadlineExceeded, nil); r == "" {
		t.Fatal("empty reason")
	}
}

func TestRedirect(t *testing.T) {
	echo := newServer(t, echoHandler("", nil))
	hops := atomic.Int32{}
	var redir *server
	redir = respondServer(t, func(r *http.Request) string {
		if hops.Add(1) == 1 {
			return "HTTP/1.1 301 Moved\r\nLocation: " + redir.url + "/second\r\n\r\n"
		}
		return "HTTP/1.1 307 Temporary\r\nLocation: " + strings.Replace(echo.url, "ws://", "http://", 1) + "/final\r\n\r\n"
	})
	c, ev := dialTest(t, redir.url, "max_redirects", "2")
	ev.expect(EventEstablished)
	c.Send(OpText, []byte("hi"))
	if e := ev.expect(EventReceive); string(e.Data) != "hi" {
		t.Fatalf("got %q", e.Data)
	}
	hops.Store(0)
	_, ev2 := dialTest(t, redir.url, "max_redirects", "1")
	if e := ev2.expect(EventConnectionError); !strings.HasPrefix(string(e.Data), "HS: Redirect failed") {
		t.Fatalf("reason %q", e.Data)
	}
}

func TestReconnect(t *testing.T) {
	var n atomic.Int32
	// The third attempt's handshake is held until the test has checked the
	// state after the second failure, so that attempt cannot have opened
	// the connection yet however late the check runs.
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseThird := func() { releaseOnce.Do(func() { close(release) }) }
	srv := newServer(t, func(nc net.Conn) {
		if n.Add(1) <= 2 {
			req, err := http.ReadRequest(bufio.NewReader(nc))
			if err == nil {
				_ = req
				io.WriteString(nc, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
			}
			return
		}
		<-release
		echoHandler("", nil)(nc)
	})
	t.Cleanup(releaseThird) // runs before the server's cleanup
	// Backoffs of 300 and 600 ms: the checks below most likely run while
	// the engine waits to reconnect (and in any case before attempt 3 opens).
	c, ev := dialTest(t, srv.url, "reconnect", "300,600,2,0,0")
	for i := 1; i <= 2; i++ {
		e := ev.expect(EventConnectionError)
		if e.Attempt != i {
			t.Fatalf("attempt %d, want %d", e.Attempt, i)
		}
		if c.State() != StateConnecting {
			t.Fatalf("state %d while waiting", c.State())
		}
	}
	releaseThird()
	if e := ev.expect(EventEstablished); e.Attempt != 3 {
		t.Fatalf("established attempt %d", e.Attempt)
	}
	c.Close(0, "")
	if e := ev.expect(EventClosed); !e.Clean {
		t.Fatalf("closed %+v", e)
	}
	waitRun(t, c)

	// max_attempts stops after the last failure.
	c2, ev2 := dialTest(t, "ws://"+echotest.RefusedAddr(t), "reconnect", "1,5,2,0,3")
	for i := 1; i <= 3; i++ {
		if e := ev2.expect(EventConnectionError); e.Attempt != i {
			t.Fatalf("attempt %d", e.Attempt)
		}
	}
	waitRun(t, c2)
	ev2.none(50 * time.Millisecond)
	if c2.State() != StateClosed {
		t.Fatalf("state %d", c2.State())
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	var n atomic.Int32
	srv := newServer(t, func(nc net.Conn) {
		if n.Add(1) == 1 {
			rawHandshake(nc, "") // then drop
			return
		}
		echoHandler("", nil)(nc)
	})
	c, ev := dialTest(t, srv.url, "reconnect", "10,10,1,0,0")
	ev.expect(EventEstablished)
	if e := ev.expect(EventClosed); e.Clean || e.Code != 1006 {
		t.Fatalf("closed %+v", e)
	}
	if e := ev.expect(EventEstablished); e.Attempt != 1 {
		t.Fatalf("attempt %d", e.Attempt)
	}
	c.Close(0, "")
	ev.expect(EventClosed)
	waitRun(t, c)
	ev.none(50 * time.Millisecond)
}

// connectProxy is a tiny HTTP CONNECT proxy; it requires auth if set.
func connectProxy(t *testing.T, auth string, used *atomic.Int32) *server {
	return newServer(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != "CONNECT" {
			return
		}
		if auth != "" && req.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(auth)) {
			io.WriteString(nc, "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
			return
		}
		up, err := net.Dial("tcp", req.Host)
		if err != nil {
			io.WriteString(nc, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
			return
		}
		defer up.Close()
		used.Add(1)
		io.WriteString(nc, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); close(done) }()
		io.Copy(nc, up)
		nc.Close()
		<-done
	})
}

func TestProxy(t *testing.T) {
	echo := newServer(t, echoHandler("", nil))
	var used atomic.Int32
	px := connectProxy(t, "u:p w", &used)
	pxURL := strings.Replace(px.url, "ws://", "http://", 1)

	c, ev := dialTest(t, echo.url, "proxy", strings.Replace(pxURL, "http://", "http://u:p%20w@", 1))
	ev.expect(EventEstablished)
	c.Send(OpText, []byte("via proxy"))
	if e := ev.expect(EventReceive); string(e.Data) != "via proxy" || used.Load() != 1 {
		t.Fatalf("got %q used %d", e.Data, used.Load())
	}
	c.Close(0, "")
	ev.expect(EventClosed)

	_, ev2 := dialTest(t, echo.url, "proxy", pxURL)
	if e := ev2.expect(EventConnectionError); string(e.Data) != "proxy: CONNECT failed (status 407)" {
		t.Fatalf("reason %q", e.Data)
	}

	t.Setenv("http_proxy", strings.Replace(pxURL, "http://", "http://u:p%20w@", 1))
	t.Setenv("no_proxy", "example.com")
	_, ev3 := dialTest(t, echo.url, "proxy", "env")
	ev3.expect(EventEstablished)
	if used.Load() != 2 {
		t.Fatalf("env proxy not used")
	}
}

func TestNoProxy(t *testing.T) {
	for _, tc := range []struct {
		list, host string
		want       bool
	}{
		{"", "a.com", false}, {"*", "a.com", true}, {"a.com", "a.com", true}, {"a.com", "x.a.com", true},
		{".a.com", "x.a.com", true}, {"a.com", "ba.com", false}, {"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "11.1.2.3", false}, {"b.com, a.com:80", "a.com", true},
	} {
		if got := noProxy(tc.list, tc.host); got != tc.want {
			t.Errorf("noProxy(%q, %q) = %v", tc.list, tc.host, got)
		}
	}
	tg, _ := parseTarget("wss://h.example/")
	env := map[string]string{"HTTPS_PROXY": "p:3128", "http_proxy": "http://q:1"}
	if u := proxyFromEnv(tg, func(k string) string { return env[k] }); u == nil || u.Host != "p:3128" {
		t.Fatalf("proxyFromEnv %v", u)
	}
}

func TestCloseWhileWaitingToReconnect(t *testing.T) {
	// A 60 s backoff: an engine that sat out the wait before closing would
	// miss the 5 s bounds below by far.
	c, ev := dialTest(t, "ws://"+echotest.RefusedAddr(t), "reconnect", "60000,60000,1,0,0")
	ev.expect(EventConnectionError)
	if c.State() != StateConnecting {
		t.Fatalf("state %d", c.State())
	}
	if err := c.SetOption("origin", "x"); err != ErrBusy {
		t.Fatalf("SetOption after Connect: %v", err)
	}
	if err := c.Connect(); err != ErrBusy {
		t.Fatalf("second Connect: %v", err)
	}
	start := time.Now()
	c.Close(0, "")
	if e := ev.expect(EventClosed); e.Clean || e.Code != 1006 {
		t.Fatalf("closed %+v", e)
	}
	waitRun(t, c)
	if time.Since(start) > 5*time.Second || c.State() != StateClosed {
		t.Fatalf("state %d after %v", c.State(), time.Since(start))
	}
	ev.none(20 * time.Millisecond)
	// A closed Conn may connect again.
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	if e := ev.expect(EventConnectionError); e.Attempt != 1 {
		t.Fatalf("attempt %d", e.Attempt)
	}
}

func TestAbandonWhileDialing(t *testing.T) {
	srv, accepted := newHoldingServer(t)
	c, ev := dialTest(t, srv.url)
	waitAccepted(t, accepted) // the handshake is under way
	c.Abandon()
	waitRun(t, c)
	ev.none(50 * time.Millisecond)
	if c.State() != StateClosed {
		t.Fatalf("state %d", c.State())
	}
}

// newHoldingServer starts a test server that accepts connections and never
// answers them (until the test ends); it signals each accept on the channel.
func newHoldingServer(t *testing.T) (*server, <-chan struct{}) {
	hold := make(chan struct{})
	accepted := make(chan struct{}, 1)
	srv := newServer(t, func(nc net.Conn) {
		select {
		case accepted <- struct{}{}:
		default:
		}
		<-hold
	})
	t.Cleanup(func() { close(hold) })
	return srv, accepted
}

// waitAccepted waits for the test server to signal on accepted that it has
// a connection.
func waitAccepted(t *testing.T, accepted <-chan struct{}) {
	t.Helper()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the server accepted no connection within 5s")
	}
}

// endless is a reader that yields "aaaa..." forever, counting what it gave.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	e.n += len(p)
	return len(p), nil
}

// padHead returns a 101 response head for req whose status and header lines
// (line ends not counted) take exactly size bytes, with extra header lines
// X-N: v before the padding header.
func padHead(req *http.Request, extra, size int) string {
	head := okHead(req)
	for i := 0; i < extra; i++ {
		head += fmt.Sprintf("X-%d: v\r\n", i)
	}
	used := len(strings.ReplaceAll(head, "\r\n", "")) + len("X-Pad: ")
	return head + "X-Pad: " + strings.Repeat("p", size-used) + "\r\n\r\n"
}

// The response head is bounded like a request head (32 KiB, 100 header
// lines): an endless header line fails at once after reading little more
// than the limit, instead of buffering until connect_timeout.
func TestHandshakeResponseLimits(t *testing.T) {
	t.Run("endless header line, read bounded", func(t *testing.T) {
		src := &endless{}
		head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Endless: "
		// At most 64 MiB, so that a regression fails instead of eating memory.
		reason, _, _ := handshakeOutcomeFrom(io.MultiReader(strings.NewReader(head), io.LimitReader(src, 64<<20)))
		if reason != "HS: response headers exceed 32768 bytes" {
			t.Fatalf("reason %q", reason)
		}
		if src.n > maxResponseHeaderBytes+16<<10 {
			t.Fatalf("read %d bytes of the endless line", src.n)
		}
	})
	for _, tc := range []struct {
		name string
		resp func(*http.Request) string
		want string // "" = established
	}{
		{"endless header line", nil, "HS: response headers exceed 32768 bytes"},
		{"head of 32768 bytes", func(r *http.Request) string { return padHead(r, 0, 32768) }, ""},
		{"head of 32767 bytes", func(r *http.Request) string { return padHead(r, 0, 32767) }, ""},
		{"head of 32769 bytes", func(r *http.Request) string { return padHead(r, 0, 32769) }, "HS: response headers exceed 32768 bytes"},
		{"100 header lines", func(r *http.Request) string { return padHead(r, 100-4, 1000) }, ""},
		{"101 header lines", func(r *http.Request) string { return padHead(r, 101-4, 1000) }, "HS: response has more than 100 header lines"},
		{"1000 header lines", func(r *http.Request) string { return padHead(r, 1000, 30000) }, "HS: response has more than 100 header lines"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			sent := make(chan int64, 1)
			srv := newServer(t, func(nc net.Conn) {
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if tc.resp != nil {
					io.WriteString(nc, tc.resp(req))
					echoFrames(nc, br, nil)
					return
				}
				// An endless header line, until the client hangs up (at
				// most 256 MiB: the test fails long before).
				io.WriteString(nc, strings.TrimSuffix(okHead(req), "\r\n")+"\r\nX-Endless: ")
				n, _ := io.Copy(nc, io.LimitReader(&endless{}, 256<<20))
				sent <- n
			})
			start := time.Now()
			c, ev := dialTest(t, srv.url, "connect_timeout", "20000")
			if tc.want == "" {
				ev.expect(EventEstablished)
				c.Send(OpText, []byte("after a big head"))
				if e := ev.expect(EventReceive); string(e.Data) != "after a big head" {
					t.Fatalf("echo %q", e.Data)
				}
				return
			}
			e := ev.expect(EventConnectionError)
			if string(e.Data) != tc.want {
				t.Fatalf("reason %q, want %q", e.Data, tc.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("failed after %v (connect_timeout is 20 s)", d)
			}
			if tc.resp == nil {
				select {
				case n := <-sent:
					if n >= 256<<20 {
						t.Fatalf("the server wrote all %d bytes", n)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the server is still writing: the client did not hang up")
				}
			}
		})
	}
}
