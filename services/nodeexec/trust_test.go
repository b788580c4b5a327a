package nodeexec

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func certPEM(t *testing.T, isCA bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: isCA, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// A trust bundle is CA certificates, one or more, and nothing else.
func TestParseCAs(t *testing.T) {
	ca, leaf := certPEM(t, true), certPEM(t, false)
	for _, tc := range []struct {
		name, bundle string
		n            int
		says         string
	}{
		{"one CA", ca, 1, ""},
		{"the old and the new", ca + ca, 2, ""},
		{"empty", "", 0, "no PEM certificate"},
		{"not PEM", "hello", 0, "no PEM certificate"},
		{"a key", ca + "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", 0, "EC PRIVATE KEY"},
		{"not a CA", leaf, 0, "not a CA"},
		{"garbage DER", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0, "CA bundle"},
	} {
		cas, err := ParseCAs(tc.bundle)
		if tc.says == "" && (err != nil || len(cas) != tc.n) || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("%s: %d CAs, %v; want %d, an error saying %q", tc.name, len(cas), err, tc.n, tc.says)
		}
	}
}

// The trust key is the node's alone and apart from its exec key.
func TestTrustKey(t *testing.T) {
	k := TrustKey("pw", "10.0.0.1")
	if bytes.Equal(k, Key("pw", "10.0.0.1")) || bytes.Equal(k, TrustKey("pw", "10.0.0.2")) || bytes.Equal(k, TrustKey("pw2", "10.0.0.1")) {
		t.Fatal("the trust key is another node's, another password's, or the exec key")
	}
	if _, err := Open(Key("pw", "10.0.0.1"), Seal(k, []byte("{}"))); err == nil {
		t.Fatal("a trust command opened under the exec key")
	}
}
