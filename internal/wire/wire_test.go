package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// frame builds bytes from space separated hex groups, for readable cases.
func frame(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var cases = []struct {
	name string
	msg  Msg
	wire string // with length prefix
}{
	{"hello", Msg{Kind: KindHello, Op: Version, Args: []Value{Int(4242), Int(1)}},
		"00000018 04 07 00000000 01 0000000000001092 01 0000000000000001"},
	{"log line", Msg{Kind: KindLog, ID: 256, Args: []Value{String("hi")}},
		"0000000d 05 00 00000100 02 00000002 6869"},
	{"conn fail", Msg{Kind: KindCall, Op: uint8(OpConnFail), Args: []Value{Int(9)}},
		"0000000f 01 1c 00000000 01 0000000000000009"},
	{"fail pending event", Msg{Kind: KindEvent, Op: EventFailPending, Args: []Value{Int(1), Int(9), Int(0), Int(0), Int(1002), Int(0), Int(2), String("bad")}},
		"0000004d 03 40 00000000 01 0000000000000001 01 0000000000000009 01 0000000000000000 01 0000000000000000" +
			" 01 00000000000003ea 01 0000000000000000 01 0000000000000002 02 00000003 626164"},
	{"call no args", Msg{Kind: KindCall, Op: uint8(OpCheck), ID: 7},
		"00000006 01 06 00000007"},
	{"conn new", Msg{Kind: KindCall, Op: uint8(OpConnNew), ID: 0x01020304, Args: []Value{Int(1), Int(2), String("ws://h/")}},
		"00000024 01 04 01020304 01 0000000000000001 01 0000000000000002 02 00000007 77733a2f2f682f"},
	{"server new", Msg{Kind: KindCall, Op: uint8(OpServerNew), ID: 3, Args: []Value{Int(1), Int(2)}},
		"00000018 01 0f 00000003 01 0000000000000001 01 0000000000000002"},
	{"server set option", Msg{Kind: KindCall, Op: uint8(OpServerSetOption), ID: 4, Args: []Value{Int(2), String("port"), String("0")}},
		"0000001e 01 10 00000004 01 0000000000000002 02 00000004 706f7274 02 00000001 30"},
	{"server listen reply", Msg{Kind: KindReply, Op: uint8(OpServerListen), ID: 5, Args: []Value{Int(0), String(""), Int(8080)}},
		"0000001d 02 11 00000005 01 0000000000000000 02 00000000 01 0000000000001f90"},
	{"server port", Msg{Kind: KindCall, Op: uint8(OpServerPort), ID: 6, Args: []Value{Int(2)}},
		"0000000f 01 12 00000006 01 0000000000000002"},
	{"broadcast", Msg{Kind: KindCall, Op: uint8(OpBroadcast), ID: 7, Args: []Value{Int(2), Int(1), String("hi")}},
		"0000001f 01 13 00000007 01 0000000000000002 01 0000000000000001 02 00000002 6869"},
	{"server clients reply", Msg{Kind: KindReply, Op: uint8(OpServerClients), ID: 8,
		Args: []Value{Int(0), String(""), Bytes([]byte{0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 2})}},
		"00000029 02 14 00000008 01 0000000000000000 02 00000000 02 00000010 0001000000000001 0001000000000002"},
	{"server close", Msg{Kind: KindCall, Op: uint8(OpServerClose), ID: 9, Args: []Value{Int(2), Int(1001), String("bye")}},
		"00000020 01 15 00000009 01 0000000000000002 01 00000000000003e9 02 00000003 627965"},
	{"server free", Msg{Kind: KindCall, Op: uint8(OpServerFree), Args: []Value{Int(2)}},
		"0000000f 01 16 00000000 01 0000000000000002"},
	{"server established event", Msg{Kind: KindEvent, Op: 0, Args: []Value{Int(1), Int(AcceptedTagBase + 1), Int(0), Int(0),
		Int(2), Int(1), Int(2), String("/x")}},
		"0000004c 03 00 00000000" +
			" 01 0000000000000001 01 0001000000000001 01 0000000000000000 01 0000000000000000" +
			" 01 0000000000000002 01 0000000000000001 01 0000000000000002 02 00000002 2f78"},
	{"accept base", Msg{Kind: KindCall, Op: uint8(OpAcceptBase), Args: []Value{Int(AcceptedTagBase + 2*AcceptedTagSpan)}},
		"0000000f 01 17 00000000 01 0001000200000000"},
	{"negative status", Msg{Kind: KindReply, Op: uint8(OpSend), ID: 9, Args: []Value{Int(-2), String("")}},
		"00000014 02 08 00000009 01 fffffffffffffffe 02 00000000"},
	{"event", Msg{Kind: KindEvent, Op: 8, Args: []Value{Int(1), Int(5), Int(2), Int(0), Int(0), Int(0), Int(2), Bytes([]byte{0, 1, 2})}},
		"0000004d 03 08 00000000" +
			" 01 0000000000000001 01 0000000000000005 01 0000000000000002 01 0000000000000000" +
			" 01 0000000000000000 01 0000000000000000 01 0000000000000002 02 00000003 000102"},
}

func TestAppendDecode(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := frame(t, c.wire)
			got, err := c.msg.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Append:\n got %x\nwant %x", got, want)
			}
			var buf bytes.Buffer
			if err := WriteMsg(&buf, &c.msg); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("WriteMsg:\n got %x\nwant %x", buf.Bytes(), want)
			}
			m, err := ReadMsg(bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			if !equal(m, &c.msg) {
				t.Fatalf("ReadMsg = %+v, want %+v", m, c.msg)
			}
		})
	}
}

func equal(a, b *Msg) bool {
	if a.Kind != b.Kind || a.Op != b.Op || a.ID != b.ID || len(a.Args) != len(b.Args) {
		return false
	}
	for i := range a.Args {
		x, y := a.Args[i], b.Args[i]
		if x.IsBytes != y.IsBytes || x.Int != y.Int || !bytes.Equal(x.Bytes, y.Bytes) {
			return false
		}
	}
	return true
}

func TestBigValue(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (16<<20)/16+3) // 16 MiB + 48
	m := &Msg{Kind: KindEvent, Op: 8, Args: []Value{Int(1), Int(2), Int(1), Int(0), Int(0), Int(0), Int(2), Bytes(data)}}
	var buf bytes.Buffer
	if err := WriteMsg(&buf, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMsg(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got, m) {
		t.Fatal("16 MiB event does not round-trip")
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes left after the frame", buf.Len())
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		body string
		err  error
	}{
		{"01 04 000000", ErrShort},
		{"09 04 00000001", ErrBadFrame},
		{"01 04 00000001 03", ErrTag},
		{"01 04 00000001 01 00000000", ErrShort},
		{"01 04 00000001 02 00000005 6869", ErrShort},
		{"01 04 00000001 02 ffffffff", ErrShort},
	} {
		_, err := Decode(frame(t, c.body))
		if !errors.Is(err, c.err) {
			t.Errorf("Decode(%s) = %v, want %v", c.body, err, c.err)
		}
	}
	if _, err := ReadMsg(bytes.NewReader(frame(t, "40000001"))); !errors.Is(err, ErrTooBig) {
		t.Errorf("ReadMsg(huge prefix) = %v, want ErrTooBig", err)
	}
	if _, err := ReadMsg(bytes.NewReader(frame(t, "00000010 01 04"))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadMsg(cut body) = %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := ReadMsg(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("ReadMsg(empty) = %v, want io.EOF", err)
	}
}

func TestArgs(t *testing.T) {
	m := &Msg{Kind: KindCall, Op: uint8(OpSetOption), ID: 1, Args: []Value{Int(3), String("origin"), String("x")}}
	a := m.Reader()
	c, name, val := a.Uint(), a.String(), a.String()
	if err := a.Err(); err != nil || c != 3 || name != "origin" || val != "x" {
		t.Fatalf("got %d %q %q %v", c, name, val, err)
	}
	a = m.Reader()
	a.Bytes() // wrong type
	if err := a.Err(); !errors.Is(err, ErrArgs) {
		t.Fatalf("wrong type: %v", err)
	}
	a = m.Reader()
	a.Int()
	if err := a.Err(); !errors.Is(err, ErrArgs) {
		t.Fatalf("extra values: %v", err)
	}
	a = m.Reader()
	a.Int()
	a.Bytes()
	a.Bytes()
	a.Int()
	if err := a.Err(); !errors.Is(err, ErrArgs) {
		t.Fatalf("missing value: %v", err)
	}
}

// FuzzDecode feeds untrusted bytes to the decoder: it must not panic, and
// whatever it accepts must encode back to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, c := range cases {
		f.Add(frame(f, c.wire)[4:])
	}
	f.Add([]byte{1, 4, 0, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			return
		}
		enc, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc[4:], body) {
			t.Fatalf("re-encoded %x, decoded from %x", enc[4:], body)
		}
		m2, err := ReadMsg(bytes.NewReader(enc))
		if err != nil || !reflect.DeepEqual(len(m2.Args), len(m.Args)) || !equal(m2, m) {
			t.Fatalf("ReadMsg of re-encoded frame: %v", err)
		}
	})
}
