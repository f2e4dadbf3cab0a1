package wsengine

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

var urlCases = []struct {
	url, addr, path string
	ok              bool
}{
	{"ws://example.com", "example.com:80", "/", true},
	{"wss://example.com", "example.com:443", "/", true},
	{"WS://Example.com:8080/a/b?c=d", "Example.com:8080", "/a/b", true},
	{"ws://[::1]:9000/", "[::1]:9000", "/", true},
	{"wss://[fe80::1]/x", "[fe80::1]:443", "/x", true},
	{"ws://127.0.0.1:1/", "127.0.0.1:1", "/", true},
	{"http://example.com/", "", "", false},
	{"ws://", "", "", false},
	{"ws:///path", "", "", false},
	{"ws://host:0/", "", "", false},
	{"ws://host:65536/", "", "", false},
	{"ws://host:abc/", "", "", false},
	{"ws://host:/", "", "", false},
	{"ws://host/#frag", "", "", false},
	{"ws://user:pw@host/", "", "", false},
	{"ws://ho st/", "", "", false},
	{"example.com", "", "", false},
	{"", "", "", false},
}

func TestParseTarget(t *testing.T) {
	for _, tc := range urlCases {
		tg, err := parseTarget(tc.url)
		if !tc.ok {
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Name != "url" {
				t.Errorf("%q: got %v, want an url error", tc.url, err)
			}
			continue
		}
		if err != nil || tg.addr != tc.addr || tg.u.Path != tc.path {
			t.Errorf("%q: got %+v %v", tc.url, tg, err)
		}
	}
	if _, err := NewConn("ftp://x/", nil); err == nil || !strings.Contains(err.Error(), "ws://") {
		t.Errorf("NewConn: %v", err)
	}
}

func TestSetOption(t *testing.T) {
	good := [][2]string{
		{"allow_self_signed", "1"}, {"max_message_size", "1024"}, {"max_send_queue", "1"}, {"compression", "0"},
		{"protocols", "a,b"}, {"protocols", ""}, {"header", "X-A: b c"}, {"origin", "http://x"},
		{"connect_timeout", "100"}, {"ping_interval", "0"}, {"pong_timeout", "5"}, {"close_timeout", "0"},
		{"reconnect", "100,1000,2,0.5,3"}, {"reconnect", ""}, {"proxy", "http://u:p@h:3128"}, {"proxy", "env"},
		{"proxy", ""}, {"max_redirects", "10"}, {"pong_events", "1"}, {"writeable_events", "0"},
	}
	bad := [][2]string{
		{"nope", "1"}, {"allow_self_signed", "yes"}, {"max_message_size", "0"}, {"max_message_size", "-1"},
		{"max_message_size", "1x"}, {"max_send_queue", "99999999999"}, {"protocols", "a b"}, {"protocols", "a,,b"},
		{"header", "X-A b"}, {"header", "X A: b"}, {"header", "X-A: b\r\nX-B: c"}, {"header", "X-A: b\x00"},
		{"header", ": b"}, {"header", "Host: x"}, {"header", "Sec-WebSocket-Key: x"}, {"origin", "a\nb"},
		{"connect_timeout", "0"}, {"ping_interval", "-5"}, {"reconnect", "1,2,3"}, {"reconnect", "5,1,2,0,0"},
		{"reconnect", "1,2,0.5,0,0"}, {"reconnect", "1,2,2,1.5,0"}, {"reconnect", "1,2,2,0,-1"},
		{"proxy", "socks5://h:1"}, {"proxy", "http://h:99999"}, {"proxy", "h:1"}, {"max_redirects", "11"},
		{"pong_events", ""},
	}
	for _, kv := range good {
		c, _ := NewConn("ws://h/", nil)
		if err := c.SetOption(kv[0], kv[1]); err != nil {
			t.Errorf("%s=%q: %v", kv[0], kv[1], err)
		}
	}
	for _, kv := range bad {
		c, _ := NewConn("ws://h/", nil)
		err := c.SetOption(kv[0], kv[1])
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Name != kv[0] {
			t.Errorf("%s=%q: got %v, want an OptionError naming it", kv[0], kv[1], err)
		}
	}
	b, _ := parseReconnect("100,1000,2,0,0")
	for n, want := range map[int]int64{1: 100, 2: 200, 4: 800, 5: 1000, 60: 1000} {
		if got := b.delay(n, 0.5).Milliseconds(); got != want {
			t.Errorf("delay(%d) = %d, want %d", n, got, want)
		}
	}
}

var headerCases = []struct {
	name  string
	frame []byte
	st    frameState
	code  StatusCode // 0 = valid
}{
	{"text", bits("1 000 0001 0 0000011"), frameState{maxSize: 10}, 0},
	{"rsv1 no ext", bits("1 100 0001 0 0000011"), frameState{maxSize: 10}, 1002},
	{"rsv1 deflate", bits("1 100 0001 0 0000011"), frameState{maxSize: 10, deflate: true}, 0},
	{"rsv1 continuation", bits("1 100 0000 0 0000011"), frameState{maxSize: 10, deflate: true, inMessage: true}, 1002},
	{"rsv1 ping", bits("1 100 1001 0 0000000"), frameState{maxSize: 10, deflate: true}, 1002},
	{"rsv2", bits("1 010 0010 0 0000000"), frameState{maxSize: 10}, 1002},
	{"opcode 3", bits("1 000 0011 0 0000000"), frameState{maxSize: 10}, 1002},
	{"opcode 11", bits("1 000 1011 0 0000000"), frameState{maxSize: 10}, 1002},
	{"masked", bits("1 000 0001 1 0000000 00000000 00000000 00000000 00000000"), frameState{maxSize: 10}, 1002},
	{"ping 125", bits("1 000 1001 0 1111101"), frameState{maxSize: 10}, 0},
	{"ping 126", bits("1 000 1001 0 1111110 00000000 01111110"), frameState{maxSize: 10}, 1002},
	{"fragmented ping", bits("0 000 1001 0 0000000"), frameState{maxSize: 10}, 1002},
	{"close 1", bits("1 000 1000 0 0000001"), frameState{maxSize: 10}, 1002},
	{"lone continuation", bits("1 000 0000 0 0000000"), frameState{maxSize: 10}, 1002},
	{"continuation", bits("1 000 0000 0 0000001"), frameState{maxSize: 10, inMessage: true, msgLen: 9}, 0},
	{"continuation over", bits("1 000 0000 0 0000010"), frameState{maxSize: 10, inMessage: true, msgLen: 9}, 1009},
	{"binary in message", bits("1 000 0010 0 0000000"), frameState{maxSize: 10, inMessage: true}, 1002},
	{"ping in message", bits("1 000 1001 0 0000000"), frameState{maxSize: 10, inMessage: true}, 0},
	{"16-bit length", bits("1 000 0010 0 1111110 11111111 11111111"), frameState{maxSize: 65535}, 0},
	{"16-bit over", bits("1 000 0010 0 1111110 11111111 11111111"), frameState{maxSize: 65534}, 1009},
	{"64-bit length", bits("1 000 0010 0 1111111 00000000 00000000 00000000 00000000 00000001 00000000 00000000 00000000"), frameState{maxSize: 16 << 20}, 0},
	{"64-bit over", bits("1 000 0010 0 1111111 00000000 00000000 00000000 00000000 00000001 00000000 00000000 00000001"), frameState{maxSize: 16 << 20}, 1009},
	{"64-bit msb", bits("1 000 0010 0 1111111 10000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000"), frameState{maxSize: 10}, 1002},
}

// headerCode runs the header reader and checks as the session does.
func headerCode(b []byte, st frameState) (StatusCode, bool) {
	h, err := ws.ReadHeaderBuffer(bytes.NewReader(b), make([]byte, 2, ws.MaxHeaderSize-2))
	if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
		return 1002, true
	}
	if err != nil {
		return 0, false
	}
	if ce := checkHeader(h, &st); ce != nil {
		return ce.Code, true
	}
	return 0, true
}

func TestCheckHeader(t *testing.T) {
	for _, tc := range headerCases {
		if code, ok := headerCode(tc.frame, tc.st); !ok || code != tc.code {
			t.Errorf("%s: code %d (read ok %v), want %d", tc.name, code, ok, tc.code)
		}
	}
}

var closeCases = []struct {
	p      []byte
	code   StatusCode
	reason string
	fail   StatusCode
}{
	{nil, 1005, "", 0},
	{[]byte{3}, 0, "", 1002},
	{[]byte{0x03, 0xe8}, 1000, "", 0},
	{[]byte("\x03\xe8bye"), 1000, "bye", 0},
	{[]byte{0x03, 0xf3}, 1011, "", 0},
	{[]byte{0x03, 0xf6}, 1014, "", 0},
	{[]byte{0x03, 0xe7}, 0, "", 1002},
	{[]byte{0x03, 0xec}, 0, "", 1002},
	{[]byte{0x03, 0xed}, 0, "", 1002},
	{[]byte{0x03, 0xee}, 0, "", 1002},
	{[]byte{0x03, 0xf7}, 0, "", 1002},
	{[]byte{0x03, 0xf8}, 0, "", 1002},
	{[]byte{0x0b, 0xb7}, 0, "", 1002},
	{[]byte{0x0b, 0xb8}, 3000, "", 0},
	{[]byte{0x13, 0x87}, 4999, "", 0},
	{[]byte{0x13, 0x88}, 0, "", 1002},
	{[]byte{0x00, 0x00}, 0, "", 1002},
	{[]byte("\x03\xe8\xce\xba\xe1\xbd\xb9"), 1000, "\u03ba\u1f79", 0},
	{[]byte("\x03\xe8\xce"), 0, "", 1007},
	{[]byte("\x03\xe8\xed\xa0\x80"), 0, "", 1007},
}

func TestParseClosePayload(t *testing.T) {
	for _, tc := range closeCases {
		code, reason, ce := parseClosePayload(tc.p)
		var fail StatusCode
		if ce != nil {
			fail = ce.Code
		}
		if fail != tc.fail || (fail == 0 && (code != tc.code || reason != tc.reason)) {
			t.Errorf("%x: got %d %q fail %d", tc.p, code, reason, fail)
		}
	}
}

var utf8Cases = []string{
	"", "hello", "κόσμε", "\xf0\x9f\x98\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf",
	"\xff", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
	"\xf5\x80\x80\x80", "\xce", "\xe2\x82", "a\x80", "\xf0\x9f\x98", strings.Repeat("ü", 100) + "\xff",
}

func TestUTF8Validator(t *testing.T) {
	for _, s := range utf8Cases {
		want := utf8.ValidString(s)
		for cut := 0; cut <= len(s); cut++ {
			for cut2 := cut; cut2 <= len(s); cut2++ {
				var v utf8Validator
				v.Write([]byte(s[:cut]))
				v.Write([]byte(s[cut:cut2]))
				v.Write([]byte(s[cut2:]))
				if v.Complete() != want {
					t.Fatalf("%q split %d,%d: %v, want %v", s, cut, cut2, v.Complete(), want)
				}
			}
		}
	}
	// The validator reports the error at the first bad byte, before the end.
	var v utf8Validator
	if v.Write([]byte("ok\xf4\x90")) {
		t.Fatal("\\xf4\\x90 accepted as a prefix")
	}
	v.Reset()
	if !v.Write([]byte("ok\xf4\x8f")) || v.Complete() {
		t.Fatal("valid prefix refused or reported complete")
	}
}

var handshakeCases = []string{
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\n\r\n",
	"HTTP/1.1 302 Found\r\nLocation: ws://a/b\r\n\r\n",
	"HTTP/1.0 101 OK\r\n\r\n",
	"HTTP/1.1 101\r\nUpgrade websocket\r\n\r\n",
	"garbage",
	"",
}

// fakeConn answers Upgrade's request with a canned response.
type fakeConn struct{ r io.Reader }

func (f *fakeConn) Read(p []byte) (int, error)  { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error) { return len(p), nil }

// handshakeOutcome runs the real handshake against resp and maps the result.
func handshakeOutcome(resp []byte) (reason, location string, err error) {
	return handshakeOutcomeFrom(bytes.NewReader(resp))
}

func handshakeOutcomeFrom(resp io.Reader) (reason, location string, err error) {
	tg, _ := parseTarget("ws://h/")
	rec := &recorder{rw: &fakeConn{r: resp}}
	d := ws.Dialer{Protocols: []string{"chat"}}
	_, _, err = d.Upgrade(rec, tg.u)
	if err == nil {
		return "", "", nil
	}
	reason, location = handshakeReason(err, rec.in.Bytes())
	return reason, location, err
}

func TestHandshakeReason(t *testing.T) {
	want := []string{"HS: Accept hash wrong", "HS: ws upgrade response not 101 (status 404)",
		"HS: ws upgrade response not 101 (status 302)", "HS: ws upgrade response not 101 (not HTTP/1.1)",
		"HS: malformed response", "", "Peer hung up"}
	for i, resp := range handshakeCases {
		reason, _, _ := handshakeOutcome([]byte(resp))
		if want[i] != "" && reason != want[i] {
			t.Errorf("%q: %q, want %q", resp, reason, want[i])
		}
	}
	if _, loc, _ := handshakeOutcome([]byte(handshakeCases[2])); loc != "ws://a/b" {
		t.Errorf("location %q", loc)
	}
	r, err := parseResponseHead([]byte("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"))
	if err != nil || r.status != 200 || r.header.Get("A") != "b" {
		t.Errorf("parseResponseHead: %+v %v", r, err)
	}
}

func FuzzFrameHeader(f *testing.F) {
	for _, tc := range headerCases {
		f.Add(tc.frame, tc.st.deflate, tc.st.inMessage, int64(tc.st.msgLen), tc.st.maxSize)
	}
	f.Fuzz(func(t *testing.T, b []byte, deflate, inMessage bool, msgLen, maxSize int64) {
		if maxSize < 1 || msgLen < 0 || msgLen > maxSize {
			return
		}
		st := frameState{deflate: deflate, inMessage: inMessage, msgLen: msgLen, maxSize: maxSize}
		h, err := ws.ReadHeaderBuffer(bytes.NewReader(b), make([]byte, 2, ws.MaxHeaderSize-2))
		if err != nil {
			return
		}
		ce := checkHeader(h, &st)
		if ce == nil {
			// Whatever passes is a legal server frame within the limits.
			if h.Masked || h.OpCode.IsReserved() || h.Rsv&3 != 0 ||
				(h.OpCode.IsControl() && (!h.Fin || h.Length > 125)) ||
				(h.OpCode.IsData() && h.Length > maxSize) {
				t.Fatalf("accepted %+v", h)
			}
		} else if ce.Code != 1002 && ce.Code != 1009 {
			t.Fatalf("code %d", ce.Code)
		}
	})
}

func FuzzClosePayload(f *testing.F) {
	for _, tc := range closeCases {
		f.Add(tc.p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, ce := parseClosePayload(p)
		if ce != nil {
			if ce.Code != 1002 && ce.Code != 1007 {
				t.Fatalf("fail code %d", ce.Code)
			}
			return
		}
		if len(p) == 0 {
			if code != 1005 {
				t.Fatal("empty payload not 1005")
			}
			return
		}
		if !ValidCloseCode(code) || !utf8.ValidString(reason) || len(p) > 125 {
			t.Fatalf("accepted %d %q", code, reason)
		}
		// The echo built from it round-trips.
		if c2, r2, ce2 := parseClosePayload(closePayload(code, reason)); ce2 != nil || c2 != code || r2 != reason {
			t.Fatalf("round trip %d %q", c2, r2)
		}
	})
}

func FuzzHandshakeResponse(f *testing.F) {
	for _, s := range handshakeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, resp []byte) {
		reason, _, err := handshakeOutcome(resp)
		if err != nil && reason == "" {
			t.Fatalf("empty reason for %v", err)
		}
		parseResponseHead(resp)
	})
}

func FuzzUTF8(f *testing.F) {
	for _, s := range utf8Cases {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		k := int(cut)
		if k > len(b) {
			k = len(b)
		}
		var v utf8Validator
		v.Write(b[:k])
		v.Write(b[k:])
		if v.Complete() != utf8.Valid(b) {
			t.Fatalf("%q cut %d: %v", b, k, v.Complete())
		}
	})
}

func BenchmarkUTF8Validator(b *testing.B) {
	for _, tc := range []struct{ name, unit string }{{"ascii", "hello world "}, {"greek", "κόσμε "}, {"emoji", "\U0001F600 "}} {
		p := []byte(strings.Repeat(tc.unit, (64<<10)/len(tc.unit)))
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for i := 0; i < b.N; i++ {
				var v utf8Validator
				// Odd split points put code points across the pieces.
				v.Write(p[:len(p)/3+1])
				v.Write(p[len(p)/3+1:])
				if !v.Complete() {
					b.Fatal("invalid")
				}
			}
		})
	}
}
