package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

// driver plays the server-role cases: it runs the Lua echo server and
// connects to it once per case, as a raw-frame client.
type driver struct {
	*suite
	lua    []string // interpreter command
	so     string   // directory of verawebsockets.so
	script string   // tests/conformance/server.lua
	ports  map[string]string
}

// optionSet is the ws.listen options of a case, as server.lua takes them.
func optionSet(c *cases.Case) string { return strings.Join(c.Options, ";") }

// main starts the Lua server, plays every case in order, stops the server
// and prints the report; it returns the exit status. A message on stop ends
// the run early (the cases not played fail).
func (d *driver) main(stop <-chan string) int {
	var sets []string
	seen := map[string]bool{}
	for i := range d.all {
		if o := optionSet(&d.all[i]); !seen[o] {
			seen[o] = true
			sets = append(sets, o)
		}
	}
	cmd, err := d.start(sets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		d.finish("the Lua server did not start: " + err.Error())
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(os.Stderr, "conformance: %d server-role cases against %s (%d listeners)\n", len(d.all), strings.Join(cmd.Args, " "), len(sets))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range d.all {
			select {
			case <-exited:
				return
			default:
			}
			d.record(d.all[i].ID, d.runCase(&d.all[i]))
		}
	}()
	why := ""
	select {
	case <-done:
	case why = <-stop:
	case err := <-exited:
		why = fmt.Sprintf("the Lua server exited during the run (%v)", err)
	}
	// Stop the server: /quit makes it close its listeners and leave ws.loop.
	if why == "" {
		d.quit()
		select {
		case err := <-exited:
			if err != nil {
				why = fmt.Sprintf("the Lua server exited with %v", err)
			}
		case <-time.After(10 * time.Second * timeFactor):
			why = "the Lua server did not exit within 10 s of /quit"
		}
	}
	cmd.Process.Kill()
	d.finish(why)
	return 0 // not reached: finish exits
}

// start runs server.lua with one ws.listen per option set and reads its
// "PORT <i> <port>" lines up to "READY".
func (d *driver) start(sets []string) (*exec.Cmd, error) {
	if len(d.lua) == 0 {
		return nil, fmt.Errorf("no Lua interpreter command")
	}
	args := append(append(append([]string(nil), d.lua[1:]...), d.script), sets...)
	cmd := exec.Command(d.lua[0], args...)
	cmd.Env = append(os.Environ(), "LUA_CPATH="+d.so+"/?.so;;")
	cmd.Stderr = os.Stderr
	// The server must not outlive this process (tests/conformance/server.lua
	// also leaves its loop after VWS_CONF_SERVER_MS).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d.ports = map[string]string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(20 * time.Second * timeFactor)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Process.Kill()
				cmd.Wait()
				return nil, fmt.Errorf("%s exited before READY", d.script)
			}
			var i, port int
			if l == "READY" {
				go func() {
					for l := range lines { // the server's later output, if any
						fmt.Fprintln(os.Stderr, "server.lua:", l)
					}
				}()
				return cmd, nil
			}
			if n, _ := fmt.Sscanf(l, "PORT %d %d", &i, &port); n == 2 && i >= 0 && i < len(sets) {
				d.ports[sets[i]] = "127.0.0.1:" + strconv.Itoa(port)
			} else {
				fmt.Fprintln(os.Stderr, "server.lua:", l)
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s printed no READY within 20 s", d.script)
		}
	}
}

// quit opens /quit on the first listener.
func (d *driver) quit() {
	for _, addr := range d.ports {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(nc)
		if _, _, _, err := clientHandshake(nc, br, "/quit", nil); err != nil {
			return
		}
		// The server closes every connection (1001): answer, then wait for
		// it to close TCP.
		w := &wire{nc: nc, br: br, events: make(chan event, 16), peerServer: true}
		go w.readLoop()
		for e := range w.events {
			if e.kind == evClose {
				nc.Write((&masker{}).mask(cases.CloseFrame(1000, "")))
			}
		}
		return
	}
}

func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// runCase connects to the server for c's options and plays c.
func (d *driver) runCase(c *cases.Case) result {
	start := time.Now()
	deadline := start.Add(c.Limit())
	addr := d.ports[optionSet(c)]
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second*timeFactor)
	if err != nil {
		return result{grade: gradeFailed, reason: "connect: " + err.Error(), dur: time.Since(start)}
	}
	nc.SetDeadline(deadline)
	br := bufio.NewReaderSize(nc, 64<<10)
	hsProblem, p, unimplemented, err := clientHandshake(nc, br, "/case/"+c.ID, c.Offers)
	if err != nil {
		nc.Close()
		return result{grade: gradeFailed, reason: "handshake: " + err.Error(), dur: time.Since(start)}
	}
	w := &wire{nc: nc, br: br, events: make(chan event, 4096), peerServer: true, pmd: p}
	go w.readLoop()
	r := &runner{wire: w, c: c, deadline: deadline, mask: &masker{}}
	return r.play(start, hsProblem, unimplemented)
}

// clientHandshake sends an opening handshake for path with the
// permessage-deflate offers and checks the server's response (RFC 6455
// section 4.2.2, RFC 7692 section 7.1). err: no usable 101 at all.
func clientHandshake(nc net.Conn, br *bufio.Reader, path string, offers []string) (problem string, p *pmd, unimplemented string, err error) {
	key := newKey()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, nc.RemoteAddr(), key)
	if len(offers) > 0 {
		req += "Sec-WebSocket-Extensions: " + strings.Join(offers, ", ") + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		return "", nil, "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return "", nil, "", fmt.Errorf("status %s, want 101", resp.Status)
	}
	var bad []string
	if !hasToken(resp.Header, "Upgrade", "websocket") {
		bad = append(bad, fmt.Sprintf("Upgrade %q", resp.Header.Get("Upgrade")))
	}
	if !hasToken(resp.Header, "Connection", "upgrade") {
		bad = append(bad, fmt.Sprintf("Connection %q", resp.Header.Get("Connection")))
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(h[:]); got != want {
		bad = append(bad, fmt.Sprintf("Sec-WebSocket-Accept %q, want %q", got, want))
	}
	if v := resp.Header.Values("Sec-WebSocket-Protocol"); len(v) > 0 {
		bad = append(bad, fmt.Sprintf("Sec-WebSocket-Protocol %q chosen, none offered", v))
	}
	exts := parseExtensions(resp.Header.Values("Sec-WebSocket-Extensions"))
	switch {
	case len(offers) == 0 && len(exts) > 0:
		bad = append(bad, fmt.Sprintf("extensions %q in the response, none offered", resp.Header.Values("Sec-WebSocket-Extensions")))
	case len(offers) > 0 && len(exts) == 0:
		unimplemented = fmt.Sprintf("the server declined permessage-deflate (offers %q)", offers)
	case len(exts) > 1:
		bad = append(bad, fmt.Sprintf("%d extensions accepted: %q", len(exts), resp.Header.Values("Sec-WebSocket-Extensions")))
	case len(exts) == 1:
		var why string
		for _, o := range parseExtensions(offers) {
			if p, why = acceptDeflate(exts[0], o); p != nil {
				break
			}
		}
		if p == nil {
			bad = append(bad, fmt.Sprintf("response %q accepts none of the offers %q: %s", resp.Header.Values("Sec-WebSocket-Extensions"), offers, why))
		}
	}
	return strings.Join(bad, "; "), p, unimplemented, nil
}

// extension is one element of a Sec-WebSocket-Extensions list: the name and
// its parameters in order (RFC 6455 section 9.1; values may be quoted).
type extension struct {
	name   string
	params [][2]string // name, value ("" when none)
	valued []bool
}

func parseExtensions(values []string) []extension {
	var out []extension
	for _, v := range values {
		for _, el := range strings.Split(v, ",") {
			parts := strings.Split(el, ";")
			e := extension{name: strings.TrimSpace(parts[0])}
			if e.name == "" {
				continue
			}
			for _, p := range parts[1:] {
				k, val, has := strings.Cut(strings.TrimSpace(p), "=")
				val = strings.Trim(strings.TrimSpace(val), `"`)
				e.params = append(e.params, [2]string{strings.TrimSpace(k), val})
				e.valued = append(e.valued, has)
			}
			out = append(out, e)
		}
	}
	return out
}

// acceptDeflate checks a permessage-deflate response against one offer
// (RFC 7692 sections 7.1.1 and 7.1.2) and returns the agreement, or nil
// and why not.
func acceptDeflate(resp, offer extension) (*pmd, string) {
	if resp.name != "permessage-deflate" {
		return nil, fmt.Sprintf("extension %q not offered", resp.name)
	}
	bits := func(e extension, name string) (n int, present, valued bool) {
		for i, p := range e.params {
			if p[0] == name {
				n, _ = strconv.Atoi(p[1])
				return n, true, e.valued[i]
			}
		}
		return 0, false, false
	}
	seen := map[string]bool{}
	for i, p := range resp.params {
		if seen[p[0]] {
			return nil, fmt.Sprintf("parameter %s repeated", p[0])
		}
		seen[p[0]] = true
		switch p[0] {
		case "server_no_context_takeover", "client_no_context_takeover":
			if resp.valued[i] {
				return nil, fmt.Sprintf("%s with a value", p[0])
			}
		case "server_max_window_bits", "client_max_window_bits":
			if n, err := strconv.Atoi(p[1]); !resp.valued[i] || err != nil || n < 8 || n > 15 {
				return nil, fmt.Sprintf("%s=%q is not 8..15", p[0], p[1])
			}
		default:
			return nil, fmt.Sprintf("unknown parameter %s", p[0])
		}
	}
	a := &pmd{peerWindow: 15, ownWindow: 15}
	if n, ok, _ := bits(offer, "server_max_window_bits"); ok {
		m, has, _ := bits(resp, "server_max_window_bits")
		if !has || m > n {
			return nil, fmt.Sprintf("the offer's server_max_window_bits=%d must be answered with %d or less (section 7.1.2.1)", n, n)
		}
	}
	if m, has, _ := bits(resp, "server_max_window_bits"); has {
		a.peerWindow = m
	}
	if m, has, _ := bits(resp, "client_max_window_bits"); has {
		n, offered, valued := bits(offer, "client_max_window_bits")
		if !offered {
			return nil, "client_max_window_bits in the response, not in the offer (section 7.1.2.2)"
		}
		if valued && m > n {
			return nil, fmt.Sprintf("client_max_window_bits=%d over the offer's %d", m, n)
		}
		a.ownWindow = m
	}
	_, offeredNoCtx, _ := bits(offer, "server_no_context_takeover")
	a.peerNoContext = seen["server_no_context_takeover"]
	if offeredNoCtx && !a.peerNoContext {
		return nil, "the offer's server_no_context_takeover is not in the response (section 7.1.1.1)"
	}
	a.ownNoContext = seen["client_no_context_takeover"]
	return a, ""
}

// masker turns the byte stream of a case, frames as a server writes them,
// into a client's: every frame gets the mask bit and a fresh random key, and
// its payload is masked (RFC 6455 section 5.3). It works on a stream: a
// frame may be split over several writes, down to single bytes. A frame
// that is masked already passes unchanged.
type masker struct {
	hdr  []byte // the current frame's header so far
	left uint64 // payload bytes of the current frame still to come
	pos  uint64 // payload bytes masked so far
	key  [4]byte
	pass bool // the frame came masked: copy it
}

func (m *masker) mask(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		if m.hdr == nil && m.left > 0 { // payload
			n := min(uint64(len(b)), m.left)
			for i := uint64(0); i < n; i++ {
				c := b[i]
				if !m.pass {
					c ^= m.key[(m.pos+i)%4]
				}
				out = append(out, c)
			}
			m.pos += n
			m.left -= n
			b = b[n:]
			continue
		}
		c := b[0]
		b = b[1:]
		m.hdr = append(m.hdr, c)
		if len(m.hdr) == 2 {
			m.pass = c&0x80 != 0
			c |= 0x80
		}
		out = append(out, c)
		if len(m.hdr) < 2 {
			continue
		}
		n := 2
		switch m.hdr[1] & 0x7f {
		case 126:
			n += 2
		case 127:
			n += 8
		}
		if m.pass {
			n += 4
		}
		if len(m.hdr) < n {
			continue
		}
		switch l := m.hdr[1] & 0x7f; l {
		case 126:
			m.left = uint64(m.hdr[2])<<8 | uint64(m.hdr[3])
		case 127:
			m.left = 0
			for _, x := range m.hdr[2:10] {
				m.left = m.left<<8 | uint64(x)
			}
		default:
			m.left = uint64(l)
		}
		if !m.pass {
			rand.Read(m.key[:])
			out = append(out, m.key[:]...)
		}
		m.hdr, m.pos = nil, 0
	}
	return out
}
