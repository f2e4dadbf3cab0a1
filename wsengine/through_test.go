package wsengine

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// stalledReader handshakes, waits for start, then reads n binary messages and
// reports each one's sequence number (its first 4 bytes) on got.
func stalledReader(start <-chan struct{}, got chan<- uint32) func(net.Conn) {
	return func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		<-start
		for {
			f, err := readClientFrame(br)
			if err != nil || f.Header.OpCode == ws.OpClose {
				return
			}
			if len(f.Payload) >= 4 {
				got <- binary.BigEndian.Uint32(f.Payload)
			}
		}
	}
}

// TestWriteThroughStalledPeer: sends of at most writeThroughMax bytes to a peer
// that does not read never block the caller, however full the socket; what the
// socket does not take goes to the writer, in order, within max_send_queue.
func TestWriteThroughStalledPeer(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := "ws"
		if secure {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) {
			start := make(chan struct{})
			got := make(chan uint32, 4096)
			var srv *server
			var opts []string
			if secure {
				p := newPKI(t)
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv = serveOn(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{p.server}}), stalledReader(start, got))
				srv.url = "wss://" + ln.Addr().String()
				opts = []string{"client_ssl_ca_filepath", p.caFile}
			} else {
				srv = newServer(t, stalledReader(start, got))
			}
			opts = append(opts, "max_send_queue", "1048576")
			c, ev := dialTest(t, srv.url, opts...)
			ev.expect(EventEstablished)
			c.mu.Lock()
			c.sess.sc.Conn.(*net.TCPConn).SetWriteBuffer(4096) // fills after a few messages
			c.mu.Unlock()
			sent := uint32(0)
			for full := false; !full && sent < 4096; {
				p := make([]byte, writeThroughMax)
				binary.BigEndian.PutUint32(p, sent)
				t0 := time.Now()
				err := c.Send(OpBinary, p)
				if d := time.Since(t0); d > time.Second {
					t.Fatalf("send %d took %v", sent, d)
				}
				switch err {
				case nil:
					sent++
				case ErrQueueFull:
					full = true
				default:
					t.Fatal(err)
				}
			}
			if sent == 4096 {
				t.Fatal("the queue never filled")
			}
			close(start)
			for i := uint32(0); i < sent; i++ {
				select {
				case n := <-got:
					if n != i {
						t.Fatalf("message %d arrived as %d", n, i)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("only %d of %d messages arrived", i, sent)
				}
			}
			for i := 0; c.Buffered() != 0; i++ {
				if i == 500 {
					t.Fatalf("buffered %d after the peer read everything", c.Buffered())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
