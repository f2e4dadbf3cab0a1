package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

const (
	opText   = ws.OpText
	opBinary = ws.OpBinary
	maxMsg   = 64 << 20
)

func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && r.Header.Get("Sec-WebSocket-Key") != ""
}

// hijack takes the raw connection; deadlines set by net/http are cleared.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.Reader, bool) {
	c, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, false
	}
	c.SetDeadline(time.Time{})
	return c, brw.Reader, true
}

// upgrade answers a valid handshake with 101 (and proto as the chosen subprotocol
// when not empty), or with 400.
func upgrade(w http.ResponseWriter, r *http.Request, proto string) (net.Conn, *bufio.Reader, bool) {
	if !isUpgrade(r) {
		http.Error(w, "not a websocket handshake", http.StatusBadRequest)
		return nil, nil, false
	}
	c, br, ok := hijack(w)
	if !ok {
		return nil, nil, false
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	if proto != "" {
		resp += "Sec-WebSocket-Protocol: " + proto + "\r\n"
	}
	if _, err := io.WriteString(c, resp+"\r\n"); err != nil {
		c.Close()
		return nil, nil, false
	}
	return c, br, true
}

// closeErr is what readMessage returns when the peer sent a close frame (after
// the close reply was written).
type closeErr struct {
	code   int
	reason string
}

func (e *closeErr) Error() string { return fmt.Sprintf("close %d %q", e.code, e.reason) }

type wsConn struct {
	c      net.Conn
	r      *bufio.Reader
	wmu    sync.Mutex
	closed bool // close frame sent
	onPong func(p []byte)
	noPong bool         // do not answer pings
	pings  atomic.Int64 // pings received (read by /closeinfo while the connection lives)
}

func newWSConn(c net.Conn, r *bufio.Reader) *wsConn { return &wsConn{c: c, r: r} }

func (w *wsConn) writeFrame(f ws.Frame) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed {
		return errors.New("close already sent")
	}
	if f.Header.OpCode == ws.OpClose {
		w.closed = true
	}
	w.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	return ws.WriteFrame(w.c, f)
}

func (w *wsConn) write(op ws.OpCode, p []byte) error { return w.writeFrame(ws.NewFrame(op, true, p)) }

func (w *wsConn) sendClose(code int, reason string) error {
	if code == 0 {
		return w.writeFrame(ws.NewFrame(ws.OpClose, true, nil))
	}
	return w.writeFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
}

// readFrame reads one frame, unmasked.
func (w *wsConn) readFrame() (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(w.r)
	if err != nil {
		return h, nil, err
	}
	if h.Length > maxMsg {
		return h, nil, fmt.Errorf("frame too big: %d", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(w.r, p); err != nil {
		return h, nil, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return h, p, nil
}

// readMessage returns the next whole data message. Pings are answered, pongs
// passed to onPong, a close frame is answered (same code) and returned as *closeErr.
func (w *wsConn) readMessage() (ws.OpCode, []byte, error) {
	var op ws.OpCode
	var msg []byte
	started := false
	for {
		h, p, err := w.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			w.pings.Add(1)
			if !w.noPong {
				w.writeFrame(ws.NewFrame(ws.OpPong, true, p))
			}
			continue
		case ws.OpPong:
			if w.onPong != nil {
				w.onPong(p)
			}
			continue
		case ws.OpClose:
			ce := &closeErr{code: 1005}
			if len(p) >= 2 {
				ce.code = int(binary.BigEndian.Uint16(p))
				ce.reason = string(p[2:])
			}
			if ce.code == 1005 {
				w.sendClose(0, "")
			} else {
				w.sendClose(ce.code, ce.reason) // echo code and reason
			}
			return 0, nil, ce
		case ws.OpContinuation:
			if !started {
				return 0, nil, errors.New("continuation without start")
			}
		default:
			if started {
				return 0, nil, errors.New("new message inside a fragmented one")
			}
			started, op = true, h.OpCode
		}
		msg = append(msg, p...)
		if len(msg) > maxMsg {
			return 0, nil, errors.New("message too big")
		}
		if h.Fin {
			return op, msg, nil
		}
	}
}

// closeHandshake sends a close frame and waits (bounded) for the peer's, then
// closes the connection. It returns what the peer sent.
func (w *wsConn) closeHandshake(code int, reason string) *closeErr {
	defer w.c.Close()
	if err := w.sendClose(code, reason); err != nil {
		return nil
	}
	w.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, _, err := w.readMessage()
		var ce *closeErr
		if errors.As(err, &ce) {
			return ce
		}
		if err != nil {
			return nil
		}
	}
}

// echo echoes messages until the connection ends and returns how it ended.
func (w *wsConn) echo() closeRec {
	defer w.c.Close()
	for {
		op, p, err := w.readMessage()
		if err != nil {
			var ce *closeErr
			if errors.As(err, &ce) {
				return closeRec{Seen: true, Code: ce.code, Reason: ce.reason, Clean: true, Pings: int(w.pings.Load())}
			}
			return closeRec{Seen: true, Code: 1006, Pings: int(w.pings.Load())}
		}
		if err := w.write(op, p); err != nil {
			return closeRec{Seen: true, Code: 1006, Pings: int(w.pings.Load())}
		}
	}
}
