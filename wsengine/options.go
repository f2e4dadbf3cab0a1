package wsengine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of the options (see include/verawebsockets.h).
const (
	DefaultMaxMessageSize = 16 << 20
	DefaultMaxSendQueue   = 16 << 20
	DefaultConnectTimeout = 10 * time.Second
	DefaultCloseTimeout   = 3 * time.Second
	DefaultPongTimeout    = 10 * time.Second

	maxSizeLimit   = 1 << 30          // upper bound of max_message_size / max_send_queue
	maxDurationMS  = 24 * 3600 * 1000 // upper bound of every time option: one day
	maxRedirectsUp = 10
)

// backoff describes the reconnect policy.
type backoff struct {
	min, max    time.Duration
	factor      float64
	jitter      float64
	maxAttempts int // 0 = unlimited
}

// delay returns the wait before reconnect attempt n (1-based), jittered by r in [0,1).
func (b *backoff) delay(n int, r float64) time.Duration {
	d := float64(b.min) * math.Pow(b.factor, float64(n-1))
	if d > float64(b.max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.max)
	}
	d *= 1 + b.jitter*(2*r-1)
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}

// options holds the parsed option values of a Conn.
type options struct {
	certFile, keyFile, caFile string
	allowSelfSigned           bool
	maxMessageSize            int64
	maxSendQueue              int
	compression               bool
	protocols                 []string
	headers                   [][2]string
	origin                    string
	connectTimeout            time.Duration
	pingInterval              time.Duration
	pongTimeout               time.Duration // 0: default
	closeTimeout              time.Duration
	reconnect                 *backoff
	proxy                     string // "", "env" or a parsed http URL
	proxyURL                  *url.URL
	maxRedirects              int
	pongEvents                bool
	writeableEvents           bool

	tls *tls.Config // built by check
}

func defaultOptions() options {
	return options{
		maxMessageSize: DefaultMaxMessageSize,
		maxSendQueue:   DefaultMaxSendQueue,
		connectTimeout: DefaultConnectTimeout,
		closeTimeout:   DefaultCloseTimeout,
	}
}

func (o *options) effectivePongTimeout() time.Duration {
	switch {
	case o.pongTimeout > 0:
		return o.pongTimeout
	case o.pingInterval > 0:
		return o.pingInterval
	}
	return DefaultPongTimeout
}

func optErr(name, format string, args ...any) error {
	return &OptionError{Name: name, Msg: fmt.Sprintf(format, args...)}
}

func parseBool(name, v string) (bool, error) {
	switch v {
	case "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, optErr(name, "want \"0\" or \"1\", got %q", v)
}

func parseInt(name, v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, optErr(name, "want a decimal integer, got %q", v)
	}
	if n < lo || n > hi {
		return 0, optErr(name, "%d is out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

// setInt parses v as parseInt does and stores it in *dst; a refused v
// leaves *dst as it was.
func setInt(dst *int, name, v string, lo, hi int64) error {
	n, err := parseInt(name, v, lo, hi)
	if err == nil {
		*dst = int(n)
	}
	return err
}

func parseMS(name, v string, lo int64) (time.Duration, error) {
	n, err := parseInt(name, v, lo, maxDurationMS)
	return time.Duration(n) * time.Millisecond, err
}

// isToken reports whether s is an RFC 7230 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue refuses CR, LF, NUL and other control bytes except tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// reservedHeaders are written by the handshake itself.
var reservedHeaders = map[string]bool{
	"host": true, "upgrade": true, "connection": true, "content-length": true,
	"transfer-encoding": true, "sec-websocket-key": true, "sec-websocket-version": true,
	"sec-websocket-protocol": true, "sec-websocket-extensions": true, "origin": true,
}

func parseHeaderLine(v string) (name, value string, err error) {
	i := strings.IndexByte(v, ':')
	if i < 0 {
		return "", "", optErr("header", "want \"Name: value\", got %q", v)
	}
	name, value = strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
	if !isToken(name) {
		return "", "", optErr("header", "invalid header name %q", name)
	}
	if !validHeaderValue(value) {
		return "", "", optErr("header", "value of %s contains CR, LF, NUL or control bytes", name)
	}
	if reservedHeaders[strings.ToLower(name)] {
		return "", "", optErr("header", "%s is set by the engine (use the origin/protocols options)", name)
	}
	return name, value, nil
}

func parseReconnect(v string) (*backoff, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	f := strings.Split(v, ",")
	if len(f) != 5 {
		return nil, optErr("reconnect", "want \"min_ms,max_ms,factor,jitter,max_attempts\", got %q", v)
	}
	minD, err := parseMS("reconnect", f[0], 0)
	if err != nil {
		return nil, err
	}
	maxD, err := parseMS("reconnect", f[1], 0)
	if err != nil {
		return nil, err
	}
	if maxD < minD {
		return nil, optErr("reconnect", "max delay %v is below min delay %v", maxD, minD)
	}
	factor, err := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
	if err != nil || factor < 1 || factor > 100 || math.IsNaN(factor) {
		return nil, optErr("reconnect", "factor must be a number in 1..100, got %q", f[2])
	}
	jitter, err := strconv.ParseFloat(strings.TrimSpace(f[3]), 64)
	if err != nil || jitter < 0 || jitter > 1 || math.IsNaN(jitter) {
		return nil, optErr("reconnect", "jitter must be a number in 0..1, got %q", f[3])
	}
	n, err := parseInt("reconnect", f[4], 0, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	return &backoff{min: minD, max: maxD, factor: factor, jitter: jitter, maxAttempts: int(n)}, nil
}

func parseProxy(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" || u.Hostname() == "" || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, optErr("proxy", "want \"http://[user:pass@]host:port\", \"env\" or \"\", got %q", v)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, optErr("proxy", "bad port in %q", v)
		}
	} else {
		u.Host = net.JoinHostPort(u.Hostname(), "80")
	}
	return u, nil
}

// set applies one option in text form.
func (o *options) set(name, v string) error {
	var err error
	switch name {
	case "client_ssl_cert_filepath":
		o.certFile = v
	case "client_ssl_private_key_filepath":
		o.keyFile = v
	case "client_ssl_ca_filepath":
		o.caFile = v
	case "allow_self_signed":
		o.allowSelfSigned, err = parseBool(name, v)
	case "max_message_size":
		o.maxMessageSize, err = parseInt(name, v, 1, maxSizeLimit)
	case "max_send_queue":
		err = setInt(&o.maxSendQueue, name, v, 1, maxSizeLimit)
	case "compression":
		o.compression, err = parseBool(name, v)
	case "protocols":
		var ps []string
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" && strings.TrimSpace(v) == "" {
				continue
			}
			if !isToken(p) {
				return optErr(name, "invalid subprotocol name %q", p)
			}
			ps = append(ps, p)
		}
		o.protocols = ps
	case "header":
		var k, val string
		if k, val, err = parseHeaderLine(v); err == nil {
			o.headers = append(o.headers, [2]string{k, val})
		}
	case "origin":
		if !validHeaderValue(v) {
			return optErr(name, "contains CR, LF, NUL or control bytes")
		}
		o.origin = v
	case "connect_timeout":
		o.connectTimeout, err = parseMS(name, v, 1)
	case "ping_interval":
		o.pingInterval, err = parseMS(name, v, 0)
	case "pong_timeout":
		o.pongTimeout, err = parseMS(name, v, 1)
	case "close_timeout":
		o.closeTimeout, err = parseMS(name, v, 0)
	case "reconnect":
		o.reconnect, err = parseReconnect(v)
	case "proxy":
		switch v {
		case "", "env":
			o.proxy, o.proxyURL = v, nil
		default:
			var u *url.URL
			if u, err = parseProxy(v); err == nil {
				o.proxy, o.proxyURL = "http", u
			}
		}
	case "max_redirects":
		err = setInt(&o.maxRedirects, name, v, 0, maxRedirectsUp)
	case "pong_events":
		o.pongEvents, err = parseBool(name, v)
	case "writeable_events":
		o.writeableEvents, err = parseBool(name, v)
	default:
		return &OptionError{Name: name, Msg: "unknown option"}
	}
	return err
}

// defaultTLS is the TLS configuration of a client without certificate
// options: one for all (dial clones it), not 480 bytes on every connection.
var defaultTLS = &tls.Config{MinVersion: tls.VersionTLS12}

// check loads the certificate files and builds the TLS configuration.
func (o *options) check() error {
	if o.certFile == "" && o.keyFile == "" && o.caFile == "" && !o.allowSelfSigned {
		o.tls = defaultTLS
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.allowSelfSigned}
	switch {
	case o.certFile != "" && o.keyFile == "":
		return optErr("client_ssl_private_key_filepath", "needed with client_ssl_cert_filepath")
	case o.certFile == "" && o.keyFile != "":
		return optErr("client_ssl_cert_filepath", "needed with client_ssl_private_key_filepath")
	case o.certFile != "":
		for _, f := range [][2]string{{"client_ssl_cert_filepath", o.certFile}, {"client_ssl_private_key_filepath", o.keyFile}} {
			if _, err := os.Stat(f[1]); err != nil {
				return optErr(f[0], "cannot read %s: %v", f[1], unwrapPath(err))
			}
		}
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return optErr("client_ssl_cert_filepath", "cannot load key pair %s / %s: %v", o.certFile, o.keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.caFile != "" {
		pool, err := loadCAs("client_ssl_ca_filepath", o.caFile)
		if err != nil {
			return err
		}
		cfg.RootCAs = pool
	}
	o.tls = cfg
	return nil
}

// loadCAs reads the PEM certificates in file (the value of option) into a
// pool; its errors name option.
func loadCAs(option, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, optErr(option, "cannot read %s: %v", file, unwrapPath(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, optErr(option, "no PEM certificate found in %s", file)
	}
	return pool, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// target is a parsed ws:// or wss:// URL.
type target struct {
	u        *url.URL
	secure   bool
	hostname string // without brackets
	addr     string // host:port to dial
}

// parseTarget parses and checks a ws:// or wss:// URL.
func parseTarget(raw string) (*target, error) {
	bad := func(format string, args ...any) error {
		return &OptionError{Name: "url", Msg: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(raw) == "" {
		return nil, bad("empty URL")
	}
	if !validHeaderValue(raw) || strings.ContainsAny(raw, " \t") {
		return nil, bad("%q contains spaces or control bytes", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("cannot parse %q: %v", raw, errors.Unwrap(err))
	}
	t := &target{u: u}
	switch strings.ToLower(u.Scheme) {
	case "ws":
	case "wss":
		t.secure = true
	default:
		return nil, bad("%q: scheme must be ws:// or wss://", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, bad("%q has no host", raw)
	}
	if u.Fragment != "" {
		return nil, bad("%q: a WebSocket URL cannot have a #fragment", raw)
	}
	if u.User != nil {
		return nil, bad("%q: user info in the URL is not supported (use a header option)", raw)
	}
	t.hostname = u.Hostname()
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return nil, bad("%q has an empty port", raw)
		}
		port = "80"
		if t.secure {
			port = "443"
		}
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, bad("%q: bad port %q", raw, port)
	}
	t.addr = net.JoinHostPort(t.hostname, port)
	if u.Path == "" {
		u.Path = "/"
	}
	return t, nil
}
