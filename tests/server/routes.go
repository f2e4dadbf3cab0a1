package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

func qint(r *http.Request, name string, def int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get(name)); err == nil {
		return v
	}
	return def
}

// raw101 writes a handshake answer built by edit from the correct one.
func raw101(w http.ResponseWriter, r *http.Request, edit func(h map[string]string) []string) {
	c, _, ok := hijack(w)
	if !ok {
		return
	}
	defer c.Close()
	h := map[string]string{
		"Upgrade":              "websocket",
		"Connection":           "Upgrade",
		"Sec-WebSocket-Accept": acceptKey(r.Header.Get("Sec-WebSocket-Key")),
	}
	order := edit(h)
	resp := "HTTP/1.1 101 Switching Protocols\r\n"
	for _, k := range order {
		if v, ok := h[k]; ok {
			resp += k + ": " + v + "\r\n"
		}
	}
	io.WriteString(c, resp+"\r\n")
	// Stay a little so a client that accepted it by mistake sees an open connection.
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, c)
}

// hold returns the channel that /slow?hold=key waits on (made on first use).
func (s *server) hold(key string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.holds[key]
	if ch == nil {
		ch = make(chan struct{})
		s.holds[key] = ch
	}
	return ch
}

// release closes that channel (once; it stays closed for a /slow that comes later).
func (s *server) release(key string) {
	ch := s.hold(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

var std101 = []string{"Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol"}

func (s *server) route(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/echo", "/":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		wc := newWSConn(c, br)
		id := r.URL.Query().Get("id")
		if id != "" {
			s.mu.Lock()
			s.live[id] = wc
			s.mu.Unlock()
		}
		rec := wc.echo()
		if id != "" {
			s.mu.Lock()
			s.closes[id] = rec
			delete(s.live, id)
			s.mu.Unlock()
		}
	case "/closeinfo":
		id := r.URL.Query().Get("id")
		s.mu.Lock()
		rec, done := s.closes[id]
		if wc := s.live[id]; !done && wc != nil {
			rec.Pings = int(wc.pings.Load())
		}
		s.mu.Unlock()
		writeJSON(w, r, rec)
	case "/stats":
		s.mu.Lock()
		st := map[string]any{"tunnels": s.tunnels, "auth_tunnels": s.authTunnels,
			"auth_rejected": s.authRejected, "last_target": s.lastTarget}
		s.mu.Unlock()
		writeJSON(w, r, st)
	case "/kill":
		ms := qint(r, "ms", 1500)
		writeJSON(w, r, map[string]any{"killed": true, "ms": ms})
		go s.kill.kill(time.Duration(ms) * time.Millisecond)
	case "/revive":
		s.kill.revive()
		writeJSON(w, r, map[string]any{"revived": true})
	case "/release":
		s.release(r.URL.Query().Get("key"))
		writeJSON(w, r, map[string]any{"released": true})
	case "/headers":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		hs := map[string]string{"_uri": r.RequestURI, "_host": r.Host}
		for k, v := range r.Header {
			hs[k] = strings.Join(v, ", ")
		}
		b, _ := json.Marshal(hs)
		wc := newWSConn(c, br)
		wc.write(opText, b)
		wc.echo()
	case "/subproto":
		chosen := ""
	outer:
		for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
			for _, p := range strings.Split(v, ",") {
				switch p = strings.TrimSpace(p); p {
				case "chat", "superchat", "echo-protocol":
					chosen = p
					break outer
				}
			}
		}
		c, br, ok := upgrade(w, r, chosen)
		if !ok {
			return
		}
		newWSConn(c, br).echo()
	case "/badproto":
		raw101(w, r, func(h map[string]string) []string { h["Sec-WebSocket-Protocol"] = "bogus"; return std101 })
	case "/status200":
		io.WriteString(w, "hello, this is not a websocket server\n")
	case "/status404":
		http.NotFound(w, r)
	case "/garbage":
		c, _, ok := hijack(w)
		if !ok {
			return
		}
		c.Write([]byte("\x00\xff\xfe garbage \x01\x02\x03 not HTTP at all \x7f\r\n\r\n"))
		time.Sleep(100 * time.Millisecond)
		c.Close()
	case "/hangup":
		if c, _, ok := hijack(w); ok {
			c.Close()
		}
	case "/halfhs":
		if c, _, ok := hijack(w); ok {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
	case "/badaccept":
		raw101(w, r, func(h map[string]string) []string {
			h["Sec-WebSocket-Accept"] = acceptKey("wrong key")
			return std101
		})
	case "/noupgrade":
		raw101(w, r, func(h map[string]string) []string { delete(h, "Upgrade"); return std101 })
	case "/noconnection":
		raw101(w, r, func(h map[string]string) []string { delete(h, "Connection"); return std101 })
	case "/noaccept":
		raw101(w, r, func(h map[string]string) []string { delete(h, "Sec-WebSocket-Accept"); return std101 })
	case "/upgradeother":
		raw101(w, r, func(h map[string]string) []string { h["Upgrade"] = "h2c"; return std101 })
	case "/redirect":
		hops := qint(r, "hops", 1)
		target := "/echo"
		if hops > 1 {
			target = fmt.Sprintf("/redirect?hops=%d&loc=%s", hops-1, r.URL.Query().Get("loc"))
		}
		scheme := "ws"
		if r.TLS != nil {
			scheme = "wss"
		}
		switch r.URL.Query().Get("loc") {
		case "rel":
		case "http":
			target = strings.Replace(scheme, "ws", "http", 1) + "://" + r.Host + target
		default:
			target = scheme + "://" + r.Host + target
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusFound)
	case "/redirect_noloc":
		w.WriteHeader(http.StatusFound)
	case "/noping":
		c, _, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		io.Copy(io.Discard, c) // pings are read and never answered
	case "/closewith":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		time.Sleep(time.Duration(qint(r, "delay_ms", 0)) * time.Millisecond)
		newWSConn(c, br).closeHandshake(qint(r, "code", 0), r.URL.Query().Get("reason"))
	case "/drop":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		msg := r.URL.Query().Get("msg")
		if msg == "" {
			msg = "bye"
		}
		newWSConn(c, br).write(opText, []byte(msg))
		time.Sleep(50 * time.Millisecond)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	case "/slow":
		c, br, ok := hijack(w)
		if !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+acceptKey(r.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		if key := r.URL.Query().Get("hold"); key != "" {
			select {
			case <-s.hold(key):
			case <-time.After(time.Duration(qint(r, "ms", 60000)) * time.Millisecond):
			}
		} else {
			time.Sleep(time.Duration(qint(r, "ms", 1500)) * time.Millisecond)
		}
		// Then read everything; answer the close so the client ends cleanly.
		wc := newWSConn(c, br)
		wc.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			if _, _, err := wc.readMessage(); err != nil {
				break
			}
		}
		c.Close()
	case "/push":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		wc := newWSConn(c, br)
		n, size := qint(r, "n", 10), qint(r, "size", 0)
		op := opText
		if r.URL.Query().Get("binary") == "1" {
			op = opBinary
		}
		for i := 1; i <= n; i++ {
			p := []byte(strconv.Itoa(i))
			for len(p) < size {
				p = append(p, '.')
			}
			if wc.write(op, p) != nil {
				c.Close()
				return
			}
		}
		wc.echo()
	case "/fragments":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		wc := newWSConn(c, br)
		wc.writeFrame(ws.NewFrame(ws.OpText, false, []byte("Hello, ")))
		wc.writeFrame(ws.NewFrame(ws.OpPing, true, []byte("inside")))
		wc.writeFrame(ws.NewFrame(ws.OpContinuation, false, []byte("fragmented ")))
		wc.writeFrame(ws.NewFrame(ws.OpContinuation, true, []byte("world")))
		wc.writeFrame(ws.NewFrame(ws.OpBinary, false, []byte{0, 1, 2}))
		wc.writeFrame(ws.NewFrame(ws.OpContinuation, false, nil))
		wc.writeFrame(ws.NewFrame(ws.OpContinuation, true, []byte{3, 255}))
		wc.echo()
	case "/big":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		n := qint(r, "n", 1<<20)
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i % 251)
		}
		wc := newWSConn(c, br)
		wc.write(opBinary, p)
		rec := wc.echo()
		if id := r.URL.Query().Get("id"); id != "" {
			s.mu.Lock()
			s.closes[id] = rec
			s.mu.Unlock()
		}
	case "/serverping":
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		wc := newWSConn(c, br)
		wc.onPong = func(p []byte) { wc.write(opText, append([]byte("pong:"), p...)) }
		wc.writeFrame(ws.NewFrame(ws.OpPing, true, []byte(r.URL.Query().Get("payload"))))
		wc.echo()
	case "/pingwhile":
		// Echoes; a text "ping me" is answered by a ping instead, and its pong
		// by "pong after N ms" (N from the ping): a client whose script is busy
		// in a handler must still answer pings.
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		defer c.Close()
		wc := newWSConn(c, br)
		var sent time.Time
		wc.onPong = func(p []byte) {
			wc.write(opText, fmt.Appendf(nil, "pong after %d ms", time.Since(sent).Milliseconds()))
		}
		for {
			op, p, err := wc.readMessage()
			if err != nil {
				return
			}
			if op == opText && string(p) == "ping me" {
				sent = time.Now()
				wc.writeFrame(ws.NewFrame(ws.OpPing, true, []byte("busy")))
				continue
			}
			wc.write(op, p)
		}
	case "/delay":
		time.Sleep(time.Duration(qint(r, "ms", 1000)) * time.Millisecond)
		c, br, ok := upgrade(w, r, "")
		if !ok {
			return
		}
		newWSConn(c, br).echo()
	case "/endlessheader":
		c, _, ok := hijack(w)
		if !ok {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+acceptKey(r.Header.Get("Sec-WebSocket-Key"))+"\r\nX-Endless: ")
		// Until the client hangs up (a write fails), at most mb MiB, within 60 s.
		c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		chunk := []byte(strings.Repeat("a", 64<<10))
		sent := 0
		for i := 0; i < qint(r, "mb", 1)*16; i++ {
			if _, err := c.Write(chunk); err != nil {
				break
			}
			sent += len(chunk)
		}
		log.Printf("/endlessheader: %d bytes of the header line written", sent)
	case "/manyheaders":
		c, br, ok := hijack(w)
		if !ok {
			return
		}
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n"
		for i := 0; i < qint(r, "n", 200); i++ {
			resp += fmt.Sprintf("X-Header-%d: %d\r\n", i, i)
		}
		io.WriteString(c, resp+"\r\n")
		newWSConn(c, br).echo()
	default:
		log.Printf("unknown route %s", r.URL.Path)
		http.NotFound(w, r)
	}
}
