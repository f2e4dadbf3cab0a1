package wsengine

import "errors"

// Errors returned by Conn methods. internal/hub maps them to ABI statuses
// (the VWS_E* names of include/verawebsockets.h in the comments).
var (
	ErrNotOpen   = errors.New("wsengine: connection is not open")                                // VWS_ESTATE
	ErrQueueFull = errors.New("wsengine: send queue is full")                                    // VWS_EFULL
	ErrTooBig    = errors.New("wsengine: message exceeds max_message_size")                      // VWS_ETOOBIG
	ErrBusy      = errors.New("wsengine: already connecting or open")                            // VWS_ESTATE
	ErrAccepted  = errors.New("wsengine: a connection accepted by a server cannot be connected") // VWS_ESTATE
)

// OptionError reports a bad option name or value (VWS_EARG).
type OptionError struct {
	Name string
	Msg  string
}

func (e *OptionError) Error() string { return "wsengine: option " + e.Name + ": " + e.Msg }
