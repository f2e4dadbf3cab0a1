package main

// #include "capi.h"
import "C"

import (
	"unsafe"

	"github.com/verawebsockets/verawebsockets/internal/hub"
)

// Reading on the waiting thread (see the header): the descriptors go through
// a buffer on the stack (the hub's appends grow it past 64).

//export vws_ctx_read_fds
func vws_ctx_read_fds(ctx C.vws_ctx, fds *C.vws_pollfd, max C.int, now *C.int) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if max < 0 || (fds == nil && max > 0) {
		return status(nil, 0, errArg("vws_ctx_read_fds: NULL fds"))
	}
	var buf [64]int32
	got, more, err := hub.ReadFDs(uint64(ctx), buf[:0])
	if err != nil {
		return status(nil, 0, err)
	}
	if now != nil {
		*now = 0
		if more {
			*now = 1
		}
	}
	out := unsafe.Slice(fds, int(max))
	for i := range min(len(got), int(max)) {
		out[i] = C.vws_pollfd{fd: C.int(got[i]), events: C.short(hub.PollIn)}
	}
	return C.int(len(got))
}

//export vws_ctx_read
func vws_ctx_read(ctx C.vws_ctx, fds *C.vws_cpollfd, n C.int, again C.int) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if n < 0 || (fds == nil && n > 0) {
		return status(nil, 0, errArg("vws_ctx_read: NULL fds"))
	}
	var buf [64]int16
	rev := buf[:0]
	for _, p := range unsafe.Slice(fds, int(n)) {
		rev = append(rev, int16(p.revents))
	}
	pending, err := hub.ReadReady(uint64(ctx), rev, again != 0)
	if err != nil {
		return status(nil, 0, err)
	}
	return C.int(pending)
}
