package main

import (
	"bufio"
	"encoding/base64"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// serveProxy is a tiny HTTP CONNECT proxy. With auth ("user:pass") it requires
// Proxy-Authorization: Basic. Tunnels only to 127.0.0.1/localhost.
func (s *server) serveProxy(ln net.Listener, auth string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.tunnel(c, auth)
	}
}

func (s *server) tunnel(c net.Conn, auth string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	if auth != "" && req.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(auth)) {
		s.mu.Lock()
		s.authRejected++
		s.mu.Unlock()
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"vws\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	host, _, err := net.SplitHostPort(req.Host)
	if err != nil || (host != "127.0.0.1" && !strings.EqualFold(host, "localhost")) {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", req.Host, 5*time.Second)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	defer up.Close()
	s.mu.Lock()
	if auth != "" {
		s.authTunnels++
	} else {
		s.tunnels++
	}
	s.lastTarget = req.Host
	s.mu.Unlock()
	log.Printf("proxy: tunnel to %s (auth=%v)", req.Host, auth != "")
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() {
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			up.Write(b)
		}
		io.Copy(up, c)
		done <- struct{}{}
	}()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}
