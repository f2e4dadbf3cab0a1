package wsengine

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// The engine's read and write paths per message, with allocations
// (go test -run - -bench . -benchmem ./wsengine, or make bench). Each runs one
// client Conn over 127.0.0.1 against a raw server goroutine that writes
// pre-encoded frames or discards what it reads, so the figures are the
// engine's (plus the kernel's), not a peer's.

// benchServer accepts one connection, answers the handshake and runs serve.
func benchServer(b *testing.B, serve func(nc net.Conn, br io.Reader)) (url string, done chan struct{}) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done = make(chan struct{})
	go func() {
		defer close(done)
		defer ln.Close()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		serve(nc, br)
	}()
	return "ws://" + ln.Addr().String() + "/bench", done
}

// benchConn connects a client Conn whose events go to emit and waits until
// it is open.
func benchConn(b *testing.B, url string, emit func(Event)) *Conn {
	b.Helper()
	open := make(chan struct{})
	var once atomic.Bool
	c, err := NewConn(url, func(e Event) {
		if e.Type == EventEstablished && once.CompareAndSwap(false, true) {
			close(open)
		}
		emit(e)
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Connect(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-open:
	case <-time.After(10 * time.Second):
		b.Fatal("no open")
	}
	return c
}

// endBench abandons c and waits for its goroutines and the server's.
func endBench(b *testing.B, c *Conn, done chan struct{}) {
	c.Abandon()
	waitRun(b, c)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.Fatal("the server goroutine did not end")
	}
}

// BenchmarkReceive100B: the read path, text messages of 100 bytes from the
// server (one frame each) to EventReceive, whose buffer the consumer hands
// back once done with it, as the C ABI and the helper do.
func BenchmarkReceive100B(b *testing.B) {
	msg := bytes.Repeat([]byte("r"), 100)
	var one bytes.Buffer
	ws.WriteFrame(&one, ws.NewTextFrame(msg))
	frames := bytes.Repeat(one.Bytes(), b.N)
	url, done := benchServer(b, func(nc net.Conn, _ io.Reader) {
		nc.Write(frames)
		io.Copy(io.Discard, nc) // until the client goes
	})
	var got atomic.Int64
	all := make(chan struct{})
	c := benchConn(b, url, func(e Event) {
		if e.Type == EventReceive {
			RecyclePayload(e.Data)
			if got.Add(1) == int64(b.N) {
				close(all)
			}
		}
	})
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d messages", got.Load(), b.N)
	}
	b.StopTimer()
	endBench(b, c, done)
}

// BenchmarkSend100B: the write path, Send of text messages of 100 bytes
// (masked frames on the wire) until the server has read them all, each
// copied into a buffer of NewPayload and sent with SendPayload, as the C ABI
// does with the caller's bytes.
func BenchmarkSend100B(b *testing.B) {
	msg := bytes.Repeat([]byte("s"), 100)
	want := int64(b.N) * (2 + 4 + 100) // header, mask key, payload
	read := make(chan int64, 1)
	url, done := benchServer(b, func(nc net.Conn, br io.Reader) {
		var n int64
		buf := make([]byte, 64<<10)
		for n < want {
			k, err := br.Read(buf)
			n += int64(k)
			if err != nil {
				break
			}
		}
		read <- n
		io.Copy(io.Discard, br)
	})
	c := benchConn(b, url, func(Event) {})
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for {
			p := NewPayload(len(msg))
			copy(p, msg)
			err := c.SendPayload(OpText, p)
			if err == nil {
				break
			}
			if err != ErrQueueFull {
				b.Fatal(err)
			}
			time.Sleep(50 * time.Microsecond) // the queue drains; try again
		}
	}
	select {
	case n := <-read:
		if n < want {
			b.Fatalf("server read %d of %d bytes", n, want)
		}
	case <-time.After(5 * time.Minute):
		b.Fatal("the server did not read everything")
	}
	b.StopTimer()
	endBench(b, c, done)
}
