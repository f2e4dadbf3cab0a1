package cases

import (
	"fmt"
	"time"
)

// Action is what one step of a case does.
type Action int

// Actions.
const (
	// Write writes Bytes raw, in one write or in Chop-sized pieces with
	// Pause between them.
	Write Action = iota
	// Sleep waits Pause.
	Sleep
	// SendMsg sends message Op/Payload through the connection's
	// permessage-deflate compressor (compressed when negotiated),
	// fragmented into Frag-byte frames of compressed data (0: one frame).
	SendMsg
	// ExpectMsg waits for the client to send message Op/Payload, byte-exact.
	ExpectMsg
	// ExpectPong waits for a pong with Payload.
	ExpectPong
	// ExpectClose waits, at most Within, for the client's close frame with a
	// code in Codes (NoCode: an empty close payload is fine too). Nothing
	// else may come first. The server answers with a close frame and ends.
	ExpectClose
	// ServerClose sends a close frame (Codes[0], Payload as reason) and
	// waits for the client's close with a code in Codes.
	ServerClose
	// Quiet waits Pause and fails if the client sends anything.
	Quiet
	// ExpectDrop waits at most Within for the client to close the TCP
	// connection (after the closing handshake, the server keeping it open).
	ExpectDrop
)

// Step is one step of a case script.
type Step struct {
	Do      Action
	Bytes   []byte
	Chop    int
	Pause   time.Duration
	Op      byte
	Payload []byte
	Frag    int
	Codes   []int
	NoCode  bool
	Within  time.Duration
	// Optional (ExpectMsg): the message may be missing (then the next
	// event must match the following step).
	Optional bool
	// NonStrict (ExpectClose): a timeout is not a failure; the case goes on
	// with the next step and, if it passes, is graded NON-STRICT as
	// Autobahn does.
	NonStrict bool
	// Note is shown in failure reasons.
	Note string
	// Raw (Write, server role): write Bytes exactly as they are. Without it
	// the client that tests a server masks every frame it writes (a fresh
	// key per frame), so that one script serves both roles.
	Raw bool
}

// Deflate describes the permessage-deflate response the server gives when
// the client offers the extension (RFC 7692).
type Deflate struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	ServerMaxWindowBits     int // 0: not sent; < 15: the server compresses without back-references
	Level                   int // compress/flate level for the server's messages (0: default)
}

// Case is one conformance case. A script is written as the testing side
// sees it: Write steps carry frames as a server writes them (unmasked);
// played against a server, the testing client masks them on the way out.
type Case struct {
	ID    string
	Group string // "1" ... "13", or "x" for cases beyond Autobahn
	Desc  string
	// Options are create options for the client, as text ("max_message_size=1000").
	Options []string
	// Deflate, when set, makes the case require a permessage-deflate offer
	// (client role: the server's response to it).
	Deflate *Deflate
	// Offers (server role) are the Sec-WebSocket-Extensions offers the client
	// sends, in order; the server must accept one of them (else the case is
	// UNIMPLEMENTED, as in Autobahn).
	Offers []string
	// Timeout bounds the whole case (0: 10 s).
	Timeout time.Duration
	// Steps builds the script (lazily: some cases carry 16 MiB messages).
	Steps func() []Step
}

// Limit is the case's time bound.
func (c Case) Limit() time.Duration {
	if c.Timeout == 0 {
		return 10 * time.Second
	}
	return c.Timeout
}

// Step constructors, to keep the tables short.

// W writes raw bytes in one write.
func W(b ...[]byte) Step { return Step{Do: Write, Bytes: Cat(b...)} }

// WChop writes raw bytes in chops of n bytes, pausing d between chops.
func WChop(n int, d time.Duration, b ...[]byte) Step {
	return Step{Do: Write, Bytes: Cat(b...), Chop: n, Pause: d}
}

// Wait sleeps d.
func Wait(d time.Duration) Step { return Step{Do: Sleep, Pause: d} }

// Echo expects the client to send message op/p back.
func Echo(op byte, p []byte) Step { return Step{Do: ExpectMsg, Op: op, Payload: p} }

// EchoNS expects the echo of a message sent just before a bad frame: a
// client that reads ahead may fail first; then the case is graded NON-STRICT,
// as Autobahn does.
func EchoNS(op byte, p []byte) Step {
	return Step{Do: ExpectMsg, Op: op, Payload: p, Optional: true, NonStrict: true}
}

// Pong expects a pong with payload p.
func Pong(p []byte) Step { return Step{Do: ExpectPong, Payload: p} }

// Fail expects the client to fail the connection with one of codes within 1 s.
func Fail(codes ...int) Step { return Step{Do: ExpectClose, Codes: codes, Within: time.Second} }

// Close expects a close frame from the server ... initiated by the server.
func Close(code int, codes ...int) Step {
	if len(codes) == 0 {
		codes = []int{code}
	}
	return Step{Do: ServerClose, Codes: append([]int{code}, codes...)}
}

// Silence expects nothing from the client for d.
func Silence(d time.Duration) Step { return Step{Do: Quiet, Pause: d} }

// Describe renders a step for logs.
func (s Step) Describe() string {
	switch s.Do {
	case Write:
		return fmt.Sprintf("write %d bytes", len(s.Bytes))
	case Sleep:
		return fmt.Sprintf("sleep %v", s.Pause)
	case SendMsg:
		return fmt.Sprintf("send message op %d, %d bytes", s.Op, len(s.Payload))
	case ExpectMsg:
		return fmt.Sprintf("expect echo op %d, %d bytes", s.Op, len(s.Payload))
	case ExpectPong:
		return fmt.Sprintf("expect pong %q", trunc(s.Payload))
	case ExpectClose:
		return fmt.Sprintf("expect client close %v within %v", s.Codes, s.Within)
	case ServerClose:
		return fmt.Sprintf("server close %d, expect %v", s.Codes[0], s.Codes[1:])
	case Quiet:
		return fmt.Sprintf("expect silence for %v", s.Pause)
	case ExpectDrop:
		return fmt.Sprintf("expect TCP close within %v", s.Within)
	}
	return "?"
}

func trunc(p []byte) string {
	if len(p) > 32 {
		return string(p[:32]) + "..."
	}
	return string(p)
}
