package ovsdb

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

// TestTCPAndSSLEndpoints dials the in-memory server over tcp: and ssl:
// (a TLS-terminating proxy on loopback in front of it).
func TestTCPAndSSLEndpoints(t *testing.T) {
	m := newMemDB(t)
	m.addBridge("br0", vswitchd.Port{Name: "vm1"})
	backend := strings.TrimSuffix(m.Socket, "db.sock") + "backend.sock"

	cert, pool := selfSigned(t)
	for _, tc := range []struct {
		scheme string
		listen func() (net.Listener, error)
		cfg    Config
	}{
		{"tcp", func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }, Config{}},
		{"ssl", func() (net.Listener, error) {
			return tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		}, Config{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			var addr string
			p := &proxy{t: t, backend: backend, conns: map[net.Conn]struct{}{}, listen: func() (net.Listener, error) {
				ln, err := tc.listen()
				if err == nil {
					addr = ln.Addr().String()
				}
				return ln, err
			}}
			p.start()
			t.Cleanup(p.stop)
			cfg := tc.cfg
			cfg.Logger = testLogger(t)
			c, err := Dial(ctxT(t, 10*time.Second), tc.scheme+":"+addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			f, err := c.Bridge(ctxT(t, 5*time.Second), "br0")
			if err != nil || f.Ports["vm1"].Name != "vm1" {
				t.Fatalf("Bridge over %s = %+v, %v", tc.scheme, f, err)
			}
			// service hand-over over a remote connection needs an explicit
			// target (there is no run directory to derive)
			if _, err := c.TakeOver(ctxT(t, 5*time.Second), "br0", ServiceMode{}); err == nil || !strings.Contains(err.Error(), "RunDir") {
				t.Errorf("TakeOver without run dir = %v", err)
			}
			dial, err := c.TakeOver(ctxT(t, 5*time.Second), "br0", ServiceMode{Target: "ptcp:6653"})
			if err != nil || dial != "tcp:127.0.0.1:6653" {
				t.Errorf("TakeOver(ptcp) = %q, %v; want the OVSDB host", dial, err)
			}
			if err := c.Release(ctxT(t, 5*time.Second), "br0"); err != nil {
				t.Error(err)
			}
		})
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ovsdb-test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
