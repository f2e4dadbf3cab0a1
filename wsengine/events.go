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

	// EventFailPending is no application event: it is how a connection with
	// SetFailInOrder reports a protocol violation of the peer, behind the
	// events emitted before it. Code and Data are the close code and reason
	// the connection fails with once its consumer calls FailNow. Its number
	// is outside the libwebsockets reasons of the VWS_EV_* events.
	EventFailPending EventType = 64
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
	Opcode  OpCode     // EventReceive
	Clean   bool       // EventClosed
	Code    StatusCode // EventClosed, EventFailPending
	Attempt int        // EventEstablished, EventConnectionError (1-based)
	Data    []byte     // reason, message, pong payload or chosen subprotocol
}
