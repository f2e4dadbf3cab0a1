package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/verawebsockets/verawebsockets/internal/wire"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// TestGateBits checks that the protocol's gate bits (proxy/wire.h, through
// TestHeaderMatchesGo) are the engine's.
func TestGateBits(t *testing.T) {
	if wire.GateOther != wsengine.GateOther || wire.GateBusy != wsengine.GateBusy || wire.GateGenShift != wsengine.GateGenShift {
		t.Fatalf("wire gate bits %d %d %d, wsengine %d %d %d", wire.GateOther, wire.GateBusy, wire.GateGenShift,
			wsengine.GateOther, wsengine.GateBusy, wsengine.GateGenShift)
	}
}

// strictServer echoes messages and, from a client's first binary message
// on, pings it every millisecond; it checks every frame a client sends: masked, final, no RSV bits, a known
// opcode, control payloads of at most 125 bytes, text in valid UTF-8. The
// first bad frame is recorded (bad) and fails the connection (1002).
func strictServer(t *testing.T) (url string, bad func() string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		first string
		wg    sync.WaitGroup
	)
	fail := func(nc net.Conn, format string, a ...any) {
		mu.Lock()
		if first == "" {
			first = fmt.Sprintf(format, a...)
		}
		mu.Unlock()
		nc.Write(ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusProtocolError, ""))))
	}
	serve := func(nc net.Conn) {
		defer nc.Close()
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		var wmu sync.Mutex
		write := func(f ws.Frame) {
			wmu.Lock()
			ws.WriteFrame(nc, f)
			wmu.Unlock()
		}
		stop, ping := make(chan struct{}), make(chan struct{})
		pinging := false
		defer close(stop)
		go func() {
			select {
			case <-stop:
				return
			case <-ping:
			}
			tk := time.NewTicker(time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					write(ws.NewPingFrame([]byte("s")))
				}
			}
		}()
		br := bufio.NewReader(nc)
		for {
			h, err := ws.ReadHeader(br)
			if err != nil || h.Length > 1<<20 {
				return
			}
			f := ws.Frame{Header: h, Payload: make([]byte, h.Length)}
			if _, err := io.ReadFull(br, f.Payload); err != nil {
				return
			}
			switch {
			case !h.Masked:
				fail(nc, "unmasked frame, opcode %d", h.OpCode)
				return
			case !h.Fin || h.Rsv != 0:
				fail(nc, "frame fin=%v rsv=%d", h.Fin, h.Rsv)
				return
			case h.OpCode.IsControl() && h.Length > 125:
				fail(nc, "control frame of %d bytes", h.Length)
				return
			}
			f = ws.UnmaskFrameInPlace(f)
			switch h.OpCode {
			case ws.OpText:
				if !utf8.Valid(f.Payload) {
					fail(nc, "text not UTF-8: %q", f.Payload[:min(len(f.Payload), 16)])
					return
				}
				write(ws.NewTextFrame(f.Payload))
			case ws.OpBinary:
				write(ws.NewBinaryFrame(f.Payload))
				if !pinging {
					close(ping)
					pinging = true
				}
			case ws.OpPing:
				write(ws.NewPongFrame(f.Payload))
			case ws.OpPong:
			case ws.OpClose:
				write(ws.NewCloseFrame(f.Payload))
				return
			default:
				fail(nc, "opcode %d", h.OpCode)
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(nc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "ws://" + ln.Addr().String() + "/strict", func() string {
		mu.Lock()
		defer mu.Unlock()
		return first
	}
}

// TestSharedWrites runs proxy/testdata/share_test.c: small messages written by
// the proxy itself and the helper's own frames (keepalive, pongs, large
// messages, pings) on one socket, to a server that fails the connection on
// any bad frame; that the sends did not go through the helper (the bytes it
// read), and with VWS_SHARE=0 that they did; with VWS_SHARE=cut, frames the
// proxy begins and the helper ends.
func TestSharedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a C program")
	}
	dir, prog := buildProxy(t, "share_test")
	helper := buildHelper(t, dir)
	for _, mode := range []string{"shared", "off", "cut"} {
		t.Run(mode, func(t *testing.T) {
			url, bad := strictServer(t)
			env := []string{"VWS_HELPER=" + helper, "VWS_TEST_URL=" + url}
			switch mode {
			case "off":
				env = append(env, "VWS_SHARE=0")
			case "cut":
				env = append(env, "VWS_SHARE=cut")
			}
			_, _, err := runProgram(t, 2*time.Minute, prog, env, mode)
			if b := bad(); b != "" {
				t.Errorf("the server saw a bad frame: %s", b)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
