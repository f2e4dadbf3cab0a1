//lint:file-ignore SA1019 the peer reads whole client frames with ws.ReadFrame

package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// orderPeer is a raw WebSocket server for proxy/testdata/order_test.c. Per
// request path it sends a message and then a protocol violation:
//
//	/queued, /stalled  "Hello" and an RSV-2 frame at once
//	/signal            "Hi"; the violation (opcode 5) once the client sends a message
//
// and records the frames the client writes, up to its close frame.
type orderPeer struct {
	url string
	mu  sync.Mutex
	got map[string][]string // path -> "text Hello", "close 1002", ...
}

func newOrderPeer(t *testing.T) *orderPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &orderPeer{url: "ws://" + ln.Addr().String(), got: make(map[string][]string)}
	var wg sync.WaitGroup
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			conns = append(conns, nc)
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *orderPeer) serve(nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	var path string
	up := ws.Upgrader{OnRequest: func(uri []byte) error { path = string(uri); return nil }}
	if _, err := up.Upgrade(nc); err != nil {
		return
	}
	send := func(fin bool, rsv byte, op ws.OpCode, payload string) {
		b, _ := ws.CompileFrame(ws.Frame{Header: ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(payload))}, Payload: []byte(payload)})
		nc.Write(b)
	}
	if path == "/signal" {
		send(true, 0, ws.OpText, "Hi")
	} else {
		send(true, 0, ws.OpText, "Hello")
		send(true, 2, ws.OpText, "Hello")
	}
	br := bufio.NewReader(nc)
	for {
		f, err := ws.ReadFrame(br)
		if err != nil {
			return
		}
		f = ws.UnmaskFrameInPlace(f)
		what := fmt.Sprintf("op%d %s", f.Header.OpCode, f.Payload)
		switch f.Header.OpCode {
		case ws.OpText:
			what = "text " + string(f.Payload)
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			what = fmt.Sprintf("close %d", code)
		}
		p.mu.Lock()
		p.got[path] = append(p.got[path], what)
		p.mu.Unlock()
		if f.Header.OpCode == ws.OpClose {
			return
		}
		if path == "/signal" && f.Header.OpCode == ws.OpText {
			send(true, 0, 5, "")
		}
	}
}

// TestOOPFailInOrder runs proxy/testdata/order_test.c through the proxy and
// the helper: a protocol violation after a message waits in the proxy's queue
// until the caller comes back for events, so the echo its handler sent goes
// out before the close frame; with nothing of the connection waiting it fails
// at once; a caller that does not come back does not hold it open.
func TestOOPFailInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a C program")
	}
	dir, prog := buildProxy(t, "order_test")
	helper := buildHelper(t, dir)
	peer := newOrderPeer(t)
	if _, _, err := runProgram(t, time.Minute, prog, []string{"VWS_HELPER=" + helper, "VWS_TEST_URL=" + peer.url}); err != nil {
		t.Fatal(err)
	}
	peer.mu.Lock()
	defer peer.mu.Unlock()
	for path, want := range map[string]string{
		"/queued":  "text Hello, close 1002",
		"/signal":  "text go, close 1002",
		"/stalled": "close 1002",
	} {
		if got := strings.Join(peer.got[path], ", "); got != want {
			t.Errorf("%s: the client wrote %q, want %q", path, got, want)
		}
	}
}
