//go:build !flowspanclient

package main

import (
	"context"
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
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/ofctrl"
)

func TestServeSSLFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ssl without files", []string{"--listen", "ssl:127.0.0.1:6653"}, "needs --ssl-cert, --ssl-key and --ssl-ca"},
		{"ssl without ca", []string{"--listen", "ssl:127.0.0.1:6653", "--ssl-cert", "c", "--ssl-key", "k"}, "needs --ssl-cert, --ssl-key and --ssl-ca"},
		{"files without ssl", []string{"--listen", "tcp:127.0.0.1:6653", "--ssl-cert", "c"}, "go with --listen ssl:"},
		{"files without listen", []string{"--ssl-ca", "ca"}, "go with --listen ssl:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServeArgs(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseServeArgs(%q) = %v, want error containing %q", tc.args, err, tc.want)
			}
		})
	}
	if _, err := parseServeArgs([]string{"--listen", "ssl:127.0.0.1:6653", "--ssl-cert", "c", "--ssl-key", "k", "--ssl-ca", "ca"}); err != nil {
		t.Fatalf("complete ssl flags: %v", err)
	}
}

// TestListenTLS serves --listen ssl: with the flags' files and checks that
// a switch with a certificate from the CA gets in and one without does not.
func TestListenTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "flowspan test CA", true)
	srv, srvKey := newCert(t, ca, caKey, "flowspan", false)
	sw, swKey := newCert(t, ca, caKey, "switch", false)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o, err := parseServeArgs([]string{"--listen", "ssl:127.0.0.1:0",
		"--ssl-cert", write("cert.pem", certPEM(srv)), "--ssl-key", write("key.pem", keyPEM(t, srvKey)),
		"--ssl-ca", write("ca.pem", certPEM(ca))})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := o.listenTLS()
	if err != nil {
		t.Fatal(err)
	}
	ctrl := ofctrl.New(ofctrl.Config{})
	defer ctrl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := ctrl.Listen(ctx, o.listen, conf)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	dial := func(withCert bool) error {
		cc := &tls.Config{RootCAs: roots, ServerName: "flowspan"}
		if withCert {
			cc.Certificates = []tls.Certificate{{Certificate: [][]byte{sw.Raw}, PrivateKey: swKey}}
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr.String(), cc)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a rejected client certificate on the first read.
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 8)
		_, err = c.Read(buf) // the controller's OpenFlow HELLO
		return err
	}
	if err := dial(true); err != nil {
		t.Errorf("switch with a certificate from the CA: %v", err)
	}
	if err := dial(false); err == nil {
		t.Errorf("switch without a certificate was accepted")
	}

	bad := *o
	bad.sslCA = write("empty.pem")
	if _, err := bad.listenTLS(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("empty CA file: %v", err)
	}
	bad = *o
	bad.sslKey = filepath.Join(dir, "missing.pem")
	if _, err := bad.listenTLS(); err == nil || !strings.Contains(err.Error(), "--ssl-key") {
		t.Errorf("missing key file: %v", err)
	}
}

func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         isCA, BasicConstraintsValid: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func certPEM(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) *pem.Block {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
}
