package wsengine

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verawebsockets/verawebsockets/internal/testpki"
)

type pki struct {
	caFile, certFile, keyFile string // CA; client cert/key signed by the CA
	server                    tls.Certificate
	pool                      *x509.CertPool
}

// newPKI makes a CA, a server certificate for 127.0.0.1 and a client cert.
func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := testpki.CA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	// For 127.0.0.1 only (no "localhost"): TestTLS checks the name mismatch.
	srv, err := testpki.Mint(&x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := testpki.Leaf("client", x509.ExtKeyUsageClientAuth, ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.SaveCert(dir, "ca.pem"); err != nil {
		t.Fatal(err)
	}
	if err := cli.Save(dir, "client"); err != nil {
		t.Fatal(err)
	}
	return &pki{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "client.pem"),
		keyFile: filepath.Join(dir, "client.key"), server: srv.TLS(), pool: ca.Pool()}
}

func tlsServer(t *testing.T, cfg *tls.Config) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := serveOn(t, tls.NewListener(ln, cfg), echoHandler("", nil))
	s.url = "wss://" + ln.Addr().String()
	return s
}

func TestTLS(t *testing.T) {
	p := newPKI(t)
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{p.server}})

	// Unknown CA: verification fails.
	_, ev := dialTest(t, srv.url)
	if e := ev.expect(EventConnectionError); !strings.HasPrefix(string(e.Data), "TLS: certificate verify failed") {
		t.Fatalf("reason %q", e.Data)
	}
	// With the CA file it verifies.
	c, ev := dialTest(t, srv.url+"/", "client_ssl_ca_filepath", p.caFile)
	ev.expect(EventEstablished)
	c.Send(OpText, []byte("secure"))
	if e := ev.expect(EventReceive); string(e.Data) != "secure" {
		t.Fatalf("got %q", e.Data)
	}
	// allow_self_signed skips verification.
	_, ev = dialTest(t, srv.url, "allow_self_signed", "1")
	ev.expect(EventEstablished)
	// Wrong host name: the certificate is for 127.0.0.1 only.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.url, "wss://"))
	_, ev = dialTest(t, "wss://localhost:"+port, "client_ssl_ca_filepath", p.caFile)
	if e := ev.expect(EventConnectionError); !strings.HasPrefix(string(e.Data), "TLS: certificate verify failed") {
		t.Fatalf("reason %q", e.Data)
	}
}

func TestTLSClientCert(t *testing.T) {
	p := newPKI(t)
	srv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{p.server},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool})
	_, ev := dialTest(t, srv.url, "client_ssl_ca_filepath", p.caFile,
		"client_ssl_cert_filepath", p.certFile, "client_ssl_private_key_filepath", p.keyFile)
	ev.expect(EventEstablished)
	// Without a client certificate the server refuses.
	_, ev = dialTest(t, srv.url, "client_ssl_ca_filepath", p.caFile)
	if e := ev.expect(EventConnectionError); len(e.Data) == 0 {
		t.Fatal("empty reason")
	}
}

func TestCheck(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	for _, tc := range []struct {
		opts []string
		name string // option named in the error, "" = ok
	}{
		{[]string{"client_ssl_ca_filepath", p.caFile}, ""},
		{[]string{"client_ssl_ca_filepath", missing}, "client_ssl_ca_filepath"},
		{[]string{"client_ssl_ca_filepath", p.keyFile}, "client_ssl_ca_filepath"},
		{[]string{"client_ssl_cert_filepath", p.certFile, "client_ssl_private_key_filepath", p.keyFile}, ""},
		{[]string{"client_ssl_cert_filepath", p.certFile}, "client_ssl_private_key_filepath"},
		{[]string{"client_ssl_cert_filepath", missing, "client_ssl_private_key_filepath", p.keyFile}, "client_ssl_cert_filepath"},
		{[]string{"client_ssl_cert_filepath", p.caFile, "client_ssl_private_key_filepath", p.keyFile}, "client_ssl_cert_filepath"},
	} {
		c, err := NewConn("wss://127.0.0.1/", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(tc.opts); i += 2 {
			if err := c.SetOption(tc.opts[i], tc.opts[i+1]); err != nil {
				t.Fatal(err)
			}
		}
		err = c.Check()
		var oe *OptionError
		switch {
		case tc.name == "" && err != nil:
			t.Errorf("%v: %v", tc.opts, err)
		case tc.name != "" && (!errors.As(err, &oe) || oe.Name != tc.name):
			t.Errorf("%v: got %v, want an error naming %s", tc.opts, err, tc.name)
		case tc.name != "" && c.Connect() == nil:
			t.Errorf("%v: Connect accepted bad options", tc.opts)
		}
	}
}
