package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"

	"github.com/verawebsockets/verawebsockets/internal/testpki"
)

type testCerts struct {
	ca     *x509.Certificate
	server tls.Certificate // signed by ca, for 127.0.0.1 and localhost
	self   tls.Certificate // self-signed, for 127.0.0.1 and localhost
}

// makeCerts writes into dir: ca.pem (the test CA), client.pem/client.key (signed by
// it), wrongca.pem and wrongclient.pem/.key (another CA), selfsigned.pem (the
// SELF_PORT certificate) and garbage.pem (not PEM at all).
func makeCerts(dir string) (*testCerts, error) {
	ca, err := testpki.CA("verawebsockets test CA")
	if err != nil {
		return nil, err
	}
	srv, err := testpki.Leaf("127.0.0.1", x509.ExtKeyUsageServerAuth, ca)
	if err != nil {
		return nil, err
	}
	cli, err := testpki.Leaf("vws test client", x509.ExtKeyUsageClientAuth, ca)
	if err != nil {
		return nil, err
	}
	wca, err := testpki.CA("verawebsockets WRONG CA")
	if err != nil {
		return nil, err
	}
	wcli, err := testpki.Leaf("vws wrong client", x509.ExtKeyUsageClientAuth, wca)
	if err != nil {
		return nil, err
	}
	self, err := testpki.Leaf("127.0.0.1", x509.ExtKeyUsageServerAuth, nil)
	if err != nil {
		return nil, err
	}
	for _, f := range []func() error{
		func() error { return ca.SaveCert(dir, "ca.pem") },
		func() error { return wca.SaveCert(dir, "wrongca.pem") },
		func() error { return cli.Save(dir, "client") },
		func() error { return wcli.Save(dir, "wrongclient") },
		func() error { return self.Save(dir, "selfsigned") },
		func() error { return srv.Save(dir, "server") },
		func() error {
			return os.WriteFile(filepath.Join(dir, "garbage.pem"), []byte("this is not a PEM file\n"), 0o600)
		},
	} {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return &testCerts{ca: ca.Cert, server: srv.TLS(), self: self.TLS()}, nil
}
