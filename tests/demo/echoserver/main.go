// Command echoserver is the WebSocket echo server of `make demo` and `make bench`.
//
// It listens on 127.0.0.1 (an ephemeral port by default), prints its URL as the
// first line on stdout, and echoes every text or binary message back with the
// same opcode. With -close-after N it starts the closing handshake (1000) after
// the Nth echo on a connection; with -tls-dir it makes a throwaway CA, a server
// certificate for 127.0.0.1 and a client certificate (ca.pem, ws.pem, ws.key in
// that directory) and serves wss://, requiring a client certificate from that CA.
// It exits after -max-time, so a forgotten server never outlives its run.
// A connection to /push?n=N&size=S first receives N text messages of S bytes
// written as fast as the socket takes them (the ingest workload of `make
// bench`), then echoes like any other.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/verawebsockets/verawebsockets/internal/testpki"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	closeAfter := flag.Int("close-after", 0, "close each connection (1000) after this many echoes; 0 = never")
	tlsDir := flag.String("tls-dir", "", "make certificates in this directory and serve wss:// with client certificates")
	maxTime := flag.Duration("max-time", 10*time.Minute, "exit after this long")
	quiet := flag.Bool("quiet", false, "log nothing but errors")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("echoserver: ")

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	scheme := "ws"
	if *tlsDir != "" {
		cfg, err := makeTLS(*tlsDir)
		if err != nil {
			log.Fatal(err)
		}
		ln = tls.NewListener(ln, cfg)
		scheme = "wss"
	}
	fmt.Printf("%s://%s/\n", scheme, ln.Addr())
	os.Stdout.Sync()
	time.AfterFunc(*maxTime, func() {
		log.Printf("max-time %v reached, exiting", *maxTime)
		os.Exit(0)
	})
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, *closeAfter, *quiet)
	}
}

func serve(c net.Conn, closeAfter int, quiet bool) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var uri string
	up := ws.Upgrader{OnRequest: func(u []byte) error { uri = string(u); return nil }}
	if _, err := up.Upgrade(c); err != nil {
		log.Printf("%s: upgrade: %v", c.RemoteAddr(), err)
		return
	}
	if tc, ok := c.(*tls.Conn); ok && !quiet {
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
			log.Printf("%s: TLS client certificate CN=%s", c.RemoteAddr(), st.PeerCertificates[0].Subject.CommonName)
		}
	}
	c.SetDeadline(time.Time{})
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	rw := struct {
		io.Reader
		io.Writer
	}{br, c} // control replies (pong, close) go straight to the socket
	if u, err := url.Parse(uri); err == nil && u.Path == "/push" {
		if err := push(bw, u.Query()); err != nil {
			log.Printf("%s: push: %v", c.RemoteAddr(), err)
			return
		}
	}
	for n := 1; ; n++ {
		p, op, err := wsutil.ReadClientData(rw)
		if err != nil {
			var ce wsutil.ClosedError
			if !errors.As(err, &ce) && !errors.Is(err, io.EOF) {
				log.Printf("%s: read: %v", c.RemoteAddr(), err)
			}
			return
		}
		if err = wsutil.WriteServerMessage(bw, op, p); err == nil {
			err = bw.Flush()
		}
		if err != nil {
			log.Printf("%s: write: %v", c.RemoteAddr(), err)
			return
		}
		if closeAfter > 0 && n == closeAfter {
			if !quiet {
				log.Printf("%s: %d echoes done, closing (1000)", c.RemoteAddr(), n)
			}
			body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "demo done")
			if err := ws.WriteFrame(c, ws.NewCloseFrame(body)); err != nil {
				return
			}
			// Wait for the client's close frame (bounded), then drop the TCP connection.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				h, err := ws.ReadHeader(br)
				if err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, br, h.Length); err != nil || h.OpCode == ws.OpClose {
					return
				}
			}
		}
	}
}

// push writes q's n text messages of q's size bytes ("x" repeated) through bw.
func push(bw *bufio.Writer, q url.Values) error {
	n, _ := strconv.Atoi(q.Get("n"))
	size, _ := strconv.Atoi(q.Get("size"))
	if n < 0 || n > 10_000_000 || size < 0 || size > 1<<20 {
		return fmt.Errorf("bad n=%d size=%d", n, size)
	}
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = 'x'
	}
	for i := 0; i < n; i++ {
		if err := wsutil.WriteServerMessage(bw, ws.OpText, msg); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// makeTLS writes ca.pem, ws.pem and ws.key (the client's) into dir and returns a
// server config for 127.0.0.1 that requires a client certificate signed by the CA.
func makeTLS(dir string) (*tls.Config, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := testpki.CA("verawebsockets demo CA")
	if err != nil {
		return nil, err
	}
	server, err := testpki.Leaf("127.0.0.1", x509.ExtKeyUsageServerAuth, ca)
	if err != nil {
		return nil, err
	}
	client, err := testpki.Leaf("verawebsockets-demo-client", x509.ExtKeyUsageClientAuth, ca)
	if err != nil {
		return nil, err
	}
	if err := ca.SaveCert(dir, "ca.pem"); err != nil {
		return nil, err
	}
	if err := client.Save(dir, "ws"); err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{server.TLS()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	}, nil
}
