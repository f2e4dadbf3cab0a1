// Command seeds exports the conformance case table as native Go fuzz seed
// corpora for the engine's parsers:
//
//	go run ./tests/conformance/cmd/seeds [-out wsengine/testdata/fuzz]
//
// It writes wsengine/testdata/fuzz/{FuzzFrameHeader,FuzzClosePayload,FuzzUTF8,
// FuzzHandshakeResponse}/case-* files in the "go test fuzz v1" format, with
// the argument lists of the targets in wsengine/parse_test.go:
//
//	FuzzFrameHeader(b []byte, deflate, inMessage bool, msgLen, maxSize int64)
//	FuzzClosePayload(p []byte)
//	FuzzHandshakeResponse(resp []byte)
//	FuzzUTF8(b []byte, cut uint8)
//
// It replaces the case-* files of an earlier run and nothing else.
// wsengine never imports tests/: the corpus files are the only link.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

type corpus struct {
	dir   string
	seen  map[[32]byte]bool
	count map[string]int
}

// add writes one corpus file for target holding vals (Go fuzz value lines,
// e.g. `[]byte("...")`, `bool(true)`).
func (c *corpus) add(target, name string, vals ...string) error {
	body := "go test fuzz v1\n" + strings.Join(vals, "\n") + "\n"
	h := sha256.Sum256([]byte(target + "\x00" + body))
	if c.seen[h] {
		return nil
	}
	c.seen[h] = true
	dir := filepath.Join(c.dir, target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name = strings.NewReplacer(".", "_", "/", "_").Replace(name)
	file := filepath.Join(dir, fmt.Sprintf("case-%s-%x", name, h[:4]))
	c.count[target]++
	return os.WriteFile(file, []byte(body), 0o644)
}

func bytesVal(p []byte, max int) string {
	if len(p) > max {
		p = p[:max]
	}
	return fmt.Sprintf("[]byte(%q)", p)
}

// headerAt describes the frame starting at off in a server write.
type headerAt struct {
	off     int
	op      byte
	fin     bool
	n       uint64
	whole   bool // the payload is all there
	payload []byte
}

// walk lists the frames of b as far as their headers parse.
func walk(b []byte) (out []headerAt) {
	off := 0
	for len(b)-off >= 2 {
		x := b[off:]
		h := headerAt{off: off, op: x[0] & 0xf, fin: x[0]&0x80 != 0, n: uint64(x[1] & 0x7f)}
		hl := 2
		switch h.n {
		case 126:
			if len(x) < 4 {
				return
			}
			h.n, hl = uint64(binary.BigEndian.Uint16(x[2:])), 4
		case 127:
			if len(x) < 10 {
				return
			}
			h.n, hl = binary.BigEndian.Uint64(x[2:]), 10
		}
		var mask []byte
		if x[1]&0x80 != 0 {
			if len(x) < hl+4 {
				return
			}
			mask, hl = x[hl:hl+4], hl+4
		}
		if h.n > uint64(len(x)-hl) {
			out = append(out, h)
			return
		}
		h.whole = true
		h.payload = append([]byte(nil), x[hl:hl+int(h.n)]...)
		for i := range h.payload {
			if mask != nil {
				h.payload[i] ^= mask[i%4]
			}
		}
		out = append(out, h)
		off += hl + int(h.n)
	}
	return out
}

const maxHeaders = 12

func main() {
	out := flag.String("out", "wsengine/testdata/fuzz", "corpus root")
	flag.Parse()
	c := &corpus{dir: *out, seen: map[[32]byte]bool{}, count: map[string]int{}}
	targets := []string{"FuzzFrameHeader", "FuzzClosePayload", "FuzzUTF8", "FuzzHandshakeResponse"}
	for _, t := range targets { // replace an earlier run's files only
		old, _ := filepath.Glob(filepath.Join(*out, t, "case-*"))
		for _, f := range old {
			os.Remove(f)
		}
	}
	check := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "seeds:", err)
			os.Exit(1)
		}
	}
	for _, cs := range cases.Cases() {
		if cs.Group == "9" || cs.Group == "12" || cs.Group == "13" { // big or repetitive: a few are enough
			if !strings.HasSuffix(cs.ID, ".1") {
				continue
			}
		}
		maxSize := int64(16 << 20)
		for _, o := range cs.Options {
			fmt.Sscanf(o, "max_message_size=%d", &maxSize)
		}
		deflate := cs.Deflate != nil
		inMessage, msgLen := false, int64(0)
		headers := 0 // at most maxHeaders header seeds per case
		for i, st := range cs.Steps() {
			name := fmt.Sprintf("%s-%d", cs.ID, i+1)
			switch st.Do {
			case cases.Write:
				var text []byte
				cut := -1
				for j, h := range walk(st.Bytes) {
					// the header as the engine's checkHeader sees it, with the
					// message state the case has built up to that frame
					if headers++; headers <= maxHeaders {
						check(c.add("FuzzFrameHeader", fmt.Sprintf("%s-%d", name, j+1),
							bytesVal(st.Bytes[h.off:], 32), fmt.Sprintf("bool(%v)", deflate), fmt.Sprintf("bool(%v)", inMessage),
							fmt.Sprintf("int64(%d)", msgLen), fmt.Sprintf("int64(%d)", maxSize)))
					}
					if h.op < 8 {
						if h.op != cases.OpCont {
							msgLen = 0
						}
						msgLen += int64(min(h.n, 1<<40))
						inMessage = !h.fin
						if !inMessage {
							msgLen = 0
						}
					}
					if !h.whole {
						break
					}
					switch h.op {
					case cases.OpClose:
						check(c.add("FuzzClosePayload", name, bytesVal(h.payload, 256)))
					case cases.OpText:
						text, cut = append([]byte(nil), h.payload...), len(h.payload)
					case cases.OpCont:
						text = append(text, h.payload...)
					}
				}
				if len(text) > 0 && len(text) <= 4096 {
					if cut < 0 || cut >= len(text) || cut > 255 {
						cut = len(text) / 2
					}
					check(c.add("FuzzUTF8", name, bytesVal(text, 4096), fmt.Sprintf("uint8(%d)", min(cut, 255))))
				}
			case cases.ServerClose:
				check(c.add("FuzzClosePayload", name, bytesVal(cases.ClosePayload(st.Codes[0], st.Payload), 256)))
			case cases.ExpectMsg:
				if st.Op == cases.OpText && len(st.Payload) <= 4096 {
					check(c.add("FuzzUTF8", name, bytesVal(st.Payload, 4096), fmt.Sprintf("uint8(%d)", min(len(st.Payload)/2, 255))))
				}
			}
		}
	}
	// Handshake responses as the conformance server writes them, and broken ones.
	accept := "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455 section 1.3 example
	base := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n"
	resp := map[string]string{
		"plain":        base + "\r\n",
		"deflate":      base + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
		"deflate-nct":  base + "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n\r\n",
		"deflate-smwb": base + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n\r\n",
		"protocol":     base + "Sec-WebSocket-Protocol: chat\r\n\r\n",
		"not-101":      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"no-upgrade":   "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n",
		"no-accept":    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"bad-accept":   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n",
		"redirect":     "HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/x\r\n\r\n",
		"with-frame":   base + "\r\n" + string(cases.Text("early frame")),
	}
	for name, r := range resp {
		check(c.add("FuzzHandshakeResponse", name, bytesVal([]byte(r), 4096)))
	}
	for _, t := range targets {
		fmt.Printf("%s: %d seeds in %s\n", t, c.count[t], filepath.Join(*out, t))
	}
}
