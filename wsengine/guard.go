package wsengine

import (
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What a Server checks before it answers a handshake with 101: the Origin
// policy (cross-site WebSocket hijacking) and the per-address limits.

const (
	maxRate        = 1e6 // upper bound of handshake_rate's rate and burst
	bucketSweepLen = 256 // sweep idle token buckets once a server has this many
)

// parseOrigins parses the origins server option: "" (the default policy
// only), "*" (any origin), or comma separated origins "scheme://host[:port]",
// kept in lower case.
func parseOrigins(v string) (list []string, all bool, err error) {
	if strings.TrimSpace(v) == "" {
		return nil, false, nil
	}
	for _, o := range strings.Split(v, ",") {
		o = strings.ToLower(strings.TrimSpace(o))
		if o == "*" {
			all = true
			continue
		}
		u, perr := url.Parse(o)
		if perr != nil || u.Scheme == "" || u.Host == "" || u.Hostname() == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || !validHeaderValue(o) {
			return nil, false, optErr("origins", "want \"*\" or origins \"scheme://host[:port]\" (no path), got %q", o)
		}
		if p := u.Port(); p != "" {
			if n, aerr := strconv.Atoi(p); aerr != nil || n < 1 || n > 65535 {
				return nil, false, optErr("origins", "bad port in %q", o)
			}
		}
		list = append(list, o)
	}
	return list, all, nil
}

// defaultPort is the port a URL scheme implies ("" when unknown).
func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// normalHost lower-cases host[:port] and drops the port when it is def.
func normalHost(hostport, def string) string {
	hostport = strings.ToLower(hostport)
	h, p, err := net.SplitHostPort(hostport)
	if err != nil || p != def {
		return hostport
	}
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// originAllowed reports whether a handshake with these Origin and Host
// headers may go on: without Origin (not a browser) always; with an Origin
// that names the host the client asked for (Host, the default ports of the
// schemes aside: a page of the same host); or with one of the allowed
// origins. secure says whether the server runs TLS (Host's default port).
func originAllowed(origin, host string, secure bool, allowed []string, all bool) bool {
	if origin == "" || all {
		return true
	}
	origin = strings.ToLower(strings.TrimSpace(origin))
	for _, a := range allowed {
		if origin == a {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil {
		return false // "null" (sandboxed frames, file:// pages) or garbage
	}
	hostDef := "80"
	if secure {
		hostDef = "443"
	}
	return normalHost(u.Host, defaultPort(u.Scheme)) == normalHost(host, hostDef)
}

// parseRate parses handshake_rate: "" (off) or "rate[,burst]", handshakes
// per second per address (> 0) and the bucket size (>= 1; default: rate
// rounded up).
func parseRate(v string) (rate, burst float64, err error) {
	if strings.TrimSpace(v) == "" {
		return 0, 0, nil
	}
	rs, bs, hasBurst := strings.Cut(v, ",")
	rate, err = strconv.ParseFloat(strings.TrimSpace(rs), 64)
	if err != nil || !(rate > 0 && rate <= maxRate) {
		return 0, 0, optErr("handshake_rate", "want \"rate[,burst]\" with a rate in (0, %g] per second, got %q", float64(maxRate), v)
	}
	burst = math.Max(1, math.Ceil(rate))
	if hasBurst {
		burst, err = strconv.ParseFloat(strings.TrimSpace(bs), 64)
		if err != nil || !(burst >= 1 && burst <= maxRate) {
			return 0, 0, optErr("handshake_rate", "burst must be a number in 1..%g, got %q", float64(maxRate), bs)
		}
	}
	return rate, burst, nil
}

// bucket is a token bucket of one address.
type bucket struct {
	tokens float64
	last   time.Time
}

// takeToken takes one handshake token of ip's bucket; false when it is
// empty. Buckets that have filled up again are forgotten now and then, so
// the map holds about the addresses seen within burst/rate seconds. Called
// with s.mu held.
func (s *Server) takeToken(ip string, now time.Time) bool {
	if s.rate <= 0 {
		return true
	}
	if s.buckets == nil {
		s.buckets = make(map[string]*bucket)
	}
	if len(s.buckets) >= bucketSweepLen && now.Sub(s.swept) > time.Second {
		s.swept = now
		for k, b := range s.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*s.rate >= s.burst {
				delete(s.buckets, k)
			}
		}
	}
	b := s.buckets[ip]
	if b == nil {
		b = &bucket{tokens: s.burst, last: now}
		s.buckets[ip] = b
	}
	b.tokens = math.Min(s.burst, b.tokens+now.Sub(b.last).Seconds()*s.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// addrIP is the address part of a remote address ("127.0.0.1:5555" ->
// "127.0.0.1").
func addrIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
