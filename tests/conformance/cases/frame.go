// Package cases is the table of RFC 6455 conformance cases that the
// conformance server (tests/conformance) plays against the Lua client.
// Each case is named after the Autobahn|Testsuite case it mirrors; cases
// beyond Autobahn carry an "x" prefix.
//
// The server writes every frame as raw bytes built here, so a case can
// describe frames no library would produce (reserved bits, reserved opcodes,
// oversized control frames, masked server frames, lying length fields).
package cases

import "encoding/binary"

// Opcodes (RFC 6455 section 5.2).
const (
	OpCont   byte = 0x0
	OpText   byte = 0x1
	OpBinary byte = 0x2
	OpClose  byte = 0x8
	OpPing   byte = 0x9
	OpPong   byte = 0xA
)

// Frame is one frame as the server writes it. The zero LenForm picks the
// minimal length encoding (RFC 6455 section 5.2); 7, 16 or 64 force one.
type Frame struct {
	Fin     bool
	Rsv     byte // 3 bits: RSV1 = 4, RSV2 = 2, RSV3 = 1
	Op      byte
	Payload []byte
	Mask    *[4]byte // a masked server frame is a protocol error for the client
	LenForm int
	// DeclaredLen, when non-zero, is written as the length instead of
	// len(Payload) (a header that lies, for oversize checks).
	DeclaredLen uint64
}

// Bytes encodes f.
func (f Frame) Bytes() []byte {
	b0 := f.Op & 0x0f
	if f.Fin {
		b0 |= 0x80
	}
	b0 |= (f.Rsv & 7) << 4
	n := uint64(len(f.Payload))
	if f.DeclaredLen != 0 {
		n = f.DeclaredLen
	}
	form := f.LenForm
	if form == 0 {
		switch {
		case n <= 125:
			form = 7
		case n <= 0xffff:
			form = 16
		default:
			form = 64
		}
	}
	out := make([]byte, 0, 14+len(f.Payload))
	out = append(out, b0)
	var b1 byte
	if f.Mask != nil {
		b1 = 0x80
	}
	switch form {
	case 7:
		out = append(out, b1|byte(n))
	case 16:
		out = append(out, b1|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, b1|127)
		out = binary.BigEndian.AppendUint64(out, n)
	}
	if f.Mask != nil {
		out = append(out, f.Mask[:]...)
		for i, c := range f.Payload {
			out = append(out, c^f.Mask[i%4])
		}
		return out
	}
	return append(out, f.Payload...)
}

// Fr builds the bytes of a plain frame.
func Fr(fin bool, op byte, payload []byte) []byte {
	return Frame{Fin: fin, Op: op, Payload: payload}.Bytes()
}

// Text is an unfragmented text frame.
func Text(s string) []byte { return Fr(true, OpText, []byte(s)) }

// Ping is a ping frame.
func Ping(p string) []byte { return Fr(true, OpPing, []byte(p)) }

// ClosePayload is a close payload: code (if code >= 0) then reason.
func ClosePayload(code int, reason []byte) []byte {
	if code < 0 {
		return reason
	}
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(p, reason...)
}

// CloseFrame is a close frame with code and reason.
func CloseFrame(code int, reason string) []byte {
	return Fr(true, OpClose, ClosePayload(code, []byte(reason)))
}

// Cat concatenates byte slices.
func Cat(parts ...[]byte) []byte {
	var n int
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Rep returns s repeated to n bytes.
func Rep(s string, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = s[i%len(s)]
	}
	return out
}

// Fragments splits payload into frames of at most size bytes: op on the
// first, continuation after, FIN on the last. rsv is set on the first frame.
func Fragments(op byte, rsv byte, payload []byte, size int) []byte {
	if size <= 0 || len(payload) <= size {
		return Frame{Fin: true, Rsv: rsv, Op: op, Payload: payload}.Bytes()
	}
	var out []byte
	for i := 0; i < len(payload); i += size {
		end := min(i+size, len(payload))
		o, r := OpCont, byte(0)
		if i == 0 {
			o, r = op, rsv
		}
		out = append(out, Frame{Fin: end == len(payload), Rsv: r, Op: o, Payload: payload[i:end]}.Bytes()...)
	}
	return out
}
