package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

// miniClient is a tiny, non-validating WebSocket echo client with switchable
// bugs, to show that the judge fails what it must fail.
type miniClient struct {
	unmasked  bool
	fixedMask bool
	swapOp    bool // echo text as binary
	closeCode int  // answer every close with this code (0: echo)
	n         uint32
}

func (m *miniClient) frame(op byte, p []byte) []byte {
	b := []byte{0x80 | op}
	mbit := byte(0x80)
	if m.unmasked {
		mbit = 0
	}
	switch n := len(p); {
	case n <= 125:
		b = append(b, mbit|byte(n))
	case n <= 0xffff:
		b = append(b, mbit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if m.unmasked {
		return append(b, p...)
	}
	m.n++
	key := [4]byte{byte(m.n), byte(m.n >> 8), 0x5a, 0xa5}
	if m.fixedMask {
		key = [4]byte{1, 2, 3, 4}
	}
	b = append(b, key[:]...)
	for i, c := range p {
		b = append(b, c^key[i%4])
	}
	return b
}

func (m *miniClient) run(t *testing.T, addr, id string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "GET /case/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", id, addr, keyFor(id))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var msg []byte
	var msgOp byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		op, n := h[0]&0xf, uint64(h[1]&0x7f)
		switch n {
		case 126:
			var b [2]byte
			io.ReadFull(br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			io.ReadFull(br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		switch op {
		case cases.OpPing:
			nc.Write(m.frame(cases.OpPong, p))
		case cases.OpClose:
			if m.closeCode != 0 {
				p = cases.ClosePayload(m.closeCode, nil)
			}
			nc.Write(m.frame(cases.OpClose, p))
			io.Copy(io.Discard, br)
			return
		case cases.OpText, cases.OpBinary, cases.OpCont:
			if op != cases.OpCont {
				msgOp, msg = op, nil
			}
			msg = append(msg, p...)
			if h[0]&0x80 != 0 {
				o := msgOp
				if m.swapOp && o == cases.OpText {
					o = cases.OpBinary
				}
				nc.Write(m.frame(o, msg))
			}
		}
	}
}

var keyN int

func keyFor(id string) string {
	keyN++
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%-10s%06d", id, keyN)))
}

func TestJudge(t *testing.T) {
	s := &server{byID: map[string]*cases.Case{}, results: map[string]result{}, keys: map[string]bool{}}
	s.all = cases.Cases()
	for i := range s.all {
		s.byID[s.all[i].ID] = &s.all[i]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(nc)
		}
	}()
	tests := []struct {
		name   string
		client miniClient
		id     string
		status string
		reason string
	}{
		{"good echo", miniClient{}, "1.1.2", "pass", ""},
		{"good 16-bit length", miniClient{}, "1.2.3", "pass", ""},
		{"good pings", miniClient{}, "2.10", "pass", ""},
		{"unmasked echo", miniClient{unmasked: true}, "1.1.2", "FAIL", "unmasked client frame"},
		{"same mask every frame", miniClient{fixedMask: true}, "x1.4", "FAIL", "reuses the mask key"},
		{"text echoed as binary", miniClient{swapOp: true}, "1.1.1", "FAIL", "expected the echo (opcode 1"},
		{"wrong close echo", miniClient{closeCode: 1001}, "7.7.3", "FAIL", "close echo"},
		{"no validation: RSV frame echoed", miniClient{}, "3.1", "FAIL", "expected a close frame (1002)"},
		{"no validation: invalid UTF-8 echoed", miniClient{}, "6.3.1", "FAIL", "expected a close frame (1007)"},
		{"no validation: no 1009", miniClient{}, "x9.2", "FAIL", "expected a close frame (1009)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.mu.Lock()
			delete(s.results, tt.id)
			s.mu.Unlock()
			tt.client.run(t, ln.Addr().String(), tt.id)
			var r result
			for i := 0; i < 100; i++ {
				s.mu.Lock()
				got, ok := s.results[tt.id]
				s.mu.Unlock()
				if ok {
					r = got
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if r.status != tt.status || !strings.Contains(r.reason, tt.reason) {
				t.Errorf("case %s: got %s %q, want %s containing %q", tt.id, r.status, r.reason, tt.status, tt.reason)
			}
		})
	}
}
