package wsengine

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/testpki"
)

func TestOriginAllowed(t *testing.T) {
	allowed, all, err := parseOrigins("http://192.168.1.5:8080, HTTPS://Example.com")
	if err != nil || all {
		t.Fatal(err, all)
	}
	for _, tc := range []struct {
		origin, host string
		secure       bool
		list         []string
		all, want    bool
	}{
		{"", "anything", false, nil, false, true}, // not a browser
		{"http://127.0.0.1:8080", "127.0.0.1:8080", false, nil, false, true},
		{"http://LOCALHOST:8080", "localhost:8080", false, nil, false, true},
		{"http://127.0.0.1:8000", "127.0.0.1:8080", false, nil, false, false}, // another port: another site
		{"http://evil.example", "192.168.1.5:8080", false, nil, false, false},
		{"http://192.168.1.5", "192.168.1.5:80", false, nil, false, true}, // default ports
		{"https://192.168.1.5", "192.168.1.5", true, nil, false, true},
		{"https://192.168.1.5", "192.168.1.5:443", true, nil, false, true},
		{"http://[::1]", "[::1]:80", false, nil, false, true},
		{"null", "192.168.1.5:8080", false, nil, false, false},
		{"garbage", "192.168.1.5:8080", false, nil, false, false},
		{"http://192.168.1.5:8080", "vera:8080", false, allowed, false, true},
		{"https://example.com", "vera:8080", false, allowed, false, true},
		{"https://example.com:444", "vera:8080", false, allowed, false, false},
		{"http://example.com", "vera:8080", false, allowed, false, false}, // scheme differs
		{"http://evil.example", "vera:8080", false, nil, true, true},
		{"null", "vera:8080", false, nil, true, true},
	} {
		if got := originAllowed(tc.origin, tc.host, tc.secure, tc.list, tc.all); got != tc.want {
			t.Errorf("originAllowed(%q, %q, %v, %v, %v) = %v", tc.origin, tc.host, tc.secure, tc.list, tc.all, got)
		}
	}
}

func TestParseOriginsAndRate(t *testing.T) {
	for _, bad := range []string{"example.com", "http://", "http://a/path", "http://a?q", "http://u@a", "http://a:0", "http://a:99999", "*,x"} {
		if _, _, err := parseOrigins(bad); err == nil {
			t.Errorf("parseOrigins(%q) accepted", bad)
		}
	}
	if list, all, err := parseOrigins(" * "); err != nil || !all || list != nil {
		t.Errorf("parseOrigins(*) = %v %v %v", list, all, err)
	}
	for _, tc := range []struct {
		v           string
		rate, burst float64
	}{{"", 0, 0}, {"10", 10, 10}, {"0.5", 0.5, 1}, {"10, 20", 10, 20}, {"2.5,3", 2.5, 3}} {
		r, b, err := parseRate(tc.v)
		if err != nil || r != tc.rate || b != tc.burst {
			t.Errorf("parseRate(%q) = %v %v %v", tc.v, r, b, err)
		}
	}
	for _, bad := range []string{"0", "-1", "x", "1,0", "1,x", "2e6", "NaN", "1,2,3"} {
		if _, _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
}

// rawStatus sends a complete handshake request with the Host header host and
// the extra header lines to s and returns the response's status code and
// body (the body only for a refusal: the connection is closed after it).
func rawStatus(t *testing.T, s *Server, host, extra string) (int, string, net.Conn) {
	t.Helper()
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "GET /raw HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", host, extra)
	br := bufio.NewReader(nc)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no status line: %v", err)
	}
	var code int
	fmt.Sscanf(line, "HTTP/1.1 %d", &code)
	if code == 101 {
		return code, "", nc
	}
	var body strings.Builder
	for line, err = br.ReadString('\n'); err == nil; line, err = br.ReadString('\n') {
		body.WriteString(line)
	}
	body.WriteString(line)
	return code, body.String(), nc
}

// noneAccepted fails the test if s handed a connection over.
func noneAccepted(t *testing.T, acc chan *srvConn) {
	t.Helper()
	select {
	case sc := <-acc:
		t.Fatalf("accepted %q", sc.path)
	case <-time.After(50 * time.Millisecond):
	}
}

// A browser's handshake from a page of another site (an Origin naming
// another host than Host) is refused with 403 before the upgrade, unless
// the origins option allows that origin; clients without Origin pass.
func TestServerOriginPolicy(t *testing.T) {
	s, acc := testServer(t, false)
	host := fmt.Sprintf("127.0.0.1:%d", s.Port())
	for _, tc := range []struct{ host, extra string }{
		{host, "Origin: http://evil.example\r\n"},
		{host, "Origin: http://127.0.0.1:1\r\n"}, // a page on another port
		{"evil.example", "Origin: http://127.0.0.1\r\n"},
		{host, "Origin: null\r\n"},
		{host, "Origin:\r\n"},
	} {
		code, body, _ := rawStatus(t, s, tc.host, tc.extra)
		if code != 403 || !strings.Contains(body, "origins") {
			t.Errorf("Host %s, %q: %d %q", tc.host, tc.extra, code, body)
		}
	}
	noneAccepted(t, acc)
	for _, extra := range []string{"", "Origin: http://" + host + "\r\n", "Origin: HTTP://" + strings.ToUpper(host) + "\r\n"} {
		if code, body, _ := rawStatus(t, s, host, extra); code != 101 {
			t.Errorf("%q: %d %q", extra, code, body)
		}
		nextAccepted(t, acc)
	}

	s2, acc2 := testServer(t, false, "origins=https://example.com,http://192.168.1.5:8080")
	host2 := fmt.Sprintf("127.0.0.1:%d", s2.Port())
	for origin, want := range map[string]int{"https://example.com": 101, "http://192.168.1.5:8080": 101,
		"http://example.com": 403, "http://192.168.1.5": 403, "http://" + host2: 101} {
		if code, body, _ := rawStatus(t, s2, host2, "Origin: "+origin+"\r\n"); code != want {
			t.Errorf("origins list, %s: %d %q", origin, code, body)
		}
		if want == 101 {
			nextAccepted(t, acc2)
		}
	}
	noneAccepted(t, acc2)

	s3, acc3 := testServer(t, false, "origins=*")
	if code, _, _ := rawStatus(t, s3, "x", "Origin: http://evil.example\r\n"); code != 101 {
		t.Errorf("origins=*: %d", code)
	}
	nextAccepted(t, acc3)
}

// max_clients_per_ip: the 4th connection from one address gets 503; once
// one of the three closes, a new one is accepted.
func TestServerMaxClientsPerIP(t *testing.T) {
	s, acc := testServer(t, false, "max_clients_per_ip=3")
	var first net.Conn
	for i := 0; i < 3; i++ {
		code, _, nc := rawStatus(t, s, "x", "")
		if code != 101 {
			t.Fatalf("client %d: %d", i+1, code)
		}
		if i == 0 {
			first = nc
		}
		nextAccepted(t, acc)
	}
	if code, body, _ := rawStatus(t, s, "x", ""); code != 503 || !strings.Contains(body, "max_clients_per_ip 3") {
		t.Fatalf("4th client: %d %q", code, body)
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body, _ := rawStatus(t, s, "x", "")
		if code == 101 {
			break
		}
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("after one left: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	nextAccepted(t, acc)
}

// handshake_rate: a burst over the bucket gets 429 with Retry-After; tokens
// come back at the rate.
func TestServerHandshakeRate(t *testing.T) {
	s, acc := testServer(t, false, "handshake_rate=20,2")
	for i := 0; i < 2; i++ {
		if code, _, _ := rawStatus(t, s, "x", ""); code != 101 {
			t.Fatalf("handshake %d: %d", i+1, code)
		}
		nextAccepted(t, acc)
	}
	code, body, _ := rawStatus(t, s, "x", "")
	if code != 429 || !strings.Contains(body, "handshake_rate") {
		t.Fatalf("3rd handshake: %d %q", code, body)
	}
	noneAccepted(t, acc)
	time.Sleep(100 * time.Millisecond) // 20/s: two tokens back
	if code, body, _ := rawStatus(t, s, "x", ""); code != 101 {
		t.Fatalf("after a pause: %d %q", code, body)
	}
	nextAccepted(t, acc)
}

// A token bucket refills at the rate up to the burst; buckets that are full
// again are swept.
func TestTakeToken(t *testing.T) {
	s := NewServer(nil)
	s.rate, s.burst = 2, 3
	now := time.Now()
	for i := 0; i < 3; i++ {
		if !s.takeToken("a", now) {
			t.Fatalf("token %d refused", i+1)
		}
	}
	if s.takeToken("a", now) {
		t.Fatal("4th token in the same instant")
	}
	if !s.takeToken("b", now) {
		t.Fatal("another address shares the bucket")
	}
	if !s.takeToken("a", now.Add(500*time.Millisecond)) || s.takeToken("a", now.Add(500*time.Millisecond)) {
		t.Fatal("half a second at 2/s is one token")
	}
	for i := 0; i < bucketSweepLen; i++ {
		s.takeToken(fmt.Sprint("x", i), now)
	}
	s.takeToken("c", now.Add(time.Hour))
	if len(s.buckets) != 1 {
		t.Fatalf("%d buckets after the sweep", len(s.buckets))
	}
}

// Client certificates: with ssl_ca_filepath and require_client_cert, a client
// with a certificate the CA signed is accepted and its subject is known; one
// without a certificate, or with one of another CA, fails at the TLS handshake.
func TestServerClientCert(t *testing.T) {
	dir := t.TempDir()
	ca, err := testpki.CA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	wrongCA, err := testpki.CA("wrong CA")
	if err != nil {
		t.Fatal(err)
	}
	leaves := map[string]*testpki.KeyCert{}
	for _, l := range []struct {
		name, cn string
		usage    x509.ExtKeyUsage
		ca       *testpki.KeyCert
	}{{"server", "127.0.0.1", x509.ExtKeyUsageServerAuth, ca}, {"client", "phone", x509.ExtKeyUsageClientAuth, ca},
		{"wrong", "intruder", x509.ExtKeyUsageClientAuth, wrongCA}} {
		if leaves[l.name], err = testpki.Leaf(l.cn, l.usage, l.ca); err != nil {
			t.Fatal(err)
		}
		if err := leaves[l.name].Save(dir, l.name); err != nil {
			t.Fatal(err)
		}
	}
	if err := ca.SaveCert(dir, "ca.pem"); err != nil {
		t.Fatal(err)
	}
	f := func(name string) string { return filepath.Join(dir, name) }

	bad := NewServer(nil)
	bad.SetOption("port", "0")
	bad.SetOption("require_client_cert", "1")
	if err := bad.Listen(); err == nil || !strings.Contains(err.Error(), "ssl_ca_filepath") {
		t.Fatalf("require_client_cert without a CA: %v", err)
	}
	bad.SetOption("ssl_ca_filepath", f("ca.pem"))
	if err := bad.Listen(); err == nil || !strings.Contains(err.Error(), "TLS server") {
		t.Fatalf("client certificates without TLS: %v", err)
	}

	s, acc := testServer(t, false, "ssl_cert_filepath="+f("server.pem"), "ssl_private_key_filepath="+f("server.key"),
		"ssl_ca_filepath="+f("ca.pem"), "require_client_cert=1")
	url := fmt.Sprintf("wss://127.0.0.1:%d/", s.Port())
	_, ev := dialTest(t, url, "client_ssl_ca_filepath", f("ca.pem"),
		"client_ssl_cert_filepath", f("client.pem"), "client_ssl_private_key_filepath", f("client.key"))
	ev.expect(EventEstablished)
	sc := nextAccepted(t, acc)
	if subj, ok := sc.c.PeerCert(); !ok || subj != "CN=phone" {
		t.Fatalf("PeerCert = %q, %v", subj, ok)
	}
	for _, opts := range [][]string{
		{"client_ssl_ca_filepath", f("ca.pem")},
		{"client_ssl_ca_filepath", f("ca.pem"), "client_ssl_cert_filepath", f("wrong.pem"), "client_ssl_private_key_filepath", f("wrong.key")},
	} {
		_, ev := dialTest(t, url, opts...)
		if e := ev.expect(EventConnectionError); len(e.Data) == 0 {
			t.Fatal("empty reason")
		}
	}
	// A client that presents another CA's certificate anyway.
	wrong := leaves["wrong"].TLS()
	tc, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port()), &tls.Config{RootCAs: ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &wrong, nil }})
	if err == nil { // TLS 1.3: the server's verdict arrives with the first read
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		_, err = tc.Read(make([]byte, 1))
		tc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("another CA's certificate: %v", err)
	}
	noneAccepted(t, acc)

	// ssl_ca_filepath alone: a certificate is optional, but verified when given.
	s2, acc2 := testServer(t, false, "ssl_cert_filepath="+f("server.pem"), "ssl_private_key_filepath="+f("server.key"),
		"ssl_ca_filepath="+f("ca.pem"))
	url2 := fmt.Sprintf("wss://127.0.0.1:%d/", s2.Port())
	_, ev = dialTest(t, url2, "client_ssl_ca_filepath", f("ca.pem"))
	ev.expect(EventEstablished)
	if subj, ok := nextAccepted(t, acc2).c.PeerCert(); !ok || subj != "" {
		t.Fatalf("PeerCert without a certificate = %q, %v", subj, ok)
	}
	// A certificate of another CA is not offered (Go's client sends only one
	// the server's CA list names): no subject either.
	_, ev = dialTest(t, url2, "client_ssl_ca_filepath", f("ca.pem"),
		"client_ssl_cert_filepath", f("wrong.pem"), "client_ssl_private_key_filepath", f("wrong.key"))
	ev.expect(EventEstablished)
	if subj, _ := nextAccepted(t, acc2).c.PeerCert(); subj != "" {
		t.Fatalf("PeerCert with another CA's certificate = %q", subj)
	}
	_, ev = dialTest(t, url2, "client_ssl_ca_filepath", f("ca.pem"),
		"client_ssl_cert_filepath", f("client.pem"), "client_ssl_private_key_filepath", f("client.key"))
	ev.expect(EventEstablished)
	if subj, _ := nextAccepted(t, acc2).c.PeerCert(); subj != "CN=phone" {
		t.Fatalf("PeerCert with an optional certificate = %q", subj)
	}
}
