package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version sent in the hello frame.
const Version = 7

// Kind says what a frame is.
type Kind uint8

// Frame kinds.
const (
	KindCall  Kind = 1 // proxy -> helper request
	KindReply Kind = 2 // helper -> proxy response to a call with id != 0
	KindEvent Kind = 3 // helper -> proxy asynchronous event
	KindHello Kind = 4 // helper -> proxy, first frame
	KindLog   Kind = 5 // helper -> proxy, a log line (protocol version 4)
)

// Op is a call's operation.
type Op uint8

// Operations (arguments and results in the package documentation).
const (
	OpSetLogLevel Op = 1
	OpCtxFree     Op = 2
	OpActive      Op = 3
	OpConnNew     Op = 4
	OpSetOption   Op = 5
	OpCheck       Op = 6
	OpConnect     Op = 7
	OpSend        Op = 8
	OpPing        Op = 9
	OpClose       Op = 10
	OpState       Op = 11
	OpBuffered    Op = 12
	OpProtocol    Op = 13
	OpConnFree    Op = 14

	// Servers (protocol version 2).
	OpServerNew       Op = 15
	OpServerSetOption Op = 16
	OpServerListen    Op = 17
	OpServerPort      Op = 18
	OpBroadcast       Op = 19
	OpServerClients   Op = 20
	OpServerClose     Op = 21
	OpServerFree      Op = 22
	OpAcceptBase      Op = 23
	OpRequestHeaders  Op = 24
	OpPeer            Op = 25
	OpPeerCert        Op = 26

	// Plain HTTP requests of servers (EventHTTP).
	OpHTTPRespond Op = 27

	// Failing in order (protocol version 3).
	OpConnFail Op = 28

	// Log lines for the proxy's log sink (protocol version 4).
	OpSetLogSink Op = 29

	// Asynchronous sends (protocol version 5): the proxy took the
	// connection's EventSendError (no reply).
	OpSendAck Op = 30

	// Shared writes (protocol version 7): the rest of a frame the proxy
	// wrote to a shared socket that did not take it whole (conn, gen, rest;
	// no reply).
	OpShareRest Op = 31
)

// EventShare is the event type (op) that gives the proxy a copy of a
// connection's socket (protocol version 7): opcode is the slot of its gate in
// the gate memory, code the gate's generation; the descriptor comes with the
// frame (SCM_RIGHTS). Never handed to the application.
const EventShare = 66

// The gate memory the proxy maps and passes to the helper as GateFD:
// GateSlots slots of two 32-bit words, the gate (wsengine.GateOther,
// GateBusy, the generation from bit 2) and the number of the connection's
// asynchronous calls (OpSend, OpPing, OpClose, OpShareRest) the helper has
// taken; the proxy writes to a shared socket only when that number is the
// number it sent.
const (
	GateFD    = 4
	GateSlots = 4096
	ShareMax  = 4096 // the largest message the proxy writes itself

	// The gate's bits, as wsengine.GateOther, GateBusy and GateGenShift
	// (TestGateBits).
	GateOther    = 1
	GateBusy     = 2
	GateGenShift = 2
)

// EventFailPending is the event type (op) of the marker the helper sends
// when a protocol violation of a connection's peer waits for the events
// before it to be handled (wsengine.EventFailPending): never handed to the
// application; the proxy answers with OpConnFail.
const EventFailPending = 64

// EventSendError is the event type (op) of the report of an OpSend, OpPing
// or OpClose sent without a reply (id 0) that failed in the helper for a
// reason the proxy could not tell beforehand (the send queue over
// max_send_queue, ...): code is the status, data the message. Never handed
// to the application: the proxy returns it from the connection's next send or
// ping. Failures with EState (the connection closing meanwhile) are not
// reported: its CLOSED event follows. After one report the helper reports no
// further failure of that connection until the proxy's OpSendAck: the calls
// that fail meanwhile were sent before the proxy returned the report, which
// stands for them.
const EventSendError = 65

// Tags of connections accepted by servers, which the helper makes: base+1,
// base+2, ... up to base+AcceptedTagSpan-1, where base (OpAcceptBase) is
// AcceptedTagBase plus a multiple of AcceptedTagSpan that the proxy picks per
// helper, so that successive helpers never hand out the same tag. The proxy's
// own tags are far below AcceptedTagBase, and every tag stays below
// AcceptedTagLimit = 2^53 (handles must survive a Lua double).
const (
	AcceptedTagBase  = 1 << 48
	AcceptedTagSpan  = 1 << 32
	AcceptedTagLimit = 1 << 53
)

// Value tags.
const (
	TagInt   = 1
	TagBytes = 2
)

// Frame size limits: the body (after the length prefix) is at least the
// 6-byte header and at most MaxBody bytes.
const (
	HeaderLen = 6
	MinBody   = HeaderLen
	MaxBody   = 1 << 30
)

// Errors returned by Decode and ReadMsg.
var (
	ErrShort    = errors.New("wire: truncated frame")
	ErrTooBig   = errors.New("wire: frame exceeds MaxBody")
	ErrTag      = errors.New("wire: unknown value tag")
	ErrArgs     = errors.New("wire: wrong arguments")
	ErrBadFrame = errors.New("wire: bad frame header")
)

// Value is one int or bytes value of a frame.
type Value struct {
	IsBytes bool
	Int     int64
	Bytes   []byte
}

// Int returns an int value.
func Int(v int64) Value { return Value{Int: v} }

// Bytes returns a bytes value; it aliases p.
func Bytes(p []byte) Value { return Value{IsBytes: true, Bytes: p} }

// String returns a bytes value holding s.
func String(s string) Value { return Value{IsBytes: true, Bytes: []byte(s)} }

// Msg is one decoded frame. A Msg is not safe for concurrent mutation.
type Msg struct {
	Kind Kind
	Op   uint8
	ID   uint32
	Args []Value
}

// bodyLen returns the encoded length of m without the length prefix.
func (m *Msg) bodyLen() int {
	n := HeaderLen
	for _, v := range m.Args {
		if v.IsBytes {
			n += 5 + len(v.Bytes)
		} else {
			n += 9
		}
	}
	return n
}

// Append appends the encoded frame (length prefix included) to dst.
// It fails with ErrTooBig when the body would exceed MaxBody.
func (m *Msg) Append(dst []byte) ([]byte, error) {
	n := m.bodyLen()
	if n > MaxBody {
		return dst, ErrTooBig
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(m.Kind), m.Op)
	dst = binary.BigEndian.AppendUint32(dst, m.ID)
	for _, v := range m.Args {
		if v.IsBytes {
			dst = append(dst, TagBytes)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(v.Bytes)))
			dst = append(dst, v.Bytes...)
		} else {
			dst = append(dst, TagInt)
			dst = binary.BigEndian.AppendUint64(dst, uint64(v.Int))
		}
	}
	return dst, nil
}

// bigValue is the size from which WriteMsg writes a bytes value's payload
// directly instead of copying it into the frame buffer.
const bigValue = 64 << 10

// WriteMsg writes m as one frame to w. Large bytes values are written from
// their own memory (several Write calls), so callers serialize writers.
func WriteMsg(w io.Writer, m *Msg) error {
	n := m.bodyLen()
	if n > MaxBody {
		return ErrTooBig
	}
	if bw, ok := w.(*bufio.Writer); ok && 4+n <= bw.Available() {
		// Encoded in place: no frame buffer of its own (the helper's events).
		buf, _ := m.Append(bw.AvailableBuffer())
		_, err := bw.Write(buf)
		return err
	}
	buf := make([]byte, 0, 4+HeaderLen+16*len(m.Args))
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	buf = append(buf, byte(m.Kind), m.Op)
	buf = binary.BigEndian.AppendUint32(buf, m.ID)
	for _, v := range m.Args {
		if !v.IsBytes {
			buf = append(buf, TagInt)
			buf = binary.BigEndian.AppendUint64(buf, uint64(v.Int))
			continue
		}
		buf = append(buf, TagBytes)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v.Bytes)))
		if len(v.Bytes) < bigValue {
			buf = append(buf, v.Bytes...)
			continue
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		if _, err := w.Write(v.Bytes); err != nil {
			return err
		}
		buf = buf[:0]
	}
	if len(buf) > 0 {
		_, err := w.Write(buf)
		return err
	}
	return nil
}

// Decode decodes a frame body (the bytes after the length prefix). Bytes
// values alias body. Untrusted input never makes it panic.
func Decode(body []byte) (*Msg, error) {
	if len(body) < HeaderLen {
		return nil, ErrShort
	}
	if len(body) > MaxBody {
		return nil, ErrTooBig
	}
	m := &Msg{Kind: Kind(body[0]), Op: body[1], ID: binary.BigEndian.Uint32(body[2:6])}
	if m.Kind < KindCall || m.Kind > KindLog {
		return nil, fmt.Errorf("%w: kind %d", ErrBadFrame, body[0])
	}
	p := body[HeaderLen:]
	for len(p) > 0 {
		switch p[0] {
		case TagInt:
			if len(p) < 9 {
				return nil, ErrShort
			}
			m.Args = append(m.Args, Int(int64(binary.BigEndian.Uint64(p[1:9]))))
			p = p[9:]
		case TagBytes:
			if len(p) < 5 {
				return nil, ErrShort
			}
			n := binary.BigEndian.Uint32(p[1:5])
			if uint64(n) > uint64(len(p)-5) {
				return nil, ErrShort
			}
			m.Args = append(m.Args, Bytes(p[5:5+n:5+n]))
			p = p[5+n:]
		default:
			return nil, fmt.Errorf("%w %d", ErrTag, p[0])
		}
	}
	return m, nil
}

// ReadMsg reads one frame from r and decodes it. The body is freshly
// allocated, so bytes values may be kept.
func ReadMsg(r io.Reader) (*Msg, error) {
	var pre [4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(pre[:])
	if n < MinBody {
		return nil, ErrShort
	}
	if n > MaxBody {
		return nil, ErrTooBig
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(body)
}

// Args reads typed arguments of a Msg in order; the first mismatch sticks.
type Args struct {
	m   *Msg
	i   int
	err error
}

// Reader returns an argument reader over m's values.
func (m *Msg) Reader() *Args { return &Args{m: m} }

func (a *Args) next(bytes bool) (Value, bool) {
	if a.err != nil {
		return Value{}, false
	}
	if a.i >= len(a.m.Args) {
		a.err = fmt.Errorf("%w: op %d: missing value %d", ErrArgs, a.m.Op, a.i)
		return Value{}, false
	}
	v := a.m.Args[a.i]
	if v.IsBytes != bytes {
		a.err = fmt.Errorf("%w: op %d: value %d has the wrong type", ErrArgs, a.m.Op, a.i)
		return Value{}, false
	}
	a.i++
	return v, true
}

// Int returns the next value as an int64 (0 after an error).
func (a *Args) Int() int64 { v, _ := a.next(false); return v.Int }

// Uint returns the next value as a uint64 (0 after an error).
func (a *Args) Uint() uint64 { return uint64(a.Int()) }

// Bytes returns the next value as bytes, aliasing the frame (nil after an error).
func (a *Args) Bytes() []byte { v, _ := a.next(true); return v.Bytes }

// String returns the next value as a string.
func (a *Args) String() string { return string(a.Bytes()) }

// Err returns the first error, or ErrArgs if values are left over.
func (a *Args) Err() error {
	if a.err == nil && a.i != len(a.m.Args) {
		a.err = fmt.Errorf("%w: op %d: %d extra values", ErrArgs, a.m.Op, len(a.m.Args)-a.i)
	}
	return a.err
}
