package ofctrl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testPKI returns a CA pool and a certificate signed by it, valid for
// 127.0.0.1, usable as server or client certificate.
func testPKI(t *testing.T) (*x509.CertPool, tls.Certificate, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	leaf := func(serial int64, name string) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			KeyUsage:    x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return pool, leaf(2, "controller"), leaf(3, "switch")
}

// TestListenSSLRequiresClientCert: a switch with a certificate from the CA
// is served; one without a certificate is refused.
func TestListenSSLRequiresClientCert(t *testing.T) {
	checkLeaks(t)
	pool, ctrlCert, swCert := testPKI(t)
	c := newTestController(t, Config{})
	addr, err := c.Listen(testCtx(t), "ssl:127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ctrlCert}, ClientCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	dialSwitch := func(certs []tls.Certificate) (*tls.Conn, error) {
		nc, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: pool, Certificates: certs, ServerName: "127.0.0.1"})
		if err != nil {
			return nil, err
		}
		// TLS 1.3 reports a rejected client certificate on the first read.
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := readFrame(bufioReader(nc), MaxFrame); err != nil {
			nc.Close()
			return nil, err
		}
		return nc, nil
	}
	if nc, err := dialSwitch(nil); err == nil {
		nc.Close()
		t.Fatal("switch without a client certificate was served")
	}
	nc, err := dialSwitch([]tls.Certificate{swCert})
	if err != nil {
		t.Fatalf("switch with a valid certificate: %v", err)
	}
	defer nc.Close()
	fs := &fakeSwitch{t: t, nc: nc, br: bufioReader(nc)}
	fs.write(helloMsg(1))
	fr := fs.read()
	fs.write(featuresReply(frameXID(fr), 0x55))
	if ev := waitEvent[Connected](t, c, 5*time.Second); ev.DPID != 0x55 {
		t.Fatalf("Connected %+v", ev)
	}
	if s := c.Stats(); s.HandshakeFail != 1 {
		t.Errorf("HandshakeFail = %d, want 1 (the certificate-less switch)", s.HandshakeFail)
	}
}

// TestDialSSL: the controller dials a switch's pssl: target with Config.TLS.
func TestDialSSL(t *testing.T) {
	checkLeaks(t)
	pool, ctrlCert, swCert := testPKI(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{swCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := newTestController(t, Config{TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{ctrlCert}, ServerName: "127.0.0.1"}})
	if err := c.Dial(testCtx(t), "ssl:"+ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fs := &fakeSwitch{t: t, nc: nc, br: bufioReader(nc)}
	fs.read()
	fs.write(helloMsg(1))
	fr := fs.read()
	fs.write(featuresReply(frameXID(fr), 0x66))
	if ev := waitEvent[Connected](t, c, 5*time.Second); ev.DPID != 0x66 {
		t.Fatalf("Connected %+v", ev)
	}
}
