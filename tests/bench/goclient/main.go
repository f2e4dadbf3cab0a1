// Command goclient is the reference side of `make bench`: the same workloads as
// tests/bench/bench.lua, done by a plain Go client on gobwas/ws, against the same
// echo server. It prints one line per workload:
//
//	rtt N SECONDS    N round trips of a -size byte text message, the next sent on receipt
//	mib N SECONDS    N echoes of a 1 MiB binary message, the next sent on receipt
//	ingest N SECONDS N text messages of -size bytes pushed by the server (URL path
//	                 /push), from the end of the handshake to the last one read
//	OPEN N           (-idle N) N connections open; they stay idle for -hold, then
//	                 close (a close frame each, the peer's answer awaited up to 5 s)
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func main() {
	url := flag.String("url", "", "ws:// URL of the echo server")
	rtts := flag.Int("rtt", 20000, "round trips of the small text message (0 = skip)")
	size := flag.Int("size", 100, "size of the small text message in bytes")
	mibs := flag.Int("mib", 64, "echoes of a 1 MiB binary message (0 = skip)")
	ingest := flag.Int("ingest", 0, "messages of -size bytes the server pushes (0 = skip)")
	idle := flag.Int("idle", 0, "open this many idle connections, hold them for -hold, close them (0 = skip)")
	hold := flag.Duration("hold", 10*time.Second, "how long -idle holds its connections")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("goclient: ")
	if *idle > 0 {
		runIdle(*url, *idle, *hold)
		return
	}
	if *ingest > 0 {
		runIngest(fmt.Sprintf("%spush?n=%d&size=%d", *url, *ingest, *size), *ingest, *size)
	}
	if *rtts == 0 && *mibs == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, *url)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{bufio.NewReaderSize(r, 64<<10), conn}
	bw := bufio.NewWriterSize(conn, 64<<10)

	run := func(name string, n int, op ws.OpCode, msg []byte) {
		if n == 0 {
			return
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := wsutil.WriteClientMessage(bw, op, msg); err != nil {
				log.Fatal(err)
			}
			if err := bw.Flush(); err != nil {
				log.Fatal(err)
			}
			p, gotOp, err := wsutil.ReadServerData(rw)
			if err != nil {
				log.Fatal(err)
			}
			if gotOp != op || !bytes.Equal(p, msg) {
				log.Fatalf("%s: echo %d differs (opcode %v, %d bytes)", name, i, gotOp, len(p))
			}
		}
		fmt.Printf("%s %d %.6f\n", name, n, time.Since(start).Seconds())
	}
	run("rtt", *rtts, ws.OpText, bytes.Repeat([]byte("x"), *size))
	run("mib", *mibs, ws.OpBinary, bytes.Repeat([]byte{0xa5}, 1<<20))
	body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
	ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewCloseFrame(body)))
}

// runIngest reads n pushed messages of size bytes from u and prints the time taken.
func runIngest(u string, n, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, u)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{bufio.NewReaderSize(r, 64<<10), conn}
	for i := 0; i < n; i++ {
		p, _, err := wsutil.ReadServerData(rw)
		if err != nil {
			log.Fatal(err)
		}
		if len(p) != size {
			log.Fatalf("ingest: message %d has %d bytes", i, len(p))
		}
	}
	fmt.Printf("ingest %d %.6f\n", n, time.Since(start).Seconds())
	body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
	ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewCloseFrame(body)))
}

// runIdle opens n connections to u, prints "OPEN n", holds them idle for hold and
// closes them with a close frame each, waiting up to 5 s for the peer's answers.
func runIdle(u string, n int, hold time.Duration) {
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, _, err := ws.Dial(ctx, u)
		cancel()
		if err != nil {
			log.Fatalf("idle: connection %d: %v", i+1, err)
		}
		conns = append(conns, conn)
	}
	fmt.Printf("OPEN %d\n", n)
	time.Sleep(hold)
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "") // masked in place: one each
			if ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewCloseFrame(body))) == nil {
				io.Copy(io.Discard, conn) // until the server closes
			}
		}()
	}
	wg.Wait()
}
