package wsengine

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
