package wsengine

import (
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/echotest"
)

func TestPayloadClasses(t *testing.T) {
	for _, tc := range []struct {
		c     int
		round bool
		want  int
	}{
		{1, true, 0}, {64, true, 0}, {65, true, 1}, {100, true, 1}, {4096, true, 6}, {4097, true, -1}, {0, true, -1},
		{64, false, 0}, {100, false, -1}, {128, false, 1}, {4096, false, 6}, {8192, false, -1}, {32, false, 0},
	} {
		if got := payloadClassOf(tc.c, tc.round); got != tc.want {
			t.Errorf("payloadClassOf(%d, %v) = %d; want %d", tc.c, tc.round, got, tc.want)
		}
	}
}

// A buffer handed back is the next one of its size; other sizes are not
// kept, nor more than payloadKeep of one size (1,024 of 128 B).
func TestPayloadReuse(t *testing.T) {
	pc := &payloads[1] // 128 B
	pc.mu.Lock()
	pc.free = nil
	pc.mu.Unlock()
	p := NewPayload(100)
	if len(p) != 100 || cap(p) != 128 {
		t.Fatalf("NewPayload(100): len %d cap %d", len(p), cap(p))
	}
	RecyclePayload(p)
	if q := getPayload(70); len(q) != 0 || &q[:1][0] != &p[0] {
		t.Fatal("a recycled buffer was not the next one of its size")
	}
	RecyclePayload(make([]byte, 0, 100))
	RecyclePayload(make([]byte, 0, 32))
	RecyclePayload(make([]byte, 10, 8192))
	for range payloadKeep(1) + 10 {
		RecyclePayload(make([]byte, 0, 128))
	}
	pc.mu.Lock()
	n := len(pc.free)
	pc.free = nil
	pc.mu.Unlock()
	if n != payloadKeep(1) || n != 1024 {
		t.Fatalf("%d buffers of 128 B kept; want %d", n, payloadKeep(1))
	}
	if big := NewPayload(5000); len(big) != 5000 {
		t.Fatalf("NewPayload(5000): len %d", len(big))
	}
}

// A bin hands back what it gathered, each buffer to its own size class
// (mixed sizes, more than one bin's room so that Add flushes on its own),
// leaves other sizes out and keeps each class's limit.
func TestPayloadBin(t *testing.T) {
	for _, k := range []int{0, 1, 5, 6} {
		payloads[k].mu.Lock()
		payloads[k].free = nil
		payloads[k].mu.Unlock()
	}
	var bin PayloadBin
	want := map[*byte]int{} // buffer -> its class
	for i := range 150 {
		c := []int{64, 128, 2048}[i%3] // 50 of each, within every limit
		p := make([]byte, 7, c)
		want[&p[:1][0]] = payloadClassOf(c, false)
		bin.Add(p)
		bin.Add(make([]byte, 0, 100))  // not a class size
		bin.Add(make([]byte, 0, 8192)) // too big
	}
	bin.Flush()
	if bin.n != 0 {
		t.Fatalf("%d buffers left in the bin after Flush", bin.n)
	}
	got := 0
	for _, k := range []int{0, 1, 5} {
		pc := &payloads[k]
		pc.mu.Lock()
		free := pc.free
		pc.free = nil
		pc.mu.Unlock()
		if len(free) != 50 {
			t.Errorf("class %d: %d buffers; want 50", k, len(free))
		}
		for _, p := range free {
			if len(p) != 0 || want[&p[:1][0]] != k {
				t.Fatalf("class %d: a buffer of cap %d, len %d, not one added to this class", k, cap(p), len(p))
			}
			got++
		}
	}
	if got != 150 {
		t.Fatalf("%d buffers back; want 150", got)
	}
	for range payloadKeep(6) + 5 { // 32 of 4 KiB
		bin.Add(make([]byte, 0, 4096))
	}
	bin.Flush()
	payloads[6].mu.Lock()
	n := len(payloads[6].free)
	payloads[6].free = nil
	payloads[6].mu.Unlock()
	if n != payloadKeep(6) {
		t.Fatalf("%d buffers of 4 KiB kept; want %d", n, payloadKeep(6))
	}
}

// Messages of 1 B to 5 KiB sent with SendPayload (written through or by the
// writer) and echoed; the consumer checks each and hands its buffer back at
// once, so the buffers go round between sending, receiving and the pool:
// every message arrives intact and in order.
func TestPayloadRecycled(t *testing.T) {
	srv := echotest.New(t)
	c, ev := dialTest(t, srv.URL)
	ev.expect(EventEstablished)
	const n = 2000
	fill := func(p []byte, i int) {
		for j := range p {
			p[j] = byte(i + j)
		}
	}
	go func() {
		for i := range n {
			p := NewPayload(1 + i*37%5000)
			fill(p, i)
			for c.SendPayload(OpBinary, p) == ErrQueueFull {
				time.Sleep(time.Millisecond)
				p = NewPayload(1 + i*37%5000)
				fill(p, i)
			}
		}
	}()
	want := make([]byte, 5000)
	for i := range n {
		e := ev.expect(EventReceive)
		w := want[:1+i*37%5000]
		fill(w, i)
		if string(e.Data) != string(w) {
			t.Fatalf("message %d: %d bytes, not as sent (%d bytes)", i, len(e.Data), len(w))
		}
		RecyclePayload(e.Data)
	}
	if q := c.Buffered(); q != 0 {
		t.Fatalf("%d bytes still counted as queued after every message was echoed", q)
	}
}
