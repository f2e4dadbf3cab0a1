package wsengine

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// strictEcho is a server that checks every client frame (masked, final,
// no RSV bits, a known opcode, control payloads of at most 125 bytes,
// valid UTF-8 text), echoes messages and pongs pings, and meanwhile pings the
// client every pingEvery (the client's pongs are writes of the engine's
// writer). A bad frame ends it: the client sees the connection drop.
func strictEcho(t *testing.T, pingEvery time.Duration, bad *atomic.Value) func(net.Conn) {
	return func(nc net.Conn) {
		_, br, err := rawHandshake(nc, "")
		if err != nil {
			return
		}
		var wmu sync.Mutex
		write := func(b []byte) {
			wmu.Lock()
			nc.Write(b)
			wmu.Unlock()
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tk := time.NewTicker(pingEvery)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					write(frame(true, 0, ws.OpPing, []byte("p")))
				}
			}
		}()
		for {
			f, err := readClientFrame(bufio.NewReaderSize(br, 1))
			if err != nil {
				return
			}
			h := f.Header
			switch {
			case !h.Fin || h.Rsv != 0:
				bad.Store(fmt.Sprintf("frame fin=%v rsv=%d", h.Fin, h.Rsv))
				return
			case h.OpCode == ws.OpText && !utf8.Valid(f.Payload):
				bad.Store(fmt.Sprintf("text not UTF-8: %q", f.Payload))
				return
			case h.OpCode.IsControl() && len(f.Payload) > 125:
				bad.Store("control payload over 125 bytes")
				return
			}
			switch h.OpCode {
			case ws.OpText, ws.OpBinary:
				write(frame(true, 0, h.OpCode, f.Payload))
			case ws.OpPing:
				write(frame(true, 0, ws.OpPong, f.Payload))
			case ws.OpPong:
			case ws.OpClose:
				write(frame(true, 0, ws.OpClose, f.Payload))
				return
			default:
				bad.Store(fmt.Sprintf("opcode %d", h.OpCode))
				return
			}
		}
	}
}

// otherFrame is a masked client text frame of p, as the proxy writes it.
func otherFrame(p []byte) []byte {
	b := []byte{0x81, 0x80 | byte(len(p)), 0x12, 0x34, 0x56, 0x78}
	for i, c := range p {
		b = append(b, c^b[2+i&3])
	}
	return b
}

// TestShareWrites plays the other process: it writes small text frames to a
// duplicate of the socket under the gate, and sends through the engine when
// the gate is not free, while the engine writes pongs (the server pings
// every 200 µs), pings of its own and messages from two other goroutines
// (write-throughs), and every 5th
// direct frame is cut short and handed over (TakeOtherWrite). The strict
// server sees every frame whole and the messages come back in order.
func TestShareWrites(t *testing.T) {
	var bad atomic.Value
	srv := newServer(t, strictEcho(t, 200*time.Microsecond, &bad))
	c, ev := dialTest(t, srv.url)
	ev.expect(EventEstablished)
	var gate uint32
	var released atomic.Int32
	const gen = 5
	fd, err := c.ShareWrites(&gate, gen, 64, func() { released.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if _, err := c.ShareWrites(&gate, gen, 64, nil); err != ErrNoShare {
		t.Fatalf("second ShareWrites: %v", err)
	}
	pingStop := make(chan struct{})
	var pings sync.WaitGroup
	pings.Add(1)
	go func() {
		defer pings.Done()
		for {
			select {
			case <-pingStop:
				return
			default:
			}
			c.Ping([]byte("q"))
			time.Sleep(50 * time.Microsecond)
		}
	}()
	const ne = 500 // meanwhile, messages through the engine from another goroutine (write-throughs)
	pings.Add(1)
	go func() {
		defer pings.Done()
		for i := range ne {
			if err := c.Send(OpBinary, []byte(fmt.Sprintf("e-%d", i))); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	const n = 3000
	var direct, handed, queued int
	free := uint32(gen << GateGenShift)
	for i := range n {
		p := []byte(fmt.Sprintf("o-%d", i))
		took := atomic.CompareAndSwapUint32(&gate, free, free|GateOther)
		for end := time.Now().Add(5 * time.Millisecond); !took && i%3 != 0 && time.Now().Before(end); {
			time.Sleep(20 * time.Microsecond) // mostly: wait for the engine to be done
			took = atomic.CompareAndSwapUint32(&gate, free, free|GateOther)
		}
		if !took {
			queued++
			if err := c.Send(OpText, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b := otherFrame(p)
		cut := len(b)
		if i%5 == 0 {
			cut = 3
		}
		w, err := syscall.Write(fd, b[:cut])
		if err != nil || w != cut {
			t.Fatalf("direct write: %d, %v", w, err)
		}
		if cut < len(b) {
			handed++
			time.Sleep(100 * time.Microsecond) // the rest travels to the helper meanwhile
			c.TakeOtherWrite(gen, b[cut:])
		} else {
			direct++
			atomic.AndUint32(&gate, ^GateOther)
		}
	}
	close(pingStop)
	pings.Wait()
	for i, j := 0, 0; i < n || j < ne; {
		e := ev.next(5 * time.Second)
		switch {
		case e.Type == EventReceivePong:
		case e.Type == EventReceive && e.Opcode == OpText && string(e.Data) == fmt.Sprintf("o-%d", i):
			i++
		case e.Type == EventReceive && e.Opcode == OpBinary && string(e.Data) == fmt.Sprintf("e-%d", j):
			j++
		default:
			t.Fatalf("after o-%d and e-%d: %+v %q (bad frame: %v)", i, j, e, e.Data, bad.Load())
		}
	}
	if direct == 0 || handed == 0 || queued == 0 {
		t.Errorf("direct %d, handed over %d, through the engine %d: each should be > 0", direct, handed, queued)
	}
	t.Logf("direct %d, handed over %d, through the engine %d", direct, handed, queued)
	if g := atomic.LoadUint32(&gate); g>>GateGenShift != gen || g&GateOther != 0 {
		t.Errorf("gate %#x", g)
	}
	if err := c.Close(0, ""); err != nil {
		t.Fatal(err)
	}
	if e := ev.expect(EventClosed); !e.Clean {
		t.Fatalf("closed: %+v", e)
	}
	if atomic.LoadUint32(&gate)&GateBusy == 0 {
		t.Errorf("gate not busy after the close: %#x", atomic.LoadUint32(&gate))
	}
	if n := released.Load(); n != 1 {
		t.Errorf("released %d times", n)
	}
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
}
