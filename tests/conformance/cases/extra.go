package cases

import (
	"fmt"
	"time"
)

// extra returns cases beyond Autobahn ("x" prefix): masked server frames,
// length-field edge cases, message size limits (1009), close edge cases, and
// what the client sends (fresh masks).
func extra() []Case {
	mask := [4]byte{1, 2, 3, 4}
	var many []byte
	var manyEcho []Step
	for i := 0; i < 20; i++ {
		p := []byte(fmt.Sprintf("message %02d", i))
		many = append(many, Text(string(p))...)
		manyEcho = append(manyEcho, Echo(OpText, p))
	}
	p125, p126 := Rep("a", 125), Rep("b", 126)
	p65535, p65536 := Rep("c", 65535), Rep("d", 65536)
	max1000 := []string{"max_message_size=1000"}
	cs := []Case{
		{ID: "x1.1", Group: "x", Desc: "Send a masked text frame (servers must not mask): 1002",
			Steps: script(W(Frame{Fin: true, Op: OpText, Payload: hello, Mask: &mask}.Bytes()), Fail(codeProtocol))},
		{ID: "x1.2", Group: "x", Desc: "Send a frame whose 64-bit length has the most significant bit set: 1002 (or 1009)",
			Steps: script(W(Frame{Fin: true, Op: OpBinary, DeclaredLen: 1 << 63}.Bytes()), Fail(codeProtocol, codeTooBig))},
		{ID: "x1.3", Group: "x", Desc: "Send messages of 125, 126, 65535, 65536 bytes back to back: echoes in order, minimal length encodings",
			Steps: normal(W(Fr(true, OpBinary, p125), Fr(true, OpBinary, p126), Fr(true, OpBinary, p65535), Fr(true, OpBinary, p65536)),
				Echo(OpBinary, p125), Echo(OpBinary, p126), Echo(OpBinary, p65535), Echo(OpBinary, p65536))},
		{ID: "x1.4", Group: "x", Desc: "Send 20 text messages in one write: 20 echoes in order, each with its own mask key",
			Steps: normal(append([]Step{W(many)}, manyEcho...)...)},
		{ID: "x1.5", Group: "x", Desc: "Send a 16-bit-length frame header byte by byte, 50 ms apart",
			Steps: normal(WChop(1, 50*time.Millisecond, Fr(true, OpText, p126)[:6]), W(Fr(true, OpText, p126)[6:]), Echo(OpText, p126))},
		{ID: "x1.6", Group: "x", Desc: "Send a 64-bit-length frame header byte by byte, 20 ms apart",
			Steps: normal(WChop(1, 20*time.Millisecond, Fr(true, OpBinary, p65536)[:12]), W(Fr(true, OpBinary, p65536)[12:]), Echo(OpBinary, p65536))},
		{ID: "x3.1", Group: "x", Desc: "Send a text frame with RSV1 then a text message in the same write: 1002, the message is not echoed",
			Steps: script(W(Frame{Fin: true, Rsv: 4, Op: OpText, Payload: hello}.Bytes(), Text("after the bad frame")), Fail(codeProtocol))},
		{ID: "x3.2", Group: "x", Desc: "Send a text frame with RSV2: 1002 within 1 s, before the server's next frame",
			Steps: script(W(Frame{Fin: true, Rsv: 2, Op: OpText, Payload: hello}.Bytes()), Fail(codeProtocol), W(Text("late")))},
		{ID: "x3.3", Group: "x", Desc: "Send a fragmented text message with RSV1 on the continuation frame: 1002",
			Steps: script(W(Fr(false, OpText, []byte("frag1")), Frame{Fin: true, Rsv: 4, Op: OpCont, Payload: []byte("frag2")}.Bytes()), Fail(codeProtocol))},
		{ID: "x3.4", Group: "x", Desc: "Send a ping with RSV1 (no extension negotiated): 1002, no pong",
			Steps: script(W(Frame{Fin: true, Rsv: 4, Op: OpPing, Payload: hello}.Bytes()), Fail(codeProtocol))},
		{ID: "x5.1", Group: "x", Desc: "Send a text message in 100 fragments of 1 byte",
			Steps: normal(W(Fragments(OpText, 0, Rep("0123456789", 100), 1)), Echo(OpText, Rep("0123456789", 100)))},
		{ID: "x5.2", Group: "x", Desc: "Send a fragmented binary message with an unsolicited pong between fragments: echo only",
			Steps: normal(W(Fr(false, OpBinary, []byte{1, 2}), Fr(true, OpPong, []byte("p")), Fr(true, OpCont, []byte{3, 4})), Echo(OpBinary, []byte{1, 2, 3, 4}))},
		{ID: "x5.3", Group: "x", Desc: "Send an empty text frame with FIN = 0, then an empty continuation with FIN = 1: empty echo",
			Steps: normal(W(Fr(false, OpText, nil), Fr(true, OpCont, nil)), Echo(OpText, []byte{}))},
		{ID: "x5.4", Group: "x", Desc: "Send a binary message, then a continuation frame with FIN = 1 on its own: echo, then 1002",
			Steps: script(W(Fr(true, OpBinary, []byte{9})), Echo(OpBinary, []byte{9}), W(Fr(true, OpCont, []byte{8})), Fail(codeProtocol))},
		{ID: "x6.1", Group: "x", Desc: "Send invalid UTF-8 in a binary message: echoed unchanged (binary is not validated)",
			Steps: normal(W(Fr(true, OpBinary, []byte("\xed\xa0\x80\xff"))), Echo(OpBinary, []byte("\xed\xa0\x80\xff")))},
		{ID: "x6.2", Group: "x", Desc: "Send a text message whose last fragment ends inside a code point: 1007",
			Steps: script(W(Fr(false, OpText, []byte("abc")), Fr(true, OpCont, []byte("\xe2\x82"))), Fail(codeInvalid))},
		{ID: "x6.3", Group: "x", Desc: "Send a valid 4-byte code point split over 4 fragments with pings between: pongs, echo",
			Steps: normal(W(Fr(false, OpText, []byte("\xf0")), Ping("1"), Fr(false, OpCont, []byte("\x9f")), Ping("2"),
				Fr(false, OpCont, []byte("\x98")), Fr(true, OpCont, []byte("\x80"))), Pong([]byte("1")), Pong([]byte("2")), Echo(OpText, []byte("\xf0\x9f\x98\x80")))},
		{ID: "x7.1", Group: "x", Desc: "Send close with code 1015 (must not be sent on the wire): 1002",
			Steps: script(W(CloseFrame(1015, "")), Fail(codeProtocol))},
		{ID: "x7.2", Group: "x", Desc: "Send close with a valid multi-byte UTF-8 reason: close echo 1000",
			Steps: script(Step{Do: ServerClose, Codes: []int{codeNormal, codeNormal}, Payload: []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")})},
		{ID: "x7.3", Group: "x", Desc: "Send close whose reason ends inside a code point: 1007",
			Steps: script(W(Fr(true, OpClose, ClosePayload(codeNormal, []byte("ok\xe2\x82")))), Fail(codeInvalid))},
		{ID: "x7.4", Group: "x", Desc: "Send close, then a binary message and a ping: close echo only, nothing processed after close",
			Steps: script(W(CloseFrame(1001, "bye"), Fr(true, OpBinary, []byte{1}), Ping("x")),
				Step{Do: ExpectClose, Codes: []int{1001, codeNormal}, Within: time.Second})},
		{ID: "x7.5", Group: "x", Desc: "Close handshake, server keeps TCP open: client drops TCP within close_timeout (1 s) + 2 s",
			Options: []string{"close_timeout=1"},
			Steps:   script(Close(codeNormal), Step{Do: ExpectDrop, Within: 3 * time.Second})},
		{ID: "x9.1", Group: "x", Desc: "max_message_size=1000: a 1000-byte text message is echoed", Options: max1000,
			Steps: normal(W(Fr(true, OpText, Rep("m", 1000))), Echo(OpText, Rep("m", 1000)))},
		{ID: "x9.2", Group: "x", Desc: "max_message_size=1000: a 1001-byte text frame: 1009", Options: max1000,
			Steps: script(W(Fr(true, OpText, Rep("m", 1001))), Fail(codeTooBig))},
		{ID: "x9.3", Group: "x", Desc: "max_message_size=1000: a 1001-byte binary frame: 1009", Options: max1000,
			Steps: script(W(Fr(true, OpBinary, Rep("m", 1001))), Fail(codeTooBig))},
		{ID: "x9.4", Group: "x", Desc: "max_message_size=1000: fragments of 400 bytes: 1009 at once after the third, before the last", Options: max1000,
			Steps: script(W(Fr(false, OpText, Rep("m", 400)), Fr(false, OpCont, Rep("m", 400)), Fr(false, OpCont, Rep("m", 400))),
				Fail(codeTooBig), W(Fr(true, OpCont, []byte("m"))))},
		{ID: "x9.5", Group: "x", Desc: "max_message_size=1000: a header declaring 2^62 bytes: 1009 at once", Options: max1000,
			Steps: script(W(Frame{Fin: true, Op: OpBinary, DeclaredLen: 1 << 62}.Bytes()), Fail(codeTooBig))},
		{ID: "x9.6", Group: "x", Desc: "default max_message_size (16 MiB): a 16 MiB + 1 binary message: 1009", Timeout: 20 * time.Second,
			Steps: func() []Step {
				return []Step{W(Fr(true, OpBinary, Rep("\x01", 16<<20+1))), {Do: ExpectClose, Codes: []int{codeTooBig}, Within: 5 * time.Second}}
			}},
	}
	return cs
}
