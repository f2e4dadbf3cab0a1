package main

// #include "capi.h"
//
// static void vws_call_log_sink(vws_log_sink fn, void *ud, int level, const char *msg)
// {
// 	fn(ud, level, msg);
// }
import "C"

import (
	"unsafe"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

// setLogSink makes lwslog hand its lines to the C function fn (nil: none).
func setLogSink(fn C.vws_log_sink, ud unsafe.Pointer) {
	if fn == nil {
		lwslog.SetSink(nil)
		return
	}
	lwslog.SetSink(func(level int, msg string) {
		cs := C.CString(msg)
		C.vws_call_log_sink(fn, ud, C.int(level), cs)
		C.free(unsafe.Pointer(cs))
	})
}
