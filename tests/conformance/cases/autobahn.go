package cases

import (
	"fmt"
	"time"
)

const (
	codeNormal   = 1000
	codeProtocol = 1002
	codeInvalid  = 1007
	codeTooBig   = 1009
)

var hello = []byte("Hello, world!")

// Cases returns every case, in run order.
func Cases() []Case {
	var cs []Case
	cs = append(cs, framing()...)
	cs = append(cs, pings()...)
	cs = append(cs, reserved()...)
	cs = append(cs, fragmentation()...)
	cs = append(cs, utf8Cases()...)
	cs = append(cs, closing()...)
	cs = append(cs, limits()...)
	cs = append(cs, autoFragmentation()...)
	cs = append(cs, extra()...)
	cs = append(cs, deflateCases()...)
	return cs
}

// normal wraps a script that ends with the server's 1000 close.
func normal(steps ...Step) func() []Step {
	return func() []Step { return append(steps, Close(codeNormal)) }
}

func script(steps ...Step) func() []Step { return func() []Step { return steps } }

// 1.x: framing of text and binary messages of lengths around the 7/16/64-bit
// length encodings.
func framing() []Case {
	var cs []Case
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536, 65536}
	for g, op := range []byte{OpText, OpBinary} {
		kind, fill := "text", "*"
		if op == OpBinary {
			kind, fill = "binary", "\xfe"
		}
		for i, n := range sizes {
			n, op, fill := n, op, fill
			desc := fmt.Sprintf("Send %s message with payload length %d", kind, n)
			chop := 0
			if i == 7 {
				chop = 997
				desc += ", in chops of 997 octets"
			}
			cs = append(cs, Case{
				ID: fmt.Sprintf("1.%d.%d", g+1, i+1), Group: "1", Desc: desc,
				Steps: func() []Step {
					p := Rep(fill, n)
					return []Step{WChop(chop, 0, Fr(true, op, p)), Echo(op, p), Close(codeNormal)}
				},
			})
		}
	}
	return cs
}

// 2.x: pings and pongs.
func pings() []Case {
	bin := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	p125 := Rep("\xfe", 125)
	var ten, tenPongs []Step
	for i := 0; i < 10; i++ {
		pl := fmt.Sprintf("payload-%d", i)
		ten = append(ten, W(Ping(pl)))
		tenPongs = append(tenPongs, Pong([]byte(pl)))
	}
	var tenBytes []byte
	for _, s := range ten {
		tenBytes = append(tenBytes, s.Bytes...)
	}
	return []Case{
		{ID: "2.1", Group: "2", Desc: "Send ping without payload", Steps: normal(W(Ping("")), Pong(nil))},
		{ID: "2.2", Group: "2", Desc: "Send ping with small text payload", Steps: normal(W(Ping("Hello, world!")), Pong(hello))},
		{ID: "2.3", Group: "2", Desc: "Send ping with small binary (non UTF-8) payload", Steps: normal(W(Fr(true, OpPing, bin)), Pong(bin))},
		{ID: "2.4", Group: "2", Desc: "Send ping with binary payload of 125 octets", Steps: normal(W(Fr(true, OpPing, p125)), Pong(p125))},
		{ID: "2.5", Group: "2", Desc: "Send ping with binary payload of 126 octets: fail with 1002, no pong",
			Steps: script(W(Fr(true, OpPing, Rep("\xfe", 126))), Fail(codeProtocol))},
		{ID: "2.6", Group: "2", Desc: "Send ping with binary payload of 125 octets, in octet-wise chops",
			Steps: normal(WChop(1, time.Millisecond, Fr(true, OpPing, p125)), Pong(p125))},
		{ID: "2.7", Group: "2", Desc: "Send unsolicited pong without payload: nothing comes back",
			Steps: normal(W(Fr(true, OpPong, nil)), Silence(300*time.Millisecond))},
		{ID: "2.8", Group: "2", Desc: "Send unsolicited pong with payload: nothing comes back",
			Steps: normal(W(Fr(true, OpPong, []byte("unsolicited pong payload"))), Silence(300*time.Millisecond))},
		{ID: "2.9", Group: "2", Desc: "Send unsolicited pong with payload, then ping: one pong for the ping",
			Steps: normal(W(Fr(true, OpPong, []byte("unsolicited pong payload")), Ping("ping payload")), Pong([]byte("ping payload")))},
		{ID: "2.10", Group: "2", Desc: "Send 10 pings with payload: 10 pongs, in order",
			Steps: normal(append([]Step{W(tenBytes)}, tenPongs...)...)},
		{ID: "2.11", Group: "2", Desc: "Send 10 pings with payload, in octet-wise chops: 10 pongs, in order",
			Steps: normal(append([]Step{WChop(1, 0, tenBytes)}, tenPongs...)...)},
	}
}

// 3.x (reserved bits) and 4.x (reserved opcodes).
func reserved() []Case {
	bad := func(rsv, op byte, p []byte) []byte { return Frame{Fin: true, Rsv: rsv, Op: op, Payload: p}.Bytes() }
	noPong := "no pong: frames after the bad one must not be processed"
	cs := []Case{
		{ID: "3.1", Group: "3", Desc: "Send small text message with RSV = 1: fail with 1002",
			Steps: script(W(bad(4, OpText, hello)), Fail(codeProtocol))},
		{ID: "3.2", Group: "3", Desc: "Send small text message, then again with RSV = 2, then ping: echo, 1002, " + noPong,
			Steps: script(W(Text("Hello, world!"), bad(2, OpText, hello), Ping("")), EchoNS(OpText, hello), Fail(codeProtocol))},
		{ID: "3.3", Group: "3", Desc: "Send small text message, then again with RSV = 3, then ping, frame-wise with pauses: echo, 1002 at once",
			Steps: script(W(Text("Hello, world!")), Echo(OpText, hello), W(bad(3, OpText, hello)), Fail(codeProtocol), W(Ping(""))),
		},
		{ID: "3.4", Group: "3", Desc: "Send small text message, then again with RSV = 4, then ping, in octet-wise chops: echo, 1002, " + noPong,
			Steps: script(WChop(1, 0, Text("Hello, world!"), bad(1, OpText, hello), Ping("")), EchoNS(OpText, hello), Fail(codeProtocol))},
		{ID: "3.5", Group: "3", Desc: "Send small binary message with RSV = 5: fail with 1002",
			Steps: script(W(bad(5, OpBinary, []byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff})), Fail(codeProtocol))},
		{ID: "3.6", Group: "3", Desc: "Send ping with RSV = 6: fail with 1002, no pong",
			Steps: script(W(bad(6, OpPing, hello)), Fail(codeProtocol))},
		{ID: "3.7", Group: "3", Desc: "Send close with RSV = 7: fail with 1002",
			Steps: script(W(Frame{Fin: true, Rsv: 7, Op: OpClose, Payload: ClosePayload(1000, nil)}.Bytes()), Fail(codeProtocol))},
	}
	// 4.1.x: non-control opcodes 3..7, 4.2.x: control opcodes 11..15.
	for g, base := range []byte{3, 11} {
		for i := 0; i < 5; i++ {
			op := base + byte(i)
			id := fmt.Sprintf("4.%d.%d", g+1, i+1)
			switch i {
			case 0:
				cs = append(cs, Case{ID: id, Group: "4", Desc: fmt.Sprintf("Send frame with reserved opcode %d: fail with 1002", op),
					Steps: script(W(Fr(true, op, nil)), Fail(codeProtocol))})
			case 1:
				cs = append(cs, Case{ID: id, Group: "4", Desc: fmt.Sprintf("Send frame with reserved opcode %d and non-empty payload: fail with 1002", op),
					Steps: script(W(Fr(true, op, hello)), Fail(codeProtocol))})
			default:
				chop, how := 0, ""
				if i == 4 {
					chop, how = 1, ", in octet-wise chops"
				}
				var p []byte
				if i >= 3 {
					p = hello
				}
				cs = append(cs, Case{ID: id, Group: "4",
					Desc:  fmt.Sprintf("Send small text message, then frame with reserved opcode %d, then ping%s: echo, 1002, no pong", op, how),
					Steps: script(WChop(chop, 0, Text("Hello, world!"), Fr(true, op, p), Ping("")), EchoNS(OpText, hello), Fail(codeProtocol))})
			}
		}
	}
	return cs
}

// 5.x: fragmentation.
func fragmentation() []Case {
	f1, f2 := []byte("fragment1"), []byte("fragment2")
	both := Cat(f1, f2)
	two := func(op byte) []byte { return Cat(Fr(false, op, f1), Fr(true, OpCont, f2)) }
	pingMid := Cat(Fr(false, OpText, f1), Ping("ping payload"), Fr(true, OpCont, f2))
	ping := []byte("ping payload")
	frameWise := func(b []byte, ping bool) []Step { // each frame its own write, 100 ms apart
		var st []Step
		for len(b) > 0 {
			n := 2 + int(b[1]&0x7f)
			st = append(st, W(b[:n]), Wait(100*time.Millisecond))
			b = b[n:]
		}
		return st
	}
	nothingOpen := func(fin bool) []byte {
		return Cat(Fr(fin, OpCont, []byte("non-continuation payload")), Text("Hello, world!"))
	}
	cs := []Case{
		{ID: "5.1", Group: "5", Desc: "Send ping fragmented into 2 fragments: fail with 1002",
			Steps: script(W(Fr(false, OpPing, f1), Fr(true, OpCont, f2)), Fail(codeProtocol))},
		{ID: "5.2", Group: "5", Desc: "Send pong fragmented into 2 fragments: fail with 1002",
			Steps: script(W(Fr(false, OpPong, f1), Fr(true, OpCont, f2)), Fail(codeProtocol))},
		{ID: "5.3", Group: "5", Desc: "Send text message fragmented into 2 fragments",
			Steps: normal(W(two(OpText)), Echo(OpText, both))},
		{ID: "5.4", Group: "5", Desc: "Send text message fragmented into 2 fragments, in octet-wise chops",
			Steps: normal(WChop(1, 0, two(OpText)), Echo(OpText, both))},
		{ID: "5.5", Group: "5", Desc: "Send text message fragmented into 2 fragments, frame-wise with pauses",
			Steps: normal(append(frameWise(two(OpText), false), Echo(OpText, both))...)},
		{ID: "5.6", Group: "5", Desc: "Send text message fragmented into 2 fragments, ping in between: pong, then echo",
			Steps: normal(W(pingMid), Pong(ping), Echo(OpText, both))},
		{ID: "5.7", Group: "5", Desc: "Same as 5.6, in octet-wise chops",
			Steps: normal(WChop(1, 0, pingMid), Pong(ping), Echo(OpText, both))},
		{ID: "5.8", Group: "5", Desc: "Same as 5.6, frame-wise with pauses (the pong must come before the last fragment)",
			Steps: normal(W(Fr(false, OpText, f1)), Wait(100*time.Millisecond), W(Ping("ping payload")), Pong(ping),
				W(Fr(true, OpCont, f2)), Echo(OpText, both))},
		{ID: "5.9", Group: "5", Desc: "Send continuation frame with FIN = true, nothing to continue, then text message: 1002, no echo",
			Steps: script(W(nothingOpen(true)), Fail(codeProtocol))},
		{ID: "5.10", Group: "5", Desc: "Same as 5.9, frame-wise",
			Steps: script(append(frameWise(nothingOpen(true), false)[:1], Fail(codeProtocol), W(Text("Hello, world!")))...)},
		{ID: "5.11", Group: "5", Desc: "Same as 5.9, in octet-wise chops",
			Steps: script(WChop(1, 0, nothingOpen(true)), Fail(codeProtocol))},
		{ID: "5.12", Group: "5", Desc: "Send continuation frame with FIN = false, nothing to continue, then text message: 1002, no echo",
			Steps: script(W(nothingOpen(false)), Fail(codeProtocol))},
		{ID: "5.13", Group: "5", Desc: "Same as 5.12, frame-wise",
			Steps: script(append(frameWise(nothingOpen(false), false)[:1], Fail(codeProtocol), W(Text("Hello, world!")))...)},
		{ID: "5.14", Group: "5", Desc: "Same as 5.12, in octet-wise chops",
			Steps: script(WChop(1, 0, nothingOpen(false)), Fail(codeProtocol))},
		{ID: "5.15", Group: "5", Desc: "Send text message in 2 fragments, then continuation FIN = false with nothing to continue, then text: echo, 1002",
			Steps: script(W(Fr(false, OpText, []byte("fragment1")), Fr(true, OpCont, []byte("fragment2")),
				Fr(false, OpCont, []byte("fragment3")), Fr(true, OpText, []byte("fragment4"))), EchoNS(OpText, both), Fail(codeProtocol))},
		{ID: "5.16", Group: "5", Desc: "2x: continuation FIN = false with nothing to continue, then text in 2 fragments: 1002, no echo",
			Steps: script(W(Fr(false, OpCont, []byte("fragment1")), Fr(false, OpText, []byte("fragment2")), Fr(true, OpCont, []byte("fragment3")),
				Fr(false, OpCont, []byte("fragment1")), Fr(false, OpText, []byte("fragment2")), Fr(true, OpCont, []byte("fragment3"))), Fail(codeProtocol))},
		{ID: "5.17", Group: "5", Desc: "2x: continuation FIN = true with nothing to continue, then text in 2 fragments: 1002, no echo",
			Steps: script(W(Fr(true, OpCont, []byte("fragment1")), Fr(false, OpText, []byte("fragment2")), Fr(true, OpCont, []byte("fragment3")),
				Fr(true, OpCont, []byte("fragment1")), Fr(false, OpText, []byte("fragment2")), Fr(true, OpCont, []byte("fragment3"))), Fail(codeProtocol))},
		{ID: "5.18", Group: "5", Desc: "Send text message in 2 fragments, both with opcode text (new data frame inside an open message): 1002",
			Steps: script(W(Fr(false, OpText, f1), Fr(true, OpText, f2)), Fail(codeProtocol))},
	}
	frags := [][]byte{[]byte("fragment1"), []byte("fragment2"), []byte("fragment3"), []byte("fragment4"), []byte("fragment5")}
	all := Cat(frags...)
	p1, p2 := []byte("pongme 1!"), []byte("pongme 2!")
	for i, sync := range []bool{false, true} {
		w := func(b ...[]byte) []Step {
			if !sync {
				return []Step{W(b...)}
			}
			var st []Step
			for _, x := range b {
				st = append(st, W(x), Wait(20*time.Millisecond))
			}
			return st
		}
		var st []Step
		st = append(st, w(Fr(false, OpText, frags[0]), Fr(false, OpCont, frags[1]), Fr(true, OpPing, p1))...)
		st = append(st, Pong(p1), Wait(time.Second))
		st = append(st, w(Fr(false, OpCont, frags[2]), Fr(false, OpCont, frags[3]), Fr(true, OpPing, p2), Fr(true, OpCont, frags[4]))...)
		st = append(st, Pong(p2), Echo(OpText, all))
		desc := "Fragmented text in 5 frames, ping after 2, wait 1 s, 2 more, ping, last: pongs at once, then echo"
		if sync {
			desc = "Same as 5.19, every frame its own write"
		}
		cs = append(cs, Case{ID: fmt.Sprintf("5.%d", 19+i), Group: "5", Desc: desc, Steps: normal(st...)})
	}
	return cs
}

// 6.x: UTF-8 handling.
func utf8Cases() []Case {
	const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	valid := []byte("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!")
	invalid := []byte(kosme + "\xed\xa0\x80edited")
	octetFrames := func(p []byte) []byte { return Fragments(OpText, 0, p, 1) }
	cs := []Case{
		{ID: "6.1.1", Group: "6", Desc: "Send text message of length 0", Steps: normal(W(Text("")), Echo(OpText, []byte{}))},
		{ID: "6.1.2", Group: "6", Desc: "Send fragmented text message, 3 fragments each of length 0",
			Steps: normal(W(Fr(false, OpText, nil), Fr(false, OpCont, nil), Fr(true, OpCont, nil)), Echo(OpText, []byte{}))},
		{ID: "6.1.3", Group: "6", Desc: "Send fragmented text message, 3 fragments, first and last of length 0",
			Steps: normal(W(Fr(false, OpText, nil), Fr(false, OpCont, []byte("middle frame payload")), Fr(true, OpCont, nil)),
				Echo(OpText, []byte("middle frame payload")))},
		{ID: "6.2.1", Group: "6", Desc: "Send valid UTF-8 text message in one fragment", Steps: normal(W(Fr(true, OpText, valid)), Echo(OpText, valid))},
		{ID: "6.2.2", Group: "6", Desc: "Send valid UTF-8 text message in two fragments, split on a code point boundary",
			Steps: normal(W(Fr(false, OpText, valid[:14]), Fr(true, OpCont, valid[14:])), Echo(OpText, valid))},
		{ID: "6.2.3", Group: "6", Desc: "Send valid UTF-8 text message in fragments of 1 octet (code points split)",
			Steps: normal(W(octetFrames(valid)), Echo(OpText, valid))},
		{ID: "6.2.4", Group: "6", Desc: "Send valid UTF-8 text message (kosme) in fragments of 1 octet",
			Steps: normal(W(octetFrames([]byte(kosme))), Echo(OpText, []byte(kosme)))},
		{ID: "6.3.1", Group: "6", Desc: "Send invalid UTF-8 text message unfragmented: 1007",
			Steps: script(W(Fr(true, OpText, invalid)), Fail(codeInvalid))},
		{ID: "6.3.2", Group: "6", Desc: "Send invalid UTF-8 text message in fragments of 1 octet: 1007",
			Steps: script(W(octetFrames(invalid)), Fail(codeInvalid))},
	}
	// 6.4.x: fail fast. The invalid octet arrives before the rest, which the
	// server sends only after the client had 1 s to fail.
	pl := []byte(kosme + "\xf4\x90\x80\x80" + "edited")
	parts := [][][]byte{{pl[:11], pl[11:15], pl[15:]}, {pl[:12], pl[12:13], pl[13:]}}
	for i, p := range parts {
		cs = append(cs, Case{ID: fmt.Sprintf("6.4.%d", i+1), Group: "6",
			Desc: fmt.Sprintf("Invalid UTF-8 in 3 frames; frame 2 (%x) makes it invalid: 1007 before frame 3 is sent", p[1]),
			Steps: script(W(Fr(false, OpText, p[0])), Silence(time.Second), W(Fr(false, OpCont, p[1])),
				Step{Do: ExpectClose, Codes: []int{codeInvalid}, Within: time.Second, Note: "fail fast: before the final fragment"},
				W(Fr(true, OpCont, p[2])))})
	}
	for i, p := range parts {
		hdr := Frame{Fin: true, Op: OpText, DeclaredLen: uint64(len(pl))}.Bytes()
		cs = append(cs, Case{ID: fmt.Sprintf("6.4.%d", i+3), Group: "6",
			Desc: fmt.Sprintf("Invalid UTF-8 in 3 chops of one frame; chop 2 (%x) makes it invalid: 1007 before chop 3 (Autobahn: NON-STRICT if later)", p[1]),
			Steps: script(W(hdr, p[0]), Silence(time.Second), W(p[1]),
				Step{Do: ExpectClose, Codes: []int{codeInvalid}, Within: time.Second, NonStrict: true},
				W(p[2]), Fail(codeInvalid))})
	}
	for gi, g := range utf8Groups() {
		for j, s := range g.seqs {
			p := []byte(s.p)
			c := Case{ID: fmt.Sprintf("6.%d.%d", gi+5, j+1), Group: "6"}
			if s.valid {
				c.Desc = fmt.Sprintf("%s: valid UTF-8 text %x: echo", g.name, p)
				c.Steps = normal(W(Fr(true, OpText, p)), Echo(OpText, p))
			} else {
				c.Desc = fmt.Sprintf("%s: invalid UTF-8 text %x: 1007", g.name, p)
				c.Steps = script(W(Fr(true, OpText, p)), Fail(codeInvalid))
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// 7.x: the closing handshake.
func closing() []Case {
	big := Rep("BAsd7&jh23", 256<<10)
	cs := []Case{
		{ID: "7.1.1", Group: "7", Desc: "Send a message followed by a close frame: echo, close echo 1000",
			Steps: script(W(Text("Hello World!")), Echo(OpText, []byte("Hello World!")), Close(codeNormal))},
		{ID: "7.1.2", Group: "7", Desc: "Send two close frames: one close echo, nothing more",
			Steps: script(Close(codeNormal), W(CloseFrame(codeNormal, "")))},
		{ID: "7.1.3", Group: "7", Desc: "Send a ping after the close frame: no pong",
			Steps: script(W(CloseFrame(codeNormal, ""), Ping("Hello World!")),
				Step{Do: ExpectClose, Codes: []int{codeNormal}, Within: time.Second})},
		{ID: "7.1.4", Group: "7", Desc: "Send a text message after the close frame: not echoed",
			Steps: script(W(CloseFrame(codeNormal, ""), Text("Hello World!")),
				Step{Do: ExpectClose, Codes: []int{codeNormal}, Within: time.Second})},
		{ID: "7.1.5", Group: "7", Desc: "Send message fragment 1, close, fragment 2: close echo, no message",
			Steps: script(W(Fr(false, OpText, []byte("fragment1")), CloseFrame(codeNormal, ""), Fr(true, OpCont, []byte("fragment2"))),
				Step{Do: ExpectClose, Codes: []int{codeNormal}, Within: time.Second})},
		{ID: "7.1.6", Group: "7", Desc: "Send 256K message, close, ping: echo may come, close echo, no pong",
			Timeout: 15 * time.Second,
			Steps: script(W(Fr(true, OpText, big), CloseFrame(codeNormal, ""), Ping("Hello World!")),
				Step{Do: ExpectMsg, Op: OpText, Payload: big, Optional: true},
				Step{Do: ExpectClose, Codes: []int{codeNormal}, Within: 5 * time.Second})},
		{ID: "7.3.1", Group: "7", Desc: "Send close with payload length 0: close echo (empty or 1000)",
			Steps: script(W(Fr(true, OpClose, nil)), Step{Do: ExpectClose, Codes: []int{codeNormal}, NoCode: true, Within: time.Second})},
		{ID: "7.3.2", Group: "7", Desc: "Send close with payload length 1: 1002",
			Steps: script(W(Fr(true, OpClose, []byte{'a'})), Fail(codeProtocol))},
		{ID: "7.3.3", Group: "7", Desc: "Send close with payload length 2 (code 1000, no reason): close echo 1000",
			Steps: script(Close(codeNormal))},
		{ID: "7.3.4", Group: "7", Desc: "Send close with code 1000 and reason: close echo 1000",
			Steps: script(Step{Do: ServerClose, Codes: []int{codeNormal, codeNormal}, Payload: []byte("Hello World!")})},
		{ID: "7.3.5", Group: "7", Desc: "Send close with code 1000 and a 123-octet reason: close echo 1000",
			Steps: script(Step{Do: ServerClose, Codes: []int{codeNormal, codeNormal}, Payload: Rep("*", 123)})},
		{ID: "7.3.6", Group: "7", Desc: "Send close with code 1000 and a 124-octet reason (control frame too long): 1002",
			Steps: script(W(Fr(true, OpClose, ClosePayload(codeNormal, Rep("*", 124)))), Fail(codeProtocol))},
		{ID: "7.5.1", Group: "7", Desc: "Send close with a reason that is invalid UTF-8: 1007",
			Steps: script(W(Fr(true, OpClose, ClosePayload(codeNormal, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64")))),
				Fail(codeInvalid))},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, Case{ID: fmt.Sprintf("7.7.%d", i+1), Group: "7",
			Desc:  fmt.Sprintf("Send close with valid code %d: close echo (%d or 1000)", code, code),
			Steps: script(Close(code, code, codeNormal))})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, Case{ID: fmt.Sprintf("7.9.%d", i+1), Group: "7",
			Desc:  fmt.Sprintf("Send close with invalid code %d: 1002", code),
			Steps: script(W(CloseFrame(code, "")), Fail(codeProtocol))})
	}
	for i, code := range []int{5000, 65535} {
		cs = append(cs, Case{ID: fmt.Sprintf("7.13.%d", i+1), Group: "7",
			Desc:  fmt.Sprintf("Send close with code %d (undefined; Autobahn informational): close with 1000, 1002 or %d", code, code),
			Steps: script(W(CloseFrame(code, "")), Step{Do: ExpectClose, Codes: []int{codeNormal, codeProtocol, code}, Within: time.Second})})
	}
	return cs
}

// 9.x: limits and performance.
func limits() []Case {
	var cs []Case
	const k, m = 1 << 10, 1 << 20
	big := []int{64 * k, 256 * k, m, 4 * m, 8 * m, 16 * m}
	frag := []int{64, 256, k, 4 * k, 16 * k, 64 * k, 256 * k, m, 4 * m}
	chops := []int{64, 128, 256, 512, 1024, 2048}
	counts := []int{0, 16, 64, 256, 1024, 4096}
	for g, op := range []byte{OpText, OpBinary} {
		kind, fill := "text", "BAsd7&jh23"
		if op == OpBinary {
			kind, fill = "binary", "\xfe\x00\x81\x7f\xff"
		}
		op, fill := op, fill
		for i, n := range big {
			n := n
			cs = append(cs, Case{ID: fmt.Sprintf("9.%d.%d", 1+g, i+1), Group: "9", Timeout: 30 * time.Second,
				Desc: fmt.Sprintf("Send %s message of %d bytes", kind, n),
				Steps: func() []Step {
					p := Rep(fill, n)
					return []Step{W(Fr(true, op, p)), {Do: ExpectMsg, Op: op, Payload: p, Within: 25 * time.Second}, Close(codeNormal)}
				}})
		}
		for i, f := range frag {
			f := f
			cs = append(cs, Case{ID: fmt.Sprintf("9.%d.%d", 3+g, i+1), Group: "9", Timeout: 30 * time.Second,
				Desc: fmt.Sprintf("Send fragmented %s message of 4 MiB in fragments of %d bytes", kind, f),
				Steps: func() []Step {
					p := Rep(fill, 4*m)
					return []Step{W(Fragments(op, 0, p, f)), {Do: ExpectMsg, Op: op, Payload: p, Within: 25 * time.Second}, Close(codeNormal)}
				}})
		}
		for i, c := range chops {
			c := c
			cs = append(cs, Case{ID: fmt.Sprintf("9.%d.%d", 5+g, i+1), Group: "9", Timeout: 30 * time.Second,
				Desc: fmt.Sprintf("Send %s message of 1 MiB, written in chops of %d bytes", kind, c),
				Steps: func() []Step {
					p := Rep(fill, m)
					return []Step{WChop(c, 0, Fr(true, op, p)), {Do: ExpectMsg, Op: op, Payload: p, Within: 25 * time.Second}, Close(codeNormal)}
				}})
		}
		for i, n := range counts {
			n := n
			cs = append(cs, Case{ID: fmt.Sprintf("9.%d.%d", 7+g, i+1), Group: "9", Timeout: 60 * time.Second,
				Desc: fmt.Sprintf("Send 1000 %s messages of %d bytes, each after the echo of the one before", kind, n),
				Steps: func() []Step {
					p := Rep(fill, n)
					fr := Fr(true, op, p)
					st := make([]Step, 0, 2001)
					for j := 0; j < 1000; j++ {
						st = append(st, W(fr), Echo(op, p))
					}
					return append(st, Close(codeNormal))
				}})
		}
	}
	return cs
}

// 10.1.1: a message fragmented by the sender into 1300-byte frames.
func autoFragmentation() []Case {
	return []Case{{ID: "10.1.1", Group: "10", Desc: "Send text message of 65536 bytes auto-fragmented into 1300-byte frames",
		Steps: func() []Step {
			p := Rep("*", 65536)
			return []Step{W(Fragments(OpText, 0, p, 1300)), Echo(OpText, p), Close(codeNormal)}
		}}}
}
