package hub

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A plain HTTP request to a server with http_handler: EventHTTP with a
// request handle of its own, answered with HTTPRespond (once).
func TestHTTPRequest(t *testing.T) {
	ctx, _ := newTestContext(t)
	sid, port := listenOn(t, ctx, "port", "0", "http_handler", "1")
	reply := make(chan string, 1)
	go func() {
		nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			reply <- err.Error()
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		nc.Write([]byte("PUT /a?b=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"))
		b, _ := io.ReadAll(bufio.NewReader(nc))
		reply <- string(b)
	}()
	ev := nextAny(t, ctx)
	if ev.Type != EventHTTP || !strings.HasPrefix(string(ev.Data), "PUT /a?b=1 127.0.0.1:") ||
		!strings.HasSuffix(string(ev.Data), "\nHost: h\nContent-Length: 2\n\nhi") {
		t.Fatalf("event %+v %q", ev.Event, ev.Data)
	}
	if s, err := ConnServer(ev.Conn); s != sid || err != nil {
		t.Fatalf("ConnServer = %d, %v", s, err)
	}
	if n, _ := Active(ctx); n != 1 {
		t.Fatalf("active %d (a request is not a connection)", n)
	}
	if err := HTTPRespond(ev.Conn, 202, "X-A: b\r\nX-C: d\n", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	got := <-reply
	if !strings.HasPrefix(got, "HTTP/1.1 202 Accepted\r\nX-A: b\r\nX-C: d\r\n") || !strings.HasSuffix(got, "\r\n\r\nok") {
		t.Fatalf("reply %q", got)
	}
	if err := HTTPRespond(ev.Conn, 200, "", nil); Status(err) != EArg {
		t.Fatalf("second answer: %v", err)
	}
}
