package wsengine

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
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

// oldHelloServer answers a ClientHello with a ServerHello of version vers
// and nothing else, as a server that knows nothing newer than vers does.
func oldHelloServer(t *testing.T, vers uint16) *server {
	s := newServer(t, func(nc net.Conn) {
		var rec [5]byte // the ClientHello's record header, then its body
		if _, err := io.ReadFull(nc, rec[:]); err != nil || rec[0] != 22 {
			return
		}
		if _, err := io.CopyN(io.Discard, nc, int64(binary.BigEndian.Uint16(rec[3:]))); err != nil {
			return
		}
		body := binary.BigEndian.AppendUint16(nil, vers) // server_version
		body = append(body, make([]byte, 32)...)         // random
		body = append(body, 0, 0x00, 0x2f, 0)            // no session id, TLS_RSA_WITH_AES_128_CBC_SHA, no compression
		msg := append([]byte{2, 0, 0, byte(len(body))}, body...)
		out := append([]byte{22, byte(vers >> 8), byte(vers)}, binary.BigEndian.AppendUint16(nil, uint16(len(msg)))...)
		nc.Write(append(out, msg...))
		io.Copy(io.Discard, nc)
	})
	s.url = strings.Replace(s.url, "ws://", "wss://", 1)
	return s
}

// A server limited to TLS 1.0/1.1 gets a reason that says so, whether it
// answers with its old version or with a protocol_version alert.
func TestTLSOldVersion(t *testing.T) {
	p := newPKI(t)
	alert := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{p.server},
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	for _, tc := range []struct {
		name, url, want string
	}{
		{"crypto/tls server with MaxVersion 1.1", alert.url,
			"TLS: handshake failed: server supports only TLS versions before 1.2 (protocol_version alert); 1.2 or later required"},
		{"ServerHello of TLS 1.1", oldHelloServer(t, tls.VersionTLS11).url,
			"TLS: handshake failed: server offered only TLS 1.1; 1.2 or later required"},
		{"ServerHello of TLS 1.0", oldHelloServer(t, tls.VersionTLS10).url,
			"TLS: handshake failed: server offered only TLS 1.0; 1.2 or later required"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			_, ev := dialTest(t, tc.url, "allow_self_signed", "1")
			if e := ev.expect(EventConnectionError); string(e.Data) != tc.want {
				t.Fatalf("reason %q, want %q", e.Data, tc.want)
			}
		})
	}
}
