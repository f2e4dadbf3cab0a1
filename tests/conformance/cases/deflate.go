package cases

import (
	"bytes"
	"compress/flate"
	"fmt"
	"time"
)

// Compress returns p as one permessage-deflate message body (RFC 7692
// section 7.2.1: a fresh raw DEFLATE stream, sync-flushed, without the
// trailing 00 00 ff ff).
func Compress(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// CompressParts compresses parts as one permessage-deflate stream, one
// sync-flushed piece per part (the payloads of a fragmented message): the
// last piece is stripped of its 00 00 ff ff tail, the others keep it.
func CompressParts(parts ...[]byte) [][]byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	out := make([][]byte, len(parts))
	for i, p := range parts {
		b.Reset()
		w.Write(p)
		w.Flush()
		out[i] = append([]byte(nil), b.Bytes()...)
	}
	out[len(out)-1] = bytes.TrimSuffix(out[len(out)-1], []byte{0, 0, 0xff, 0xff})
	return out
}

// lcg is a fixed-seed generator: the data is the same on every run.
type lcg uint32

func (g *lcg) next() uint32 { *g = *g*1664525 + 1013904223; return uint32(*g >> 8) }

var words = []string{"Faust", "Gretchen", "Mephisto", "der", "die", "das", "und", "Welt", "Geist", "Zeit",
	"über", "schön", "Äpfel", "Straße", "Nacht", "Licht", "websocket", "frame", "deflate", "message"}

// corpus builds n bytes of one of five kinds of data, after Autobahn's 12.x
// corpora: JSON, a bitmap, prose, HTML, a less compressible binary.
func corpus(kind, n int) []byte {
	g := lcg(uint32(kind*7919 + n))
	var b bytes.Buffer
	for b.Len() < n {
		switch kind {
		case 0:
			fmt.Fprintf(&b, `{"id":%d,"name":"%s %s","tags":["%s"],"value":%d.%d},`, g.next()%100000,
				words[g.next()%uint32(len(words))], words[g.next()%uint32(len(words))], words[g.next()%uint32(len(words))], g.next()%1000, g.next()%10)
		case 1:
			run := int(g.next()%64) + 1
			c := byte(0)
			if g.next()%2 == 0 {
				c = 0xff
			}
			b.Write(bytes.Repeat([]byte{c}, run))
		case 2:
			b.WriteString(words[g.next()%uint32(len(words))])
			if g.next()%9 == 0 {
				b.WriteString(".\n")
			} else {
				b.WriteByte(' ')
			}
		case 3:
			fmt.Fprintf(&b, "<div class=\"c%d\"><p>%s</p><a href=\"/%s\">%s</a></div>\n", g.next()%20,
				words[g.next()%uint32(len(words))], words[g.next()%uint32(len(words))], words[g.next()%uint32(len(words))])
		default:
			if g.next()%3 == 0 {
				b.WriteString("stream endobj 0 obj << /Length >> ")
			} else {
				for i := 0; i < 16; i++ {
					b.WriteByte(byte(g.next()))
				}
			}
		}
	}
	p := b.Bytes()[:n]
	if kind == 0 || kind == 2 || kind == 3 { // cut back to whole UTF-8 code points
		for len(p) > 0 && p[len(p)-1]&0xc0 == 0x80 {
			p = p[:len(p)-1]
		}
		for len(p) > 0 && p[len(p)-1] >= 0xc0 {
			p = p[:len(p)-1]
		}
		for len(p) < n {
			p = append(p, ' ')
		}
	}
	return p
}

func deflateRoundTrips(kind int, op byte, size, count, frag int) func() []Step {
	return func() []Step {
		var st []Step
		for i := 0; i < count; i++ {
			p := corpus(kind, size+i%7) // vary a little: context takeover sees new data
			st = append(st, Step{Do: SendMsg, Op: op, Payload: p, Frag: frag}, Echo(op, p))
		}
		return append(st, Close(codeNormal))
	}
}

// deflateCases are Autobahn's 12.x / 13.x (permessage-deflate, the client
// created with compression=true) and x12 cases beyond them.
func deflateCases() []Case {
	var cs []Case
	compress := []string{"compression=true"}
	kinds := []struct {
		op   byte
		name string
	}{{OpText, "JSON text"}, {OpBinary, "bitmap-like binary"}, {OpText, "prose text"}, {OpText, "HTML text"}, {OpBinary, "PDF-like binary"}}
	sizes := []int{16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072}
	for k, kd := range kinds {
		for i := 0; i < 18; i++ {
			size, frag := sizes[i%10], 0
			if i >= 10 {
				size, frag = sizes[i-8], 1024
			}
			count := 100
			if size > 4096 {
				count = 20
			}
			desc := fmt.Sprintf("permessage-deflate: %d %s messages of ~%d bytes", count, kd.name, size)
			if frag > 0 {
				desc += ", compressed data in 1024-byte frames"
			}
			cs = append(cs, Case{ID: fmt.Sprintf("12.%d.%d", k+1, i+1), Group: "12", Desc: desc, Options: compress,
				Deflate: &Deflate{}, Timeout: 30 * time.Second, Steps: deflateRoundTrips(k, kd.op, size, count, frag)})
		}
	}
	params := []struct {
		d    Deflate
		name string
	}{
		{Deflate{}, "defaults"},
		{Deflate{ServerNoContextTakeover: true}, "server_no_context_takeover"},
		{Deflate{ClientNoContextTakeover: true}, "client_no_context_takeover (checked: each client message must inflate alone)"},
		{Deflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true}, "server_ and client_no_context_takeover"},
		{Deflate{ServerMaxWindowBits: 9}, "server_max_window_bits=9"},
		{Deflate{ServerMaxWindowBits: 15}, "server_max_window_bits=15"},
		{Deflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 9}, "no context takeover both ways, server_max_window_bits=9"},
	}
	for g, pr := range params {
		for i, size := range []int{16, 64, 256, 1024, 4096, 65536} {
			d := pr.d
			cs = append(cs, Case{ID: fmt.Sprintf("13.%d.%d", g+1, i+1), Group: "13", Options: compress, Deflate: &d, Timeout: 30 * time.Second,
				Desc:  fmt.Sprintf("permessage-deflate with %s: 20 text messages of ~%d bytes", pr.name, size),
				Steps: deflateRoundTrips([]int{0, 2, 3}[i%3], OpText, size, 20, 0)})
		}
	}
	bomb := Compress(make([]byte, 1<<20))
	ffParts := CompressParts([]byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xed\xa0\x80 invalid"), []byte(" and the end"))
	cs = append(cs,
		Case{ID: "x12.1", Group: "x12", Desc: "permessage-deflate: a ping with RSV1: 1002", Options: compress, Deflate: &Deflate{},
			Steps: script(W(Frame{Fin: true, Rsv: 4, Op: OpPing, Payload: Compress(hello)}.Bytes()), Fail(codeProtocol))},
		Case{ID: "x12.2", Group: "x12", Desc: "permessage-deflate: RSV1 on a continuation frame: 1002", Options: compress, Deflate: &Deflate{},
			Steps: script(W(Frame{Fin: false, Rsv: 4, Op: OpText, Payload: Compress(hello)[:3]}.Bytes(),
				Frame{Fin: true, Rsv: 4, Op: OpCont, Payload: Compress(hello)[3:]}.Bytes()), Fail(codeProtocol))},
		Case{ID: "x12.3", Group: "x12", Desc: "permessage-deflate, max_message_size=1000: a 1 MiB message compressed to ~1 KB: 1009",
			Options: []string{"compression=true", "max_message_size=1000"}, Deflate: &Deflate{},
			Steps: script(W(Frame{Fin: true, Rsv: 4, Op: OpBinary, Payload: bomb}.Bytes()), Fail(codeTooBig))},
		Case{ID: "x12.4", Group: "x12", Desc: "permessage-deflate: an uncompressed message (RSV1 = 0) is fine: echo", Options: compress, Deflate: &Deflate{},
			Steps: normal(W(Text("plain")), Echo(OpText, []byte("plain")))},
		Case{ID: "x12.5", Group: "x12", Desc: "permessage-deflate: RSV1 message with corrupt DEFLATE data: 1007 or 1002", Options: compress, Deflate: &Deflate{},
			Steps: script(W(Frame{Fin: true, Rsv: 4, Op: OpBinary, Payload: []byte{0xff, 0xff, 0xff, 0xff}}.Bytes()), Fail(codeInvalid, codeProtocol))},
		Case{ID: "x12.6", Group: "x12", Desc: "permessage-deflate: compressed text that inflates to invalid UTF-8: 1007", Options: compress, Deflate: &Deflate{},
			Steps: script(W(Frame{Fin: true, Rsv: 4, Op: OpText, Payload: Compress([]byte("ok\xed\xa0\x80"))}.Bytes()), Fail(codeInvalid))},
		// Fail fast (as 6.4.1): the final fragment is sent only after the
		// client had 1 s to fail on the first.
		Case{ID: "x12.7", Group: "x12", Desc: "permessage-deflate: the first of 2 compressed text fragments inflates to invalid UTF-8: 1007 before the final fragment is sent",
			Options: compress, Deflate: &Deflate{},
			Steps: script(W(Frame{Fin: false, Rsv: 4, Op: OpText, Payload: ffParts[0]}.Bytes()),
				Step{Do: ExpectClose, Codes: []int{codeInvalid}, Within: time.Second, Note: "fail fast: before the final fragment"},
				W(Frame{Fin: true, Op: OpCont, Payload: ffParts[1]}.Bytes()))},
	)
	return cs
}
