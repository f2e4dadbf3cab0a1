package main

// #include "capi.h"
import "C"

import (
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"

	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// Taking events: one at a time (vws_ctx_next_event, its data malloc'd for
// vws_event_clear) or in batches (vws_ctx_next_events, small data copied into
// the caller's buffer and large ones pinned until vws_batch_release).

//export vws_event_clear
func vws_event_clear(ev *C.vws_event) {
	defer func() { recover() }()
	if ev == nil {
		return
	}
	C.free(unsafe.Pointer(ev.data))
	*ev = C.vws_event{}
}

//export vws_ctx_next_event
func vws_ctx_next_event(ctx C.vws_ctx, timeoutMs C.int, ev *C.vws_event) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if ev == nil {
		return status(nil, 0, errArg("ev is NULL"))
	}
	e, ok, err := hub.NextEvent(uint64(ctx), time.Duration(max(timeoutMs, 0))*time.Millisecond)
	if err != nil {
		return status(nil, 0, err)
	}
	if !ok {
		return 0
	}
	out := cEvent(&e)
	if n := len(e.Data); n > 0 {
		p := C.malloc(C.size_t(n + 1))
		dst := unsafe.Slice((*byte)(p), n+1)
		copy(dst, e.Data)
		dst[n] = 0
		out.data = (*C.char)(p)
		out.len = C.size_t(n)
		hub.Recycle(&e)
	}
	*ev = out
	return 1
}

// cEvent is e for C, without its data.
func cEvent(e *hub.Event) C.vws_event {
	out := C.vws_event{
		_type:   C.int(e.Type),
		conn:    C.vws_conn(e.Conn),
		attempt: C.int(e.Attempt),
	}
	switch e.Type {
	case wsengine.EventReceive, hub.EventServerReceive, hub.EventFilter: // FILTER: 403 = refused Origin
		out.opcode = C.int(e.Opcode)
	case wsengine.EventClosed:
		out.code = C.int(e.Code)
		if e.Clean {
			out.clean = 1
		}
	}
	return out
}

// batchMax is the most events one vws_ctx_next_events takes.
const batchMax = 256

// batchScratch holds the events of one vws_ctx_next_events call between the
// queue and the caller's array.
var batchScratch = sync.Pool{New: func() any { return new([batchMax]hub.Event) }}

// holdMin is the size from which a batch's event data are handed to C where
// they are, pinned until vws_batch_release, instead of copied into the
// caller's buffer: one copy fewer between the socket and the Lua string. A
// pin costs about what a copy of a few KiB does, so smaller data are copied.
const holdMin = 4 << 10

// heldData is the data a batch hands to C where they are: pinned (C may read
// them) until vws_batch_release, which hands message buffers back to the
// pool. Reused (heldPool), so that a batch allocates nothing but its handle.
type heldData struct {
	pin  runtime.Pinner
	data [][]byte
	pool []bool // data[i] is a message's (pooled) buffer
}

var heldPool = sync.Pool{New: func() any { return new(heldData) }}

//export vws_ctx_next_events
func vws_ctx_next_events(ctx C.vws_ctx, timeoutMs C.int, b *C.vws_batch) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if b == nil || b.evs == nil || b.max <= 0 || (b.buf == nil && b.buflen > 0) {
		return status(nil, 0, errArg("bad batch (NULL, no events or no buffer)"))
	}
	b.n, b.left, b.held = 0, 0, 0
	scratch := batchScratch.Get().(*[batchMax]hub.Event)
	defer batchScratch.Put(scratch)
	dst := scratch[:min(int(b.max), batchMax)]
	n, left, err := hub.NextEvents(uint64(ctx), time.Duration(max(timeoutMs, 0))*time.Millisecond, dst, int(b.buflen), holdMin)
	if err != nil {
		return status(nil, 0, err)
	}
	evs := unsafe.Slice(b.evs, n)
	var buf []byte
	if b.buflen > 0 {
		buf = unsafe.Slice((*byte)(unsafe.Pointer(b.buf)), int(b.buflen))
	}
	off := 0
	var bin wsengine.PayloadBin // the copied payloads, back to the pool in one go
	defer bin.Flush()
	var h *heldData
	for i := range dst[:n] {
		e := &dst[i]
		out := cEvent(e)
		if k := len(e.Data); k > 0 {
			out.len = C.size_t(k)
			if k < holdMin && off+k <= len(buf) {
				copy(buf[off:], e.Data)
				out.data = (*C.char)(unsafe.Pointer(&buf[off]))
				off += k
				hub.RecycleTo(&bin, e)
			} else { // large, or the first when it does not fit (hub.NextEvents keeps the rest within budget)
				if h == nil {
					h = heldPool.Get().(*heldData)
					b.held = C.uint64_t(cgo.NewHandle(h))
				}
				h.pin.Pin(&e.Data[0])
				h.data = append(h.data, e.Data)
				h.pool = append(h.pool, hub.Pooled(e))
				out.data = (*C.char)(unsafe.Pointer(&e.Data[0]))
			}
		}
		evs[i] = out
		*e = hub.Event{}
	}
	b.n, b.left = C.int(n), C.int(left)
	return C.int(n)
}

//export vws_batch_release
func vws_batch_release(b *C.vws_batch) {
	defer func() { recover() }()
	if b == nil || b.held == 0 {
		return
	}
	hd := cgo.Handle(b.held)
	b.held = 0
	h := hd.Value().(*heldData)
	hd.Delete()
	h.pin.Unpin()
	var bin wsengine.PayloadBin
	for i, d := range h.data {
		if h.pool[i] {
			bin.Add(d)
		}
	}
	bin.Flush()
	clear(h.data)
	h.data, h.pool = h.data[:0], h.pool[:0]
	heldPool.Put(h)
}
