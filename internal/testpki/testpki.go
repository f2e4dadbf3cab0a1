// Package testpki mints throwaway certificates for tests and demos: a CA,
// leaf certificates for 127.0.0.1 and localhost signed by it (or
// self-signed), and PEM files of them. Keys are ECDSA P-256; certificates are
// valid from an hour ago for a day.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// KeyCert is a certificate with its private key.
type KeyCert struct {
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate
	DER  []byte
}

var serial atomic.Int64

// CA returns a self-signed CA certificate named cn.
func CA(cn string) (*KeyCert, error) {
	return Mint(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil)
}

// Leaf returns a certificate named cn for usage (server or client auth), valid
// for 127.0.0.1 and localhost, signed by parent (self-signed if nil).
func Leaf(cn string, usage x509.ExtKeyUsage, parent *KeyCert) (*KeyCert, error) {
	return Mint(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}, parent)
}

// Mint fills in tmpl's serial number and validity, makes a key and signs the
// certificate with parent (self-signed if nil).
func Mint(tmpl *x509.Certificate, parent *KeyCert) (*KeyCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.Key, parent.Cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyCert{Key: key, Cert: cert, DER: der}, nil
}

// WritePEM writes der as one PEM block of type typ to path (mode 0600).
func WritePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// SaveCert writes the certificate to dir/name.
func (k *KeyCert) SaveCert(dir, name string) error {
	return WritePEM(filepath.Join(dir, name), "CERTIFICATE", k.DER)
}

// Save writes the certificate to dir/base.pem and its key (PKCS#8) to dir/base.key.
func (k *KeyCert) Save(dir, base string) error {
	if err := k.SaveCert(dir, base+".pem"); err != nil {
		return err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return err
	}
	return WritePEM(filepath.Join(dir, base+".key"), "PRIVATE KEY", kd)
}

// TLS returns the pair as a tls.Certificate.
func (k *KeyCert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{k.DER}, PrivateKey: k.Key, Leaf: k.Cert}
}

// Pool returns a certificate pool holding only k's certificate.
func (k *KeyCert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(k.Cert)
	return p
}
