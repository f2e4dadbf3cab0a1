package wsengine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/verawebsockets/verawebsockets/internal/lwslog"
)

// dialError is a connection failure with its libwebsockets-style reason.
type dialError struct {
	reason string
	err    error
}

func (e *dialError) Error() string { return e.reason }
func (e *dialError) Unwrap() error { return e.err }

func failf(err error, format string, args ...any) *dialError {
	return &dialError{reason: fmt.Sprintf(format, args...), err: err}
}

// established is the result of a successful dial + handshake.
type established struct {
	nc       net.Conn
	early    []byte // bytes read behind the opening handshake (frames), read first
	protocol string
	deflate  *wsflate.Parameters
	answer   *bufio.Writer // an accepted connection's 101, not yet written
	response [][2]string   // a client's: the 101's headers, as sent
}

// dial connects to t (following redirects) within the connect timeout.
func (c *Conn) dial(ctx context.Context, t *target) (*established, error) {
	o := &c.opts
	ctx, cancel := context.WithTimeout(ctx, o.connectTimeout)
	defer cancel()
	for redirects := 0; ; redirects++ {
		est, loc, err := c.dialOnce(ctx, t)
		if err == nil {
			return est, nil
		}
		if loc == nil {
			return nil, c.mapCtxErr(ctx, err)
		}
		if redirects >= o.maxRedirects {
			return nil, failf(err, "HS: Redirect failed: too many redirects (max_redirects %d)", o.maxRedirects)
		}
		next, rerr := redirectTarget(t, loc)
		if rerr != nil {
			return nil, rerr
		}
		lwslog.Printf(lwslog.Client, "wsengine: redirect %s -> %s", t.u, next.u)
		t = next
	}
}

func (c *Conn) mapCtxErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return failf(err, "connect cancelled")
	}
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return failf(err, "timeout: no connection within %dms", c.opts.connectTimeout.Milliseconds())
	}
	return err
}

// redirectTarget resolves a Location header against the current target.
func redirectTarget(t *target, loc *url.URL) (*target, error) {
	u := t.u.ResolveReference(loc)
	switch strings.ToLower(u.Scheme) {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	u.Fragment = ""
	next, err := parseTarget(u.String())
	if err != nil {
		return nil, failf(err, "HS: Redirect failed: bad Location %q", loc.String())
	}
	return next, nil
}

// dialOnce makes one TCP(+proxy)(+TLS)+handshake attempt. For a redirect
// response it returns the Location (nil if not a redirect).
func (c *Conn) dialOnce(ctx context.Context, t *target) (est *established, loc *url.URL, err error) {
	o := &c.opts
	lwslog.Printf(lwslog.Client, "wsengine: connecting to %s", t.u)
	nc, err := c.dialTCP(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	// Bound TLS and the handshake by the deadline, and abort them on cancel.
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	raw := nc
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if t.secure {
		cfg := o.tls.Clone()
		cfg.ServerName = t.hostname
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, c.mapCtxErr(ctx, tlsError(err))
		}
		nc = tc
	}

	h := http.Header{}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	for _, kv := range o.headers {
		h.Add(kv[0], kv[1])
	}
	d := ws.Dialer{Protocols: o.protocols, Header: ws.HandshakeHeaderHTTP(h)}
	if o.compression {
		d.Extensions = []httphead.Option{wsflate.Parameters{ClientMaxWindowBits: 1}.Option()}
	}
	rec := &recorder{rw: nc}
	br, hs, err := d.Upgrade(rec, t.u)
	if err != nil {
		reason, location := handshakeReason(err, rec.in.Bytes())
		if location != "" || isRedirect(err) {
			if location == "" {
				return nil, nil, failf(err, "HS: Redirect code but no Location")
			}
			l, perr := url.Parse(location)
			if perr != nil {
				return nil, nil, failf(err, "HS: Redirect failed: bad Location %q", location)
			}
			return nil, l, err
		}
		return nil, nil, failf(err, "%s", reason)
	}
	est = &established{nc: nc, protocol: hs.Protocol, response: responseHeaders(rec.in.Bytes())}
	if br != nil && br.Buffered() > 0 { // frames the server sent right behind its 101
		early, _ := br.Peek(br.Buffered())
		est.early = bytes.Clone(early)
	}
	for _, e := range hs.Extensions {
		if !bytes.Equal(e.Name, wsflate.ExtensionNameBytes) {
			continue
		}
		if est.deflate != nil {
			return nil, nil, failf(nil, "HS: permessage-deflate accepted twice")
		}
		var p wsflate.Parameters
		if err := p.Parse(e); err != nil {
			return nil, nil, failf(err, "HS: bad permessage-deflate response: %v", err)
		}
		est.deflate = &p
	}
	nc.SetDeadline(time.Time{})
	if !stop() {
		return nil, nil, c.mapCtxErr(ctx, ctx.Err())
	}
	return est, nil, nil
}

// responseHeaders returns the header lines of the handshake response at the
// start of b (up to its blank line), as sent.
func responseHeaders(b []byte) [][2]string {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		b = b[:i]
	} else if i = bytes.Index(b, []byte("\n\n")); i >= 0 {
		b = b[:i]
	}
	return rawHeaders(b)
}

func isRedirect(err error) bool {
	var se ws.StatusError
	if errors.As(err, &se) {
		switch int(se) {
		case 301, 302, 303, 307, 308:
			return true
		}
	}
	return false
}

// dialTCP opens the TCP connection, through the proxy if one is set.
func (c *Conn) dialTCP(ctx context.Context, t *target) (net.Conn, error) {
	proxy := c.proxyFor(t)
	addr := t.addr
	if proxy != nil {
		addr = proxy.Host
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, c.mapCtxErr(ctx, netError(err))
	}
	nc = newSpillConn(nc)
	if proxy == nil {
		return nc, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := proxyConnect(nc, proxy, t.addr); err != nil {
		nc.Close()
		return nil, c.mapCtxErr(ctx, err)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// proxyFor returns the HTTP proxy to use for t, or nil.
func (c *Conn) proxyFor(t *target) *url.URL {
	switch c.opts.proxy {
	case "http":
		return c.opts.proxyURL
	case "env":
		return proxyFromEnv(t, os.Getenv)
	}
	return nil
}

// proxyFromEnv applies https_proxy (wss) or http_proxy (ws) and no_proxy,
// lower case first. Unlike net/http, loopback hosts are proxied too.
func proxyFromEnv(t *target, getenv func(string) string) *url.URL {
	env := func(name string) string {
		if v := getenv(strings.ToLower(name)); v != "" {
			return v
		}
		return getenv(name)
	}
	raw := env("HTTP_PROXY")
	if t.secure {
		raw = env("HTTPS_PROXY")
	}
	if raw == "" || noProxy(env("NO_PROXY"), t.hostname) {
		return nil
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := parseProxy(raw)
	if err != nil {
		lwslog.Printf(lwslog.Warn, "wsengine: ignoring proxy from the environment %q: %v", raw, err)
		return nil
	}
	return u
}

// noProxy reports whether host matches the no_proxy list.
func noProxy(list, host string) bool {
	host = strings.ToLower(host)
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil {
			if ip := net.ParseIP(host); ip != nil && n.Contains(ip) {
				return true
			}
			continue
		}
		if h, _, err := net.SplitHostPort(e); err == nil {
			e = h
		}
		e = strings.TrimPrefix(e, "*")
		if host == strings.TrimPrefix(e, ".") || strings.HasSuffix(host, "."+strings.TrimPrefix(e, ".")) {
			return true
		}
	}
	return false
}

// proxyConnect opens a tunnel to addr with HTTP CONNECT.
func proxyConnect(nc net.Conn, proxy *url.URL, addr string) error {
	var req bytes.Buffer
	fmt.Fprintf(&req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", addr, addr)
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pw))
		fmt.Fprintf(&req, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	req.WriteString("\r\n")
	if _, err := nc.Write(req.Bytes()); err != nil {
		return failf(err, "proxy: CONNECT to %s failed: %v", proxy.Host, err)
	}
	// Read byte by byte up to the blank line: nothing after it may be lost.
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) && !bytes.HasSuffix(head, []byte("\n\n")) {
		if len(head) > 16<<10 {
			return failf(nil, "proxy: CONNECT response too long")
		}
		if _, err := nc.Read(one); err != nil {
			if errors.Is(err, io.EOF) {
				return failf(err, "proxy: Peer hung up during CONNECT")
			}
			return failf(err, "proxy: CONNECT failed: %v", err)
		}
		head = append(head, one[0])
	}
	r, err := parseResponseHead(head)
	if err != nil {
		return failf(err, "proxy: bad CONNECT response: %v", err)
	}
	if r.status/100 != 2 {
		return failf(nil, "proxy: CONNECT failed (status %d)", r.status)
	}
	return nil
}

// netError maps dial errors to libwebsockets wording.
func netError(err error) error {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return failf(err, "getaddrinfo (ipv4) failed: %v", dns.Err)
	case refused(err):
		return failf(err, "connect failed: connection refused")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return failf(err, "connect failed: %v", err)
}

// refused reports a refused connect. qemu-user hands an emulated guest the
// host's errno through SO_ERROR unchanged, so a mips binary run under qemu on
// x86 sees 111 (x86's ECONNREFUSED; no errno of MIPS has that number) where
// real MIPS hardware gives 146.
func refused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var en syscall.Errno
	return (runtime.GOARCH == "mips" || runtime.GOARCH == "mipsle") && errors.As(err, &en) && en == 111
}

// tlsError maps TLS handshake errors.
func tlsError(err error) error {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return failf(err, "TLS: certificate verify failed: %v", err)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return failf(err, "Peer hung up")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	if old := tlsVersionProblem(err); old != "" {
		return failf(err, "TLS: handshake failed: %s; 1.2 or later required", old)
	}
	return failf(err, "TLS: handshake failed: %v", err)
}

// selectedVersion is how crypto/tls reports a ServerHello with a version it
// does not speak (a server that knows nothing newer than TLS 1.1 answers
// with its own best version).
var selectedVersion = regexp.MustCompile(`tls: server selected unsupported protocol version ([0-9a-f]+)`)

// tlsVersionProblem says which old TLS version err shows the server is
// limited to, or "" when err is about something else. crypto/tls tells it
// only in its error texts: a ServerHello with an old version, or the
// server's protocol_version alert (RFC 8446 section 6.2: sent by a server
// that supports none of the versions offered, here 1.2 and 1.3).
func tlsVersionProblem(err error) string {
	if m := selectedVersion.FindStringSubmatch(err.Error()); m != nil {
		v, _ := strconv.ParseUint(m[1], 16, 16)
		return "server offered only " + tls.VersionName(uint16(v))
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil &&
		oe.Err.Error() == "tls: protocol version not supported" {
		return "server supports only TLS versions before 1.2 (protocol_version alert)"
	}
	return ""
}

// Limits of a handshake response, as the server role limits requests
// (maxRequestHeaders, maxRequestHeaderBytes).
const (
	maxResponseHeaders     = 100      // header lines after the status line
	maxResponseHeaderBytes = 32 << 10 // status and header lines, line ends not counted
)

// headLimitError fails a handshake whose response head is over a limit.
type headLimitError struct{ reason string }

func (e *headLimitError) Error() string { return e.reason }

// recorder remembers the first bytes read through it (the handshake
// response) and bounds the response head: once the status and header lines
// read so far exceed maxResponseHeaderBytes, or maxResponseHeaders header
// lines, every Read fails with a *headLimitError, so a server that sends an
// endless header costs at most one read buffer more than the limit. Bytes
// after the blank line that ends the head (frames) are not counted.
type recorder struct {
	rw io.ReadWriter
	in bytes.Buffer

	headBytes int  // bytes of the status and header lines so far
	lines     int  // complete lines so far (the status line first)
	lineLen   int  // bytes of the current line so far
	headDone  bool // the blank line came
	err       error
}

func (r *recorder) Write(p []byte) (int, error) { return r.rw.Write(p) }
func (r *recorder) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.rw.Read(p)
	if room := maxResponseHeaderBytes + 2*maxResponseHeaders + 1024 - r.in.Len(); room > 0 { // the whole head
		r.in.Write(p[:min(n, room)])
	}
	if !r.headDone {
		if r.err = r.scan(p[:n]); r.err != nil {
			return 0, r.err
		}
	}
	return n, err
}

// scan counts the response head's bytes and lines in b.
func (r *recorder) scan(b []byte) error {
	for _, c := range b {
		switch c {
		case '\n':
			if r.lineLen == 0 && r.lines > 0 {
				r.headDone = true
				return nil
			}
			r.lines++
			r.lineLen = 0
			if r.lines-1 > maxResponseHeaders {
				return &headLimitError{fmt.Sprintf("HS: response has more than %d header lines", maxResponseHeaders)}
			}
		case '\r':
		default:
			r.lineLen++
			r.headBytes++
			if r.headBytes > maxResponseHeaderBytes {
				return &headLimitError{fmt.Sprintf("HS: response headers exceed %d bytes", maxResponseHeaderBytes)}
			}
		}
	}
	return nil
}

// responseHead is a parsed HTTP response head.
type responseHead struct {
	status int
	header http.Header
}

// parseResponseHead parses "HTTP/1.x NNN reason\r\n" + header lines up to the
// blank line (or the end of b).
func parseResponseHead(b []byte) (*responseHead, error) {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		b = b[:i]
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	sl := lines[0]
	if !strings.HasPrefix(sl, "HTTP/1.") || len(sl) < 12 || sl[8] != ' ' {
		return nil, fmt.Errorf("bad status line %q", trunc(sl))
	}
	status, err := strconv.Atoi(sl[9:12])
	if err != nil || status < 100 || (len(sl) > 12 && sl[12] != ' ') {
		return nil, fmt.Errorf("bad status line %q", trunc(sl))
	}
	r := &responseHead{status: status, header: http.Header{}}
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || !isToken(k) {
			return nil, fmt.Errorf("bad header line %q", trunc(l))
		}
		r.header.Add(k, strings.TrimSpace(v))
	}
	return r, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// handshakeReason maps a ws.Dialer.Upgrade error (and the response bytes
// seen) to a libwebsockets-style reason; location is the Location header of
// a redirect response.
func handshakeReason(err error, resp []byte) (reason, location string) {
	head, _ := parseResponseHead(resp)
	has := func(name string) bool {
		if head == nil {
			return false
		}
		_, ok := head.header[http.CanonicalHeaderKey(name)]
		return ok
	}
	var (
		se ws.StatusError
		hl *headLimitError
	)
	switch {
	case errors.As(err, &hl):
		return hl.reason, ""
	case errors.As(err, &se):
		if head != nil && isRedirect(err) {
			location = head.header.Get("Location")
		}
		return fmt.Sprintf("HS: ws upgrade response not 101 (status %d)", int(se)), location
	case errors.Is(err, ws.ErrHandshakeBadSecAccept):
		if has("Sec-WebSocket-Accept") {
			return "HS: Accept hash wrong", ""
		}
		return "HS: ACCEPT missing", ""
	case errors.Is(err, ws.ErrHandshakeBadUpgrade):
		if has("Upgrade") {
			return "HS: Upgrade to something other than websocket", ""
		}
		return "HS: UPGRADE missing", ""
	case errors.Is(err, ws.ErrHandshakeBadConnection):
		if has("Connection") {
			return "HS: CONNECTION malformed", ""
		}
		return "HS: CONNECTION missing", ""
	case errors.Is(err, ws.ErrHandshakeBadSubProtocol):
		return "HS: Cannot match protocol", ""
	case errors.Is(err, ws.ErrHandshakeBadExtensions):
		return "HS: Unrequested extension", ""
	case errors.Is(err, ws.ErrHandshakeBadProtocol):
		return "HS: ws upgrade response not 101 (not HTTP/1.1)", ""
	case errors.Is(err, ws.ErrMalformedResponse):
		return "HS: malformed response", ""
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return "Peer hung up", ""
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout", "" // replaced by mapCtxErr when the deadline is ours
	}
	return "HS: " + err.Error(), ""
}
