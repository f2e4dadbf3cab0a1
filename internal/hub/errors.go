// The hub's status codes (as VWS_* in include/verawebsockets.h), its error
// types, and the mapping from errors to statuses.

package hub

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// Status codes, as VWS_* in include/verawebsockets.h.
const (
	OK        = 0
	EArg      = -1 // bad argument: unknown option, bad value, bad URL, bad handle
	EState    = -2 // not allowed in this state
	EFull     = -3 // send queue over max_send_queue
	ETooBig   = -4 // message larger than max_message_size
	EEngine   = -5 // the engine is unavailable (used by the out-of-process proxy)
	EInternal = -6 // a recovered panic or an unexpected failure
	EOption   = -7 // a bad option name or value, or options that do not go together
	EBind     = -8 // a server could not bind its address
)

// Limits of control frame payloads (RFC 6455 section 5.5).
const (
	maxPing   = 125 // ping payload
	maxReason = 123 // close reason: 125 minus the 2-byte code (section 5.5.1)
)

// HandleError reports a handle that was never issued or was already freed.
type HandleError struct {
	Kind   string // "context" or "connection"
	Handle uint64
}

func (e *HandleError) Error() string {
	return fmt.Sprintf("hub: unknown %s handle %d", e.Kind, e.Handle)
}

// argError marks a bad argument (Status EArg); it keeps the cause for errors.As.
type argError struct{ err error }

func (e *argError) Error() string { return e.err.Error() }
func (e *argError) Unwrap() error { return e.err }

func argf(format string, args ...any) error { return &argError{fmt.Errorf(format, args...)} }

// optionError marks a bad option (Status EOption); bindError a failed bind
// (Status EBind). Both keep the cause for errors.As.
type (
	optionError struct{ err error }
	bindError   struct{ err error }
)

func (e *optionError) Error() string { return e.err.Error() }
func (e *optionError) Unwrap() error { return e.err }
func (e *bindError) Error() string   { return e.err.Error() }
func (e *bindError) Unwrap() error   { return e.err }

// asOption marks err as a bad option unless it is nil, a panic, or maps to
// a state status (EState: options after connect or listen).
func asOption(err error) error {
	var pe *PanicError
	if err == nil || errors.As(err, &pe) || Status(err) == EState {
		return err
	}
	return &optionError{err}
}

// PanicError is a panic recovered inside the hub or the engine (Status EInternal).
type PanicError struct {
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("hub: internal error: %v", e.Value) }

// recoverTo turns a panic into a *PanicError stored in *err and logs its stack.
// It must be called directly by a deferred statement.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = &PanicError{Value: r}
		lwslog.Printf(lwslog.Err, "verawebsockets: recovered panic: %v\n%s", r, debug.Stack())
	}
}

// Status maps an error of this package to a status code: nil -> OK; bad
// handle, bad URL, *wsengine.OptionError and other bad arguments -> EArg;
// wsengine.ErrNotOpen, ErrBusy, ErrServerClosed, ErrAccepted, ErrRequestDone -> EState; ErrQueueFull -> EFull; ErrTooBig ->
// ETooBig; anything else -> EInternal.
func Status(err error) int {
	// Every send asks for Status(nil): it returns before the targets of
	// errors.As, which escape to the heap, are made.
	if err == nil {
		return OK
	}
	var (
		he  *HandleError
		ae  *argError
		oe  *wsengine.OptionError
		ope *optionError
		be  *bindError
	)
	switch {
	case errors.As(err, &ope):
		return EOption
	case errors.As(err, &be):
		return EBind
	case errors.Is(err, wsengine.ErrNotOpen), errors.Is(err, wsengine.ErrBusy), errors.Is(err, wsengine.ErrServerClosed),
		errors.Is(err, wsengine.ErrAccepted), errors.Is(err, wsengine.ErrRequestDone):
		return EState
	case errors.Is(err, wsengine.ErrQueueFull):
		return EFull
	case errors.Is(err, wsengine.ErrTooBig):
		return ETooBig
	case errors.As(err, &he), errors.As(err, &ae), errors.As(err, &oe):
		return EArg
	}
	return EInternal
}

// asArg marks err as a bad argument unless it already maps to a status other
// than EInternal. Used where any failure means the caller's input was bad.
func asArg(err error) error {
	var pe *PanicError
	if err == nil || Status(err) != EInternal || errors.As(err, &pe) {
		return err
	}
	return &argError{err}
}
