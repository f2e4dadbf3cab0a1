// Command capi is the in-process engine: built with -buildmode=c-shared it
// implements the C ABI of include/verawebsockets.h over internal/hub, and
// build/build.sh links the Lua binding (lualib/) into the same .so.
//
//	build/build.sh inproc amd64   # build/out/amd64/inproc/verawebsockets.so
//
// Every vws_* function is a //export: taking events in events.go, reading on
// the waiting thread in direct.go, the rest in exports.go. They never call
// back into C, return within milliseconds (vws_ctx_next_event waits at most its timeout),
// are safe on any thread and turn a Go panic into VWS_EINTERNAL. Only one Go
// runtime may live in a process: never load this .so into a Go program.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#include "capi.h"
*/
import "C"

import (
	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

func main() {}

// lualibSum is set by build/build.sh to the checksum of the Lua binding's
// archive it links in: Go's build cache does not see that file, and without
// a changed link flag it would reuse a .so linked with an older binding.
var lualibSum string

// The numbers shared by the header, internal/hub and wsengine must agree:
// each line fails to compile (constant index out of range) when they do not.
var (
	_ = [1]int{}[hub.OK-C.VWS_OK]
	_ = [1]int{}[hub.EArg-C.VWS_EARG]
	_ = [1]int{}[hub.EState-C.VWS_ESTATE]
	_ = [1]int{}[hub.EFull-C.VWS_EFULL]
	_ = [1]int{}[hub.ETooBig-C.VWS_ETOOBIG]
	_ = [1]int{}[hub.EEngine-C.VWS_EENGINE]
	_ = [1]int{}[hub.EInternal-C.VWS_EINTERNAL]

	_ = [1]int{}[int(wsengine.EventConnectionError)-C.VWS_EV_CONNECTION_ERROR]
	_ = [1]int{}[int(wsengine.EventEstablished)-C.VWS_EV_ESTABLISHED]
	_ = [1]int{}[int(wsengine.EventClosed)-C.VWS_EV_CLOSED]
	_ = [1]int{}[int(wsengine.EventReceive)-C.VWS_EV_RECEIVE]
	_ = [1]int{}[int(wsengine.EventReceivePong)-C.VWS_EV_RECEIVE_PONG]
	_ = [1]int{}[int(wsengine.EventWriteable)-C.VWS_EV_WRITEABLE]
	_ = [1]int{}[int(hub.EventServerEstablished)-C.VWS_EV_SERVER_ESTABLISHED]
	_ = [1]int{}[int(hub.EventServerReceive)-C.VWS_EV_SERVER_RECEIVE]
	_ = [1]int{}[int(hub.EventServerReceivePong)-C.VWS_EV_SERVER_RECEIVE_PONG]
	_ = [1]int{}[int(hub.EventServerWriteable)-C.VWS_EV_SERVER_WRITEABLE]
	_ = [1]int{}[int(hub.EventHTTP)-C.VWS_EV_HTTP]
	_ = [1]int{}[hub.EOption-C.VWS_EOPTION]
	_ = [1]int{}[hub.EBind-C.VWS_EBIND]
	_ = [1]int{}[int(hub.EventFilter)-C.VWS_EV_FILTER]

	_ = [1]int{}[int(wsengine.OpText)-C.VWS_OP_TEXT]
	_ = [1]int{}[int(wsengine.OpBinary)-C.VWS_OP_BINARY]

	_ = [1]int{}[int(wsengine.StateCreated)-C.VWS_STATE_CREATED]
	_ = [1]int{}[int(wsengine.StateConnecting)-C.VWS_STATE_CONNECTING]
	_ = [1]int{}[int(wsengine.StateOpen)-C.VWS_STATE_OPEN]
	_ = [1]int{}[int(wsengine.StateClosing)-C.VWS_STATE_CLOSING]
	_ = [1]int{}[int(wsengine.StateClosed)-C.VWS_STATE_CLOSED]
)
