package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#include "capi.h"
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"

	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// errArg is a bad pointer or length at the ABI (VWS_EARG).
type errArg string

func (e errArg) Error() string { return string(e) }

// status returns the status of err (VWS_EARG for errArg) and, on failure,
// writes its message into buf[0..n-1] (truncated, NUL-terminated) when buf is
// not NULL. On success buf becomes "".
func status(buf *C.char, n C.size_t, err error) C.int {
	st := hub.Status(err)
	if err != nil { // errors.As's target escapes: not made for a nil error (every send's)
		var ea errArg
		if errors.As(err, &ea) {
			st = hub.EArg
		}
	}
	if buf != nil && n > 0 {
		msg := ""
		if err != nil {
			msg = message(err)
		}
		dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
		k := copy(dst[:len(dst)-1], msg)
		dst[k] = 0
	}
	return C.int(st)
}

// message is err's text for C callers, without the Go package prefix.
func message(err error) string {
	msg := err.Error()
	for _, p := range []string{"hub: ", "wsengine: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// recoverStatus, deferred by every export returning a status, turns a panic
// into VWS_EINTERNAL (and its message into buf).
func recoverStatus(rc *C.int, buf *C.char, n C.size_t) {
	if r := recover(); r != nil {
		lwslog.Printf(lwslog.Err, "verawebsockets: recovered panic: %v", r)
		*rc = status(buf, n, &hub.PanicError{Value: r})
	}
}

// goString copies a C string, or reports a NULL one as a bad argument.
func goString(s *C.vws_cchar, what string) (string, error) {
	if s == nil {
		return "", errArg(what + " is NULL")
	}
	return C.GoString((*C.char)(unsafe.Pointer(s))), nil
}

// goBytes copies p[0..n-1] into Go memory (NULL is fine when n is 0).
func goBytes(p *C.vws_cchar, n C.size_t, what string) ([]byte, error) {
	if n == 0 {
		return []byte{}, nil
	}
	if p == nil {
		return nil, errArg(what + " is NULL with a non-zero length")
	}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))...), nil
}

//export vws_abi_version
func vws_abi_version() C.int { return C.VWS_ABI_VERSION }

//export vws_set_log_level
func vws_set_log_level(mask C.int) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	lwslog.SetMask(int(mask))
	return C.VWS_OK
}

//export vws_log
func vws_log(level C.int, msg *C.vws_cchar) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	s, err := goString(msg, "msg")
	if err != nil {
		return status(nil, 0, err)
	}
	lwslog.Line(int(level), s)
	return C.VWS_OK
}

//export vws_set_log_sink
func vws_set_log_sink(fn C.vws_log_sink, ud unsafe.Pointer) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	setLogSink(fn, ud)
	return C.VWS_OK
}

//export vws_ctx_new
func vws_ctx_new(out *C.vws_ctx, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	if out == nil {
		return status(err, errlen, errArg("out is NULL"))
	}
	ctx := hub.NewContext()
	if ctx == 0 {
		return status(err, errlen, &hub.PanicError{Value: "no context"})
	}
	*out = C.vws_ctx(ctx)
	return status(err, errlen, nil)
}

//export vws_ctx_free
func vws_ctx_free(ctx C.vws_ctx) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	return status(nil, 0, hub.FreeContext(uint64(ctx)))
}

//export vws_ctx_pending
func vws_ctx_pending(ctx C.vws_ctx) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	n, err := hub.Pending(uint64(ctx))
	if err != nil {
		return status(nil, 0, err)
	}
	return C.int(n)
}

//export vws_ctx_wake
func vws_ctx_wake(ctx C.vws_ctx) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	return status(nil, 0, hub.Wake(uint64(ctx)))
}

//export vws_ctx_event_fd
func vws_ctx_event_fd(ctx C.vws_ctx) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	fd, err := hub.EventFD(uint64(ctx))
	if err != nil {
		return status(nil, 0, err)
	}
	return C.int(fd)
}

//export vws_ctx_active
func vws_ctx_active(ctx C.vws_ctx) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	n, err := hub.Active(uint64(ctx))
	if err != nil {
		return status(nil, 0, err)
	}
	return C.int(n)
}

//export vws_conn_new
func vws_conn_new(ctx C.vws_ctx, url *C.vws_cchar, out *C.vws_conn, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	if out == nil {
		return status(err, errlen, errArg("out is NULL"))
	}
	u, e := goString(url, "url")
	if e != nil {
		return status(err, errlen, e)
	}
	c, e := hub.NewConn(uint64(ctx), u)
	if e != nil {
		return status(err, errlen, e)
	}
	*out = C.vws_conn(c)
	return status(err, errlen, nil)
}

//export vws_conn_set_option
func vws_conn_set_option(c C.vws_conn, name, value *C.vws_cchar, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	return setOption(uint64(c), name, value, err, errlen, hub.SetOption)
}

// setOption copies an option's name and value and sets it on handle h.
func setOption(h uint64, name, value *C.vws_cchar, err *C.char, errlen C.size_t, set func(uint64, string, string) error) C.int {
	n, e := goString(name, "option name")
	if e != nil {
		return status(err, errlen, e)
	}
	v, e := goString(value, "value of option "+n)
	if e != nil {
		return status(err, errlen, e)
	}
	return status(err, errlen, set(h, n, v))
}

//export vws_conn_check
func vws_conn_check(c C.vws_conn, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	return status(err, errlen, hub.Check(uint64(c)))
}

//export vws_conn_connect
func vws_conn_connect(c C.vws_conn, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	return status(err, errlen, hub.Connect(uint64(c)))
}

//export vws_conn_send
func vws_conn_send(c C.vws_conn, opcode C.int, data *C.vws_cchar, n C.size_t, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	if data == nil && n > 0 {
		return status(err, errlen, errArg("data is NULL with a non-zero length"))
	}
	p := wsengine.NewPayload(int(n)) // reused once written
	copy(p, unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n)))
	return status(err, errlen, hub.SendPayload(uint64(c), wsengine.OpCode(opcode), p))
}

//export vws_conn_ping
func vws_conn_ping(c C.vws_conn, data *C.vws_cchar, n C.size_t, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	p, e := goBytes(data, n, "data")
	if e != nil {
		return status(err, errlen, e)
	}
	return status(err, errlen, hub.Ping(uint64(c), p))
}

//export vws_conn_close
func vws_conn_close(c C.vws_conn, code C.int, reason *C.vws_cchar, n C.size_t, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	r, e := goBytes(reason, n, "reason")
	if e != nil {
		return status(err, errlen, e)
	}
	return status(err, errlen, hub.Close(uint64(c), int(code), string(r)))
}

//export vws_conn_state
func vws_conn_state(c C.vws_conn) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	s, err := hub.State(uint64(c))
	if err != nil {
		return status(nil, 0, err)
	}
	return C.int(s)
}

//export vws_conn_buffered
func vws_conn_buffered(c C.vws_conn, out *C.size_t) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if out == nil {
		return status(nil, 0, errArg("out is NULL"))
	}
	n, err := hub.Buffered(uint64(c))
	if err != nil {
		return status(nil, 0, err)
	}
	*out = C.size_t(n)
	return C.VWS_OK
}

//export vws_conn_protocol
func vws_conn_protocol(c C.vws_conn, buf *C.char, buflen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if buf == nil || buflen == 0 {
		return status(nil, 0, errArg("buf is NULL or empty"))
	}
	p, err := hub.Protocol(uint64(c))
	if err != nil {
		return status(nil, 0, err)
	}
	copyOut(buf, buflen, p) // truncated to fit, like snprintf
	return C.VWS_OK
}

//export vws_conn_free
func vws_conn_free(c C.vws_conn) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	return status(nil, 0, hub.FreeConn(uint64(c)))
}

//export vws_conn_server
func vws_conn_server(c C.vws_conn, out *C.vws_server) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if out == nil {
		return status(nil, 0, errArg("out is NULL"))
	}
	s, err := hub.ConnServer(uint64(c))
	if err != nil {
		return status(nil, 0, err)
	}
	*out = C.vws_server(s)
	return C.VWS_OK
}

//export vws_server_new
func vws_server_new(ctx C.vws_ctx, out *C.vws_server, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	if out == nil {
		return status(err, errlen, errArg("out is NULL"))
	}
	s, e := hub.NewServer(uint64(ctx))
	if e != nil {
		return status(err, errlen, e)
	}
	*out = C.vws_server(s)
	return status(err, errlen, nil)
}

//export vws_server_set_option
func vws_server_set_option(s C.vws_server, name, value *C.vws_cchar, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	return setOption(uint64(s), name, value, err, errlen, hub.ServerSetOption)
}

//export vws_server_listen
func vws_server_listen(s C.vws_server, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	return status(err, errlen, hub.ServerListen(uint64(s)))
}

//export vws_http_respond
func vws_http_respond(req C.vws_conn, code C.int, headers, body *C.vws_cchar, n C.size_t, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	h := ""
	if headers != nil {
		h = C.GoString((*C.char)(unsafe.Pointer(headers)))
	}
	p, e := goBytes(body, n, "body")
	if e != nil {
		return status(err, errlen, e)
	}
	return status(err, errlen, hub.HTTPRespond(uint64(req), int(code), h, p))
}

//export vws_server_port
func vws_server_port(s C.vws_server) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	p, err := hub.ServerPort(uint64(s))
	if err != nil {
		return status(nil, 0, err)
	}
	return C.int(p)
}

//export vws_server_broadcast
func vws_server_broadcast(s C.vws_server, opcode C.int, data *C.vws_cchar, n C.size_t, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	p, e := goBytes(data, n, "data")
	if e != nil {
		return status(err, errlen, e)
	}
	k, e := hub.Broadcast(uint64(s), wsengine.OpCode(opcode), p)
	if e != nil {
		return status(err, errlen, e)
	}
	status(err, errlen, nil)
	return C.int(k)
}

//export vws_server_clients
func vws_server_clients(s C.vws_server, out *C.vws_conn, n C.size_t) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	ids, err := hub.ServerClients(uint64(s))
	if err != nil {
		return status(nil, 0, err)
	}
	if n > 0 && out == nil {
		return status(nil, 0, errArg("out is NULL with a non-zero n"))
	}
	if n > 0 {
		dst := unsafe.Slice(out, int(n))
		for i := 0; i < len(ids) && i < len(dst); i++ {
			dst[i] = C.vws_conn(ids[i])
		}
	}
	return C.int(len(ids))
}

//export vws_server_close
func vws_server_close(s C.vws_server, code C.int, reason *C.vws_cchar, n C.size_t, err *C.char, errlen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, err, errlen)
	r, e := goBytes(reason, n, "reason")
	if e != nil {
		return status(err, errlen, e)
	}
	return status(err, errlen, hub.ServerClose(uint64(s), int(code), string(r)))
}

//export vws_server_free
func vws_server_free(s C.vws_server) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	return status(nil, 0, hub.FreeServer(uint64(s)))
}

//export vws_conn_request_headers
func vws_conn_request_headers(c C.vws_conn, buf *C.char, buflen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if buf == nil || buflen == 0 {
		return status(nil, 0, errArg("buf is NULL or empty"))
	}
	h, err := hub.RequestHeaders(uint64(c))
	if err != nil {
		return status(nil, 0, err)
	}
	copyOut(buf, buflen, h)
	return C.int(len(h))
}

//export vws_conn_peer
func vws_conn_peer(c C.vws_conn, buf *C.char, buflen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if buf == nil || buflen == 0 {
		return status(nil, 0, errArg("buf is NULL or empty"))
	}
	p, err := hub.Peer(uint64(c))
	if err != nil {
		return status(nil, 0, err)
	}
	copyOut(buf, buflen, p)
	return C.VWS_OK
}

//export vws_conn_peer_cert
func vws_conn_peer_cert(c C.vws_conn, buf *C.char, buflen C.size_t) (rc C.int) {
	defer recoverStatus(&rc, nil, 0)
	if buf == nil || buflen == 0 {
		return status(nil, 0, errArg("buf is NULL or empty"))
	}
	p, err := hub.PeerCert(uint64(c))
	if err != nil {
		return status(nil, 0, err)
	}
	copyOut(buf, buflen, p)
	return C.int(len(p))
}

// copyOut copies s into buf[0..buflen-1], truncated to fit, NUL-terminated.
func copyOut(buf *C.char, buflen C.size_t, s string) {
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(buflen))
	k := copy(dst[:len(dst)-1], s)
	dst[k] = 0
}
