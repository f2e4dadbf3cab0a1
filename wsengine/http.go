package wsengine

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

// Plain HTTP beside the upgrade: a Server with http_root serves the files of a
// directory, and one with http_handler hands requests to its HTTPFunc first.
// Every response closes the connection (no keep-alive).

// Limits of the HTTP path (see include/verawebsockets.h).
const (
	DefaultMaxHTTPBody = 1 << 20  // max_http_body: request bodies over it get 413
	maxRequestHead     = 64 << 10 // request line and headers together (more: HTTP 431)
	maxRequestLine     = 8 << 10  // one line of the head (more: HTTP 431, 414 for the request line)
	fileChunk          = 32 << 10 // a file is written in chunks of this size, each with a fresh deadline
	lingerTime         = 500 * time.Millisecond
	lingerBytes        = 256 << 10
)

// ErrRequestDone is returned by Request.Respond when the request was already
// answered, or when the server stopped waiting for the answer (it sent 503
// after the handshake timeout, or it was closed).
var ErrRequestDone = errors.New("wsengine: HTTP request was already answered or timed out")

// Request is a plain HTTP request (not a WebSocket upgrade) that a Server with
// http_handler hands to its HTTPFunc. The fields never change; Respond may be
// called from any goroutine, once.
type Request struct {
	Method string
	Target string      // the request target as sent ("/path?query", percent-encoded)
	Header [][2]string // as sent, in order (Host first when sent first)
	Body   []byte      // the whole body (at most max_http_body bytes)
	Peer   string      // the client's address ("127.0.0.1:54321")
	// Upgrade: a WebSocket handshake for the filter (option "filter"), not a
	// plain request. Body is then the subject of the client certificate the
	// server verified ("" without one); Status 0 accepts it, 300..599 refuses.
	Upgrade bool
	// CrossOrigin: the handshake's Origin is one the Origin policy refuses
	// (delivered only with origins = "filter"; the filter decides).
	CrossOrigin bool

	mu     sync.Mutex
	answer *Response
	done   chan struct{} // closed when answered or given up
}

// Response is the answer to a Request. Status 0 means "not handled": the
// server goes on with http_root (or 404). Header lines are written as given,
// except Content-Length, Connection and Transfer-Encoding, which the server
// writes itself.
type Response struct {
	Status int
	Header [][2]string
	Body   []byte
}

// Respond answers r; it fails with ErrRequestDone when r was answered or
// given up already, and with *OptionError for a bad status or header.
func (r *Request) Respond(resp Response) error {
	if r.Upgrade && resp.Status != 0 && (resp.Status < 300 || resp.Status > 599) {
		return &OptionError{Name: "status", Msg: fmt.Sprintf("%d is not 0 (accept) or 300..599 (refuse)", resp.Status)}
	}
	if resp.Status != 0 && (resp.Status < 200 || resp.Status > 599) {
		return &OptionError{Name: "status", Msg: fmt.Sprintf("%d is not 0 (not handled) or 200..599", resp.Status)}
	}
	for _, h := range resp.Header {
		if !isToken(h[0]) || !validHeaderValue(h[1]) {
			return &OptionError{Name: "header", Msg: fmt.Sprintf("bad header %q (a token name, a value without control bytes)", h[0])}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return ErrRequestDone
	default:
	}
	r.answer = &resp
	close(r.done)
	return nil
}

// Done returns a channel that is closed once r is answered or given up.
func (r *Request) Done() <-chan struct{} { return r.done }

// giveUp ends r without an answer; it returns the answer if one came first.
func (r *Request) giveUp() *Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return r.answer
	default:
	}
	close(r.done)
	return nil
}

// HTTPFunc receives the plain HTTP requests of a Server with http_handler
// (on the request's own goroutine; it must return at once) and arranges for
// Respond to be called. It returns false when it cannot (the request then
// goes on as unhandled).
type HTTPFunc func(r *Request) bool

// HandleHTTP sets the function that receives plain HTTP requests when the
// http_handler option is set. Call it before Listen.
func (s *Server) HandleHTTP(f HTTPFunc) {
	s.mu.Lock()
	s.onHTTP = f
	s.mu.Unlock()
}

// readHead reads a request's line and headers (up to the empty line) from br.
// It returns the bytes read, whether the request asks for a WebSocket upgrade,
// or the HTTP status to refuse it with (0: the connection just ended).
func readHead(br *bufio.Reader) (head []byte, upgrade bool, status int) {
	for lines := 0; ; lines++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if lines == 0 {
				return nil, false, 414 // URI Too Long
			}
			return nil, false, 431
		}
		if err != nil {
			return nil, false, 0
		}
		if len(head)+len(line) > maxRequestHead || lines > maxRequestHeaders+1 {
			return nil, false, 431
		}
		head = append(head, line...)
		t := bytes.TrimRight(line, "\r\n")
		if len(t) == 0 {
			if lines == 0 { // a stray empty line before the request (RFC 9112 section 2.2)
				head = head[:0]
				continue
			}
			return head, upgrade, 0
		}
		if k, v, ok := bytes.Cut(t, []byte(":")); ok && lines > 0 && strings.EqualFold(string(bytes.TrimSpace(k)), "Upgrade") &&
			bytes.Contains(bytes.ToLower(v), []byte("websocket")) {
			upgrade = true
		}
	}
}

// beginRequest counts a plain HTTP request of ip against handshake_rate and
// max_clients_per_ip (the Origin policy and max_clients do not apply): it
// returns 0, having counted it in perIP until endRequest, or the status and
// reason to refuse it with.
func (s *Server) beginRequest(ip string) (status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.takeToken(ip, time.Now()):
		return 429, fmt.Sprintf("too many requests from %s (handshake_rate %g/s, burst %g)", ip, s.rate, s.burst)
	case s.maxPerIP > 0 && s.perIP[ip] >= s.maxPerIP:
		return 503, fmt.Sprintf("too many clients from %s (max_clients_per_ip %d)", ip, s.maxPerIP)
	}
	s.perIP[ip]++
	return 0, ""
}

// serveHTTP answers one plain HTTP request on nc whose head was read (br
// holds what follows it), then closes nc. The handler's answer is awaited
// for up to timeout (the handshake timeout).
func (s *Server) serveHTTP(nc net.Conn, head []byte, br *bufio.Reader, ip string, timeout time.Duration) {
	s.mu.Lock()
	root, handler, onHTTP, maxBody := s.httpRoot, s.httpHandler, s.onHTTP, s.maxHTTPBody
	s.mu.Unlock()
	w := &httpWriter{nc: nc}
	defer lingerClose(nc)

	req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br)))
	if err != nil {
		w.status(400, "bad request: "+err.Error())
		return
	}
	if req.ProtoMajor != 1 {
		w.status(505, "HTTP/1.x only")
		return
	}
	if status, reason := s.beginRequest(ip); status != 0 {
		lwslog.Printf(lwslog.Notice, "wsengine: server: refused %s (HTTP %d): %s", nc.RemoteAddr(), status, reason)
		var extra [][2]string
		if status == 429 {
			extra = [][2]string{{"Retry-After", "1"}}
		}
		w.write(status, extra, []byte(reason+"\n"), false)
		return
	}
	defer func() {
		s.mu.Lock()
		s.release(ip)
		s.mu.Unlock()
	}()
	isHead := req.Method == http.MethodHead
	if handler && onHTTP != nil {
		if req.ContentLength > maxBody {
			w.status(413, fmt.Sprintf("request body over max_http_body (%d bytes)", maxBody))
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
		if err != nil {
			w.status(400, "cannot read the request body: "+err.Error())
			return
		}
		if int64(len(body)) > maxBody {
			w.status(413, fmt.Sprintf("request body over max_http_body (%d bytes)", maxBody))
			return
		}
		r := &Request{Method: req.Method, Target: req.RequestURI, Header: rawHeaders(head), Body: body,
			Peer: nc.RemoteAddr().String(), done: make(chan struct{})}
		resp := s.ask(r, onHTTP, time.Now().Add(timeout))
		nc.SetDeadline(time.Now().Add(timeout))
		if resp == nil {
			lwslog.Printf(lwslog.Notice, "wsengine: server: no answer to %s %s from %s in time (HTTP 503)", req.Method, req.RequestURI, nc.RemoteAddr())
			w.status(503, "no answer in time")
			return
		} else if resp.Status != 0 {
			w.write(resp.Status, resp.Header, resp.Body, isHead)
			return
		}
	}
	if !handler || onHTTP == nil { // read the body: closing with it unread may reset the response
		io.Copy(io.Discard, io.LimitReader(req.Body, maxBody))
	}
	if root == "" {
		w.status(404, "not found")
		return
	}
	if req.Method != http.MethodGet && !isHead {
		w.write(405, [][2]string{{"Allow", "GET, HEAD"}}, []byte("method not allowed\n"), false)
		return
	}
	serveFile(w, req, root, isHead)
}

// ask hands r to f and waits for its answer until deadline or until the
// server stops; nil when none came (or f could not take it).
func (s *Server) ask(r *Request, f HTTPFunc, deadline time.Time) *Response {
	s.mu.Lock()
	if !s.listening {
		s.mu.Unlock()
		return nil
	}
	if s.requests == nil {
		s.requests = make(map[*Request]struct{})
	}
	s.requests[r] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.requests, r)
		s.mu.Unlock()
	}()
	if !f(r) {
		r.giveUp()
		return &Response{} // not handled
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
	}
	return r.giveUp()
}

// giveUpRequests ends the requests waiting for an answer (the server stops):
// they get 503. Called with s.mu held.
func (s *Server) giveUpRequests() {
	for r := range s.requests {
		r.giveUp()
	}
}

// rawHeaders returns the header lines of head (after the request line) as sent.
func rawHeaders(head []byte) [][2]string {
	var out [][2]string
	for i, line := range strings.Split(string(head), "\n") {
		line = strings.TrimRight(line, "\r")
		if i == 0 || line == "" {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out
}

// contentTypes maps file extensions (lower case) to Content-Type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
	".json": "application/json", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8", ".ico": "image/x-icon",
}

// ContentType returns the Content-Type the server sends for a file name.
func ContentType(name string) string {
	if t, ok := contentTypes[strings.ToLower(filepath.Ext(name))]; ok {
		return t
	}
	return "application/octet-stream"
}

// serveFile answers a GET or HEAD of a file under root: 403 for a path with a
// ".." segment (also percent-encoded) or one that leaves root through a
// symlink, 404 for a missing one, 301 to "path/" for a directory asked
// without the slash, its index.html for a directory, 304 when
// If-Modified-Since is not older than the file.
func serveFile(w *httpWriter, req *http.Request, root string, head bool) {
	p := req.URL.Path // decoded: "%2e%2e" is ".." here
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\\") {
		w.status(400, "bad path")
		return
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			w.status(403, "forbidden")
			return
		}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		w.status(404, "not found")
		return
	}
	name := filepath.Join(realRoot, filepath.FromSlash(p))
	real, err := filepath.EvalSymlinks(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		w.status(404, "not found")
		return
	case err != nil:
		w.status(403, "forbidden")
		return
	case real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)):
		w.status(403, "forbidden")
		return
	}
	fi, err := os.Stat(real)
	if err != nil {
		w.status(404, "not found")
		return
	}
	if fi.IsDir() {
		if !strings.HasSuffix(p, "/") {
			loc := req.URL.EscapedPath() + "/"
			if req.URL.RawQuery != "" {
				loc += "?" + req.URL.RawQuery
			}
			w.write(301, [][2]string{{"Location", loc}}, []byte("moved\n"), head)
			return
		}
		idx := filepath.Join(real, "index.html")
		if real2, err := filepath.EvalSymlinks(idx); err != nil {
			w.status(404, "not found")
			return
		} else if !strings.HasPrefix(real2, realRoot+string(filepath.Separator)) {
			w.status(403, "forbidden")
			return
		} else {
			real = real2
		}
		if fi, err = os.Stat(real); err != nil || fi.IsDir() {
			w.status(404, "not found")
			return
		}
	}
	if !fi.Mode().IsRegular() {
		w.status(403, "forbidden")
		return
	}
	mod := fi.ModTime().UTC().Truncate(time.Second)
	hdr := [][2]string{{"Content-Type", ContentType(real)}, {"Last-Modified", mod.Format(http.TimeFormat)},
		{"X-Content-Type-Options", "nosniff"}}
	if ims, err := http.ParseTime(req.Header.Get("If-Modified-Since")); err == nil && !mod.After(ims) {
		w.write(304, hdr[1:2], nil, true)
		return
	}
	f, err := os.Open(real)
	if err != nil {
		w.status(403, "forbidden")
		return
	}
	defer f.Close()
	w.head(200, hdr, fi.Size())
	if head {
		w.flush()
		return
	}
	w.copyFile(f)
}

// httpWriter writes one response and remembers the first write error.
type httpWriter struct {
	nc  net.Conn
	buf bytes.Buffer
	err error
}

// status writes a short text response.
func (w *httpWriter) status(code int, text string) {
	w.write(code, nil, []byte(text+"\n"), false)
}

// head starts a response with its status line and headers.
func (w *httpWriter) head(code int, hdr [][2]string, length int64) {
	text := http.StatusText(code)
	if text == "" {
		text = "Status " + strconv.Itoa(code)
	}
	fmt.Fprintf(&w.buf, "HTTP/1.1 %d %s\r\n", code, text)
	hasType := false
	for _, h := range hdr {
		switch strings.ToLower(h[0]) {
		case "content-length", "connection", "transfer-encoding":
			continue
		case "content-type":
			hasType = true
		}
		fmt.Fprintf(&w.buf, "%s: %s\r\n", h[0], h[1])
	}
	if !hasType && length > 0 {
		w.buf.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	}
	if code != 304 {
		fmt.Fprintf(&w.buf, "Content-Length: %d\r\n", length)
	}
	w.buf.WriteString("Connection: close\r\n\r\n")
}

// write writes a whole response (without the body for HEAD and 304).
func (w *httpWriter) write(code int, hdr [][2]string, body []byte, noBody bool) {
	w.head(code, hdr, int64(len(body)))
	if !noBody && code != 304 {
		w.buf.Write(body)
	}
	w.flush()
}

func (w *httpWriter) flush() {
	if w.err == nil && w.buf.Len() > 0 {
		_, w.err = w.nc.Write(w.buf.Bytes())
	}
	w.buf.Reset()
}

// copyFile writes the response head and then f, each chunk with a deadline of
// its own (a large file may take longer than the handshake timeout).
func (w *httpWriter) copyFile(f *os.File) {
	w.flush()
	chunk := make([]byte, fileChunk)
	for w.err == nil {
		n, err := f.Read(chunk)
		if n > 0 {
			w.nc.SetWriteDeadline(time.Now().Add(DefaultHandshakeTimeout))
			_, w.err = w.nc.Write(chunk[:n])
		}
		if err != nil {
			return
		}
	}
}

// lingerClose ends the response: it shuts the sending side, reads what the
// client still sends for a moment (a request body the server did not read
// would otherwise make the kernel reset the connection, and the client could
// lose the response), then closes nc.
func lingerClose(nc net.Conn) {
	defer nc.Close()
	var cw interface{ CloseWrite() error }
	switch c := nc.(type) {
	case *tls.Conn:
		cw = c
	case *spillConn:
		cw, _ = c.Conn.(interface{ CloseWrite() error })
	default:
		cw, _ = nc.(interface{ CloseWrite() error })
	}
	if cw == nil || cw.CloseWrite() != nil {
		return
	}
	nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, io.LimitReader(nc, lingerBytes))
}
