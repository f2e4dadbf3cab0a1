package wsengine

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// StatusCode is a close status code (RFC 6455 section 7.4): the code of a
// close frame, of EventClosed and EventFailPending, and of Close.
type StatusCode int

// Close codes used by the engine (RFC 6455 section 7.4.1).
const (
	CloseNormal         StatusCode = 1000
	CloseGoingAway      StatusCode = 1001
	CloseProtocolError  StatusCode = 1002
	CloseNoStatus       StatusCode = 1005 // never sent: "no code was received"
	CloseAbnormal       StatusCode = 1006 // never sent: "closed without a close frame"
	CloseInvalidPayload StatusCode = 1007
	CloseMessageTooBig  StatusCode = 1009
)

const (
	maxControlPayload    = 125
	maxCloseReasonLength = maxControlPayload - 2
)

// CloseError is a close code with its reason, as sent or received in a close
// frame. Use errors.As to find it in an error chain.
type CloseError struct {
	Code   StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket closed with code %d", e.Code)
	}
	return fmt.Sprintf("websocket closed with code %d: %s", e.Code, e.Reason)
}

// ValidCloseCode reports whether code may appear in a close frame on the wire
// (RFC 6455 section 7.4; 1004, 1005, 1006 and 1015 are reserved, 1016-2999 are
// unassigned, 3000-4999 are for libraries and applications).
func ValidCloseCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// frameState is what header validation needs to know about the message in
// progress.
type frameState struct {
	deflate   bool  // permessage-deflate was negotiated
	inMessage bool  // a fragmented data message is open
	msgLen    int64 // bytes of the open message so far
	maxSize   int64 // max_message_size
	server    bool  // we are the server: frames must be masked (section 5.1)
}

// checkHeader validates a frame header read from the peer (RFC 6455 section
// 5.1-5.5). It returns nil or a *CloseError with the code to fail with.
func checkHeader(h ws.Header, st *frameState) *CloseError {
	fail := func(code StatusCode, format string, args ...any) *CloseError {
		return &CloseError{Code: code, Reason: fmt.Sprintf(format, args...)}
	}
	if h.Masked != st.server {
		if st.server {
			return fail(CloseProtocolError, "unmasked frame from client")
		}
		return fail(CloseProtocolError, "masked frame from server")
	}
	if h.OpCode.IsReserved() {
		return fail(CloseProtocolError, "reserved opcode %d", h.OpCode)
	}
	rsv1 := h.Rsv&0x4 != 0
	if h.Rsv&0x3 != 0 {
		return fail(CloseProtocolError, "reserved bits RSV2/RSV3 set")
	}
	if rsv1 && !(st.deflate && (h.OpCode == ws.OpText || h.OpCode == ws.OpBinary)) {
		return fail(CloseProtocolError, "reserved bit RSV1 set")
	}
	if h.OpCode.IsControl() {
		if !h.Fin {
			return fail(CloseProtocolError, "fragmented control frame")
		}
		if h.Length > maxControlPayload {
			return fail(CloseProtocolError, "control frame payload of %d bytes", h.Length)
		}
		if h.OpCode == ws.OpClose && h.Length == 1 {
			return fail(CloseProtocolError, "close frame with a 1-byte payload")
		}
		return nil
	}
	if h.OpCode == ws.OpContinuation && !st.inMessage {
		return fail(CloseProtocolError, "continuation frame without a message")
	}
	if h.OpCode != ws.OpContinuation && st.inMessage {
		return fail(CloseProtocolError, "new data frame inside a fragmented message")
	}
	used := st.msgLen
	if h.OpCode != ws.OpContinuation {
		used = 0
	}
	if h.Length < 0 || h.Length > st.maxSize-used {
		return fail(CloseMessageTooBig, "message over max_message_size (%d bytes)", st.maxSize)
	}
	return nil
}

// parseClosePayload parses the payload of a close frame from the server. It
// returns the code (1005 if none) and reason, or a *CloseError to fail with.
func parseClosePayload(p []byte) (code StatusCode, reason string, fail *CloseError) {
	switch {
	case len(p) == 0:
		return CloseNoStatus, "", nil
	case len(p) == 1:
		return 0, "", &CloseError{Code: CloseProtocolError, Reason: "close frame with a 1-byte payload"}
	case len(p) > maxControlPayload:
		return 0, "", &CloseError{Code: CloseProtocolError, Reason: "close frame payload too long"}
	}
	code = StatusCode(p[0])<<8 | StatusCode(p[1])
	if !ValidCloseCode(code) {
		return 0, "", &CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf("invalid close code %d", code)}
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", &CloseError{Code: CloseInvalidPayload, Reason: "close reason is not valid UTF-8"}
	}
	return code, string(p[2:]), nil
}

// closePayload builds the payload of a close frame (code 0: empty payload).
func closePayload(code StatusCode, reason string) []byte {
	if code == 0 {
		return nil
	}
	if len(reason) > maxCloseReasonLength {
		reason = reason[:maxCloseReasonLength]
	}
	return ws.NewCloseFrameBody(ws.StatusCode(code), reason)
}

// utf8Validator checks UTF-8 text that arrives in pieces: a code point may
// be split between pieces. The zero value is ready to use.
type utf8Validator struct {
	need   int  // continuation bytes still needed by the open code point
	lo, hi byte // range of the next continuation byte
	bad    bool
}

// step feeds one byte; it returns false at the first invalid byte.
func (v *utf8Validator) step(b byte) bool {
	if v.need > 0 {
		if b < v.lo || b > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		return true
	}
	v.lo, v.hi = 0x80, 0xBF
	switch {
	case b < 0x80:
	case b >= 0xC2 && b <= 0xDF:
		v.need = 1
	case b == 0xE0:
		v.need, v.lo = 2, 0xA0
	case b == 0xED:
		v.need, v.hi = 2, 0x9F
	case b >= 0xE1 && b <= 0xEF:
		v.need = 2
	case b == 0xF0:
		v.need, v.lo = 3, 0x90
	case b >= 0xF1 && b <= 0xF3:
		v.need = 3
	case b == 0xF4:
		v.need, v.hi = 3, 0x8F
	default:
		return false
	}
	return true
}

// Write feeds p and reports whether the text so far is a valid UTF-8 prefix.
// Once it returned false it keeps returning false.
func (v *utf8Validator) Write(p []byte) bool {
	if v.bad {
		return false
	}
	i := 0
	for i < len(p) && v.need > 0 { // finish the code point left open
		if !v.step(p[i]) {
			v.bad = true
			return false
		}
		i++
	}
	// Fast path over the complete code points, then the tail byte by byte.
	cut := len(p)
	for k := 0; k < utf8.UTFMax && cut > i; k++ {
		if utf8.RuneStart(p[cut-1]) {
			cut--
			break
		}
		cut--
	}
	if cut > i && utf8.Valid(p[i:cut]) {
		i = cut
	}
	for ; i < len(p); i++ {
		if !v.step(p[i]) {
			v.bad = true
			return false
		}
	}
	return true
}

// Complete reports whether all text written so far is valid, ending on a
// code point boundary.
func (v *utf8Validator) Complete() bool { return !v.bad && v.need == 0 }

// Reset makes v ready for a new text.
func (v *utf8Validator) Reset() { *v = utf8Validator{} }

// deflateTail completes a permessage-deflate payload (RFC 7692 section 7.2.2):
// the stripped empty stored block, plus a final empty block so that the
// decompressor ends cleanly.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// errTooBig is returned when the decompressed output exceeds its limit.
var errTooBig = errors.New("wsengine: decompressed message over max_message_size")

// errInflateAborted is what the decompressor reads when a message is dropped
// before its end.
var errInflateAborted = errors.New("wsengine: compressed message aborted")

// inflater decompresses permessage-deflate messages from the server, keeping
// the sliding window between messages unless server_no_context_takeover.
//
// A message is inflated as its payload streams in, so that text can be
// validated before the message is complete: begin starts a worker goroutine
// that runs the decompressor over an inflateSource; feed hands it payload
// bytes and returns once it has consumed them all and waits for more (or has
// stopped), so the output so far can be read; finish ends the message;
// abort stops the worker. compress/flate cannot resume after a read error,
// hence the goroutine rather than a reader that reports running dry. Only the
// goroutine calling begin/feed/finish/abort touches the fields between
// calls; the channels order the accesses.
type inflater struct {
	noContext bool
	dict      []byte
	fr        io.ReadCloser // from inflatePool while a message is inflated
	tmp       *[]byte       // from inflateTmpPool likewise

	running bool
	limit   int64
	out     []byte // output so far (read between calls)
	err     error  // why the worker stopped (io.EOF: end of the stream)
	req     chan []byte
	done    chan struct{} // the worker consumed the last chunk
	exit    chan struct{} // closed when the worker returns
}

// inflateSource feeds the decompressor the chunks handed over by feed.
type inflateSource struct {
	buf    []byte
	primed bool
	req    <-chan []byte
	done   chan<- struct{}
}

func (s *inflateSource) more() bool {
	for len(s.buf) == 0 {
		if s.primed {
			s.done <- struct{}{} // feed is waiting for this
		}
		s.primed = true
		p, ok := <-s.req
		if !ok {
			return false
		}
		s.buf = p
	}
	return true
}

func (s *inflateSource) ReadByte() (byte, error) {
	if len(s.buf) == 0 && !s.more() {
		return 0, errInflateAborted
	}
	b := s.buf[0]
	s.buf = s.buf[1:]
	return b, nil
}

func (s *inflateSource) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.buf) == 0 && !s.more() {
		return 0, errInflateAborted
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// begin starts inflating a message of at most limit decompressed bytes.
func (f *inflater) begin(limit int64) error {
	f.abort()
	f.req, f.done, f.exit = make(chan []byte), make(chan struct{}), make(chan struct{})
	src := &inflateSource{req: f.req, done: f.done}
	if fr, _ := inflatePool.Get().(io.ReadCloser); fr == nil {
		f.fr = flate.NewReaderDict(src, f.dict)
	} else if err := fr.(flate.Resetter).Reset(src, f.dict); err != nil {
		return err
	} else {
		f.fr = fr
	}
	f.tmp = inflateTmpPool.Get().(*[]byte)
	f.limit, f.out, f.err, f.running = limit, nil, nil, true
	go f.run()
	return nil
}

// run is the worker: it reads the decompressor until it stops.
func (f *inflater) run() {
	defer close(f.exit)
	for {
		n, err := f.fr.Read(*f.tmp)
		if n > 0 {
			if int64(len(f.out))+int64(n) > f.limit {
				f.err = errTooBig
				return
			}
			if len(f.out)+n > cap(f.out) {
				// Grow, but never past the limit.
				c := min(max(2*cap(f.out), len(f.out)+n, 512), int(min(f.limit, int64(maxInt))))
				out := make([]byte, len(f.out), c)
				copy(out, f.out)
				f.out = out
			}
			f.out = append(f.out, (*f.tmp)[:n]...)
		}
		if err != nil {
			f.err = err
			return
		}
	}
}

const maxInt = int(^uint(0) >> 1)

// stopped returns the worker's error once it has stopped: nil if the stream
// ended (bytes after its end are ignored, as before).
func (f *inflater) stopped() error {
	if f.err == io.EOF {
		return nil
	}
	return f.err
}

// feed hands p to the decompressor and waits until it has consumed it. Then
// f.out holds the output so far. An error stops the message.
func (f *inflater) feed(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	select {
	case f.req <- p:
	case <-f.exit:
		return f.stopped()
	}
	select {
	case <-f.done:
		return nil
	case <-f.exit:
		return f.stopped()
	}
}

// finish ends the message and returns it (at most limit bytes).
func (f *inflater) finish() ([]byte, error) {
	select {
	case f.req <- deflateTail:
		select {
		case <-f.done: // wants more than the stream's end: truncated data
			close(f.req)
			<-f.exit
		case <-f.exit:
		}
	case <-f.exit:
	}
	f.running = false
	f.release()
	msg := f.out
	f.out = nil
	if f.err != io.EOF {
		return nil, f.err
	}
	if !f.noContext {
		f.dict = appendWindow(f.dict, msg)
	}
	return msg, nil
}

// abort stops the worker of an unfinished message, if any.
func (f *inflater) abort() {
	if !f.running {
		return
	}
	close(f.req)
	<-f.exit
	f.running, f.out = false, nil
	f.release()
}

// The decompressors (about 40 KiB each) and their output chunks, taken for
// one message: between messages a connection keeps only its window (dict).
var (
	inflatePool    sync.Pool
	inflateTmpPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

// release gives the decompressor and its chunk back (the worker has stopped).
func (f *inflater) release() {
	if f.fr != nil {
		inflatePool.Put(f.fr)
		f.fr = nil
	}
	if f.tmp != nil {
		inflateTmpPool.Put(f.tmp)
		f.tmp = nil
	}
}

// appendWindow keeps the last 32 KiB of dict+p.
func appendWindow(dict, p []byte) []byte {
	const window = 32 << 10
	if len(p) >= window {
		return append(dict[:0], p[len(p)-window:]...)
	}
	if keep := window - len(p); len(dict) > keep {
		dict = append(dict[:0], dict[len(dict)-keep:]...)
	}
	return append(dict, p...)
}

// deflater compresses outgoing messages. Every message is compressed with a
// fresh window (no context takeover, always allowed by RFC 7692). With
// noBackRefs it only Huffman-codes the bytes (flate.HuffmanOnly): the output
// has no back-references, so it honours any *_max_window_bits (8..15), which
// compress/flate's LZ77 (a fixed 2^15 window) cannot.
type deflater struct {
	noBackRefs bool
}

// flateOut is a compressor and its output buffer, pooled per level (index
// 0: BestSpeed, 1: HuffmanOnly): a compress/flate Writer is over 600 KiB,
// and no context is kept between messages, so a connection holds none
// between its sends.
type flateOut struct {
	buf bytes.Buffer
	fw  *flate.Writer
}

var deflatePools [2]sync.Pool

func (d *deflater) deflate(p []byte) ([]byte, error) {
	pool, level := &deflatePools[0], flate.BestSpeed
	if d.noBackRefs {
		pool, level = &deflatePools[1], flate.HuffmanOnly
	}
	z, _ := pool.Get().(*flateOut)
	if z == nil {
		z = &flateOut{}
		fw, err := flate.NewWriter(&z.buf, level)
		if err != nil {
			return nil, err
		}
		z.fw = fw
	} else {
		z.buf.Reset()
		z.fw.Reset(&z.buf)
	}
	defer pool.Put(z)
	if _, err := z.fw.Write(p); err != nil {
		return nil, err
	}
	if err := z.fw.Flush(); err != nil {
		return nil, err
	}
	out := z.buf.Bytes()
	out = bytes.TrimSuffix(out, deflateTail[:4])
	return append([]byte(nil), out...), nil
}
