package wsengine

import (
	mbits "math/bits"
	"sync"
)

// The buffers of small messages are reused, so that a message received or
// sent in steady state allocates nothing: a received message's buffer comes
// from here, and its consumer hands it back (RecyclePayload) once it has
// copied it out; a message sent with SendPayload goes back once written.
// Buffers of 64 B to 4 KiB, in powers of two, at most 128 KiB of each size
// (0.9 MiB in all): enough for the ~600 messages of 100 B that one read of
// 64 KiB can bring, all queued before the first is handled.
const (
	payloadMinShift = 6  // 64 B
	payloadMaxShift = 12 // 4 KiB
	payloadKeepB    = 128 << 10
)

// payloadKeep is the most buffers of class k kept.
func payloadKeep(k int) int { return payloadKeepB >> (k + payloadMinShift) }

type payloadClass struct {
	mu   sync.Mutex
	free [][]byte
}

var payloads [payloadMaxShift - payloadMinShift + 1]payloadClass

// payloadClassOf returns the class of a buffer of capacity c (exactly a
// class size) or of a request for c bytes (round: the class that holds it),
// or -1.
func payloadClassOf(c int, round bool) int {
	if c <= 0 || c > 1<<payloadMaxShift {
		return -1
	}
	shift := mbits.Len(uint(c - 1)) // the power of two that holds c
	if !round && c != 1<<shift {
		return -1
	}
	return max(shift, payloadMinShift) - payloadMinShift
}

// getPayload returns an empty buffer for a message of n bytes.
func getPayload(n int) []byte {
	k := payloadClassOf(n, true)
	if k < 0 {
		return make([]byte, 0, n)
	}
	pc := &payloads[k]
	pc.mu.Lock()
	if l := len(pc.free); l > 0 {
		b := pc.free[l-1]
		pc.free[l-1] = nil
		pc.free = pc.free[:l-1]
		pc.mu.Unlock()
		return b
	}
	pc.mu.Unlock()
	return make([]byte, 0, 1<<(k+payloadMinShift))
}

// NewPayload returns a buffer of n bytes for a message to send with
// SendPayload (small ones are reused).
func NewPayload(n int) []byte {
	return getPayload(n)[:n]
}

// pooledClass returns the class of a buffer the pool keeps, or -1 (not a
// class size, or smaller than the smallest).
func pooledClass(p []byte) int {
	if cap(p) < 1<<payloadMinShift {
		return -1
	}
	return payloadClassOf(cap(p), false)
}

// RecyclePayload hands back the Data of an EventReceive that the consumer
// is done with: nothing may use p afterwards. Buffers that are not a
// pooled size are left to the garbage collector.
func RecyclePayload(p []byte) {
	k := pooledClass(p)
	if k < 0 {
		return
	}
	pc := &payloads[k]
	pc.mu.Lock()
	if len(pc.free) < payloadKeep(k) {
		pc.free = append(pc.free, p[:0])
	}
	pc.mu.Unlock()
}

// PayloadBin gathers buffers to hand back (RecyclePayload) and returns them
// a size class at a time: one lock for many, where a consumer recycles a
// batch of messages (the reading goroutine takes buffers from the same
// classes meanwhile). The zero value is ready; Flush before it is dropped.
type PayloadBin struct {
	n int
	p [64][]byte
}

// Add takes p as RecyclePayload would; a full bin is flushed first.
func (b *PayloadBin) Add(p []byte) {
	if pooledClass(p) < 0 {
		return
	}
	if b.n == len(b.p) {
		b.Flush()
	}
	b.p[b.n] = p[:0]
	b.n++
}

// Flush hands back what the bin holds.
func (b *PayloadBin) Flush() {
	for b.n > 0 {
		c := cap(b.p[0]) // this round's class (b.p[0] is overwritten below)
		k := payloadClassOf(c, false)
		pc := &payloads[k]
		keep := payloadKeep(k)
		j := 0
		pc.mu.Lock()
		for i := 0; i < b.n; i++ {
			p := b.p[i]
			if cap(p) != c {
				b.p[j] = p // another class: the next round
				j++
			} else if len(pc.free) < keep {
				pc.free = append(pc.free, p)
			}
		}
		pc.mu.Unlock()
		clear(b.p[j:b.n])
		b.n = j
	}
}
