package wsengine

// This file fixes the API that internal/hub (and through it capi/ and the
// out-of-process helper) programs against. Bodies are filled in by the engine
// work; signatures change only together with internal/hub.

import "errors"

// Errors returned by Conn methods. internal/hub maps them to ABI statuses.
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

// EventType numbers are libwebsockets 2.4 callback reasons.
type EventType int

// Event types, as in include/verawebsockets.h.
const (
	EventConnectionError EventType = 1
	EventEstablished     EventType = 3
	EventClosed          EventType = 4
	EventReceive         EventType = 8
	EventReceivePong     EventType = 9
	EventWriteable       EventType = 10
)

// OpCode of a message (RFC 6455 section 5.2).
type OpCode int

// Message opcodes.
const (
	OpText   OpCode = 1
	OpBinary OpCode = 2
)

// State of a connection, as VWS_STATE_* in include/verawebsockets.h.
type State int

// Connection states.
const (
	StateCreated State = iota
	StateConnecting
	StateOpen
	StateClosing
	StateClosed
)

// Event is what a Conn reports through its emit function.
// Data is owned by the receiver.
type Event struct {
	Type    EventType
	Opcode  OpCode // EventReceive
	Clean   bool   // EventClosed
	Code    int    // EventClosed
	Attempt int    // EventEstablished, EventConnectionError (1-based)
	Data    []byte // reason, message, pong payload or chosen subprotocol
}

// API (implemented in conn.go):
//
//	func NewConn(rawURL string, emit func(Event)) (*Conn, error)
//	func (c *Conn) SetOption(name, value string) error
//	func (c *Conn) Check() error
//	func (c *Conn) Connect() error
//	func (c *Conn) Send(op OpCode, p []byte) error // takes ownership of p
//	func (c *Conn) Ping(p []byte) error
//	func (c *Conn) Close(code int, reason string) error
//	func (c *Conn) Abandon()                        // close 1001, emit nothing more
//	func (c *Conn) State() State
//	func (c *Conn) Buffered() int
//	func (c *Conn) Protocol() string
