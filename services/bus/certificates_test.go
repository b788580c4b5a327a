package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// selfSigned makes a real certificate that expires at notAfter.
func expiringCert(t *testing.T, cn string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lastCertificateEvent is the last certificate event stored, if any.
func lastCertificateEvent(t *testing.T, b *bustest.Bus) (contract.EngineEvent, uint64) {
	t.Helper()
	m, err := b.Res.Events.GetLastMsgForSubject(context.Background(), subject.EngineEvent(contract.EventCertificate))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return contract.EngineEvent{}, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var ev contract.EngineEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev, m.Sequence
}

// A certificate 20 days from its end is warned of at 30 days, once, and
// not at 7; ten days on, at 7, once; one 5 days from its end only at 7;
// one with 60 days left not at all.
func TestWarnCertificates(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	now := time.Now()
	ca := contract.DescribeCertificate(contract.CertAgentsCA, contract.CertMade, expiringCert(t, "ca", now.Add(20*24*time.Hour)), now)
	api := contract.DescribeCertificate(contract.CertAPI, contract.CertGiven, expiringCert(t, "api", now.Add(5*24*time.Hour)), now)
	far := contract.DescribeCertificate(contract.CertAgentsListener, contract.CertMade, expiringCert(t, "far", now.Add(60*24*time.Hour)), now)

	steps := []struct {
		name  string
		certs []contract.Certificate
		at    time.Time
		want  []string // each raised warning contains one of these, in order
		days  int      // the last event's threshold
	}{
		{"20 days: the 30-day warning", []contract.Certificate{ca}, now, []string{"certificate agents-ca", "fewer than 30"}, 30},
		{"20 days again: nothing", []contract.Certificate{ca}, now.Add(time.Hour), nil, 30},
		{"6 days: the 7-day warning", []contract.Certificate{ca}, now.Add(14 * 24 * time.Hour), []string{"fewer than 7"}, 7},
		{"6 days again: nothing", []contract.Certificate{ca}, now.Add(15 * 24 * time.Hour), nil, 7},
		{"5 days: the 7-day warning alone", []contract.Certificate{api, far}, now, []string{"certificate api", "fewer than 7"}, 7},
		{"5 days again, 60 days: nothing", []contract.Certificate{api, far}, now, nil, 7},
	}
	for _, s := range steps {
		_, before := lastCertificateEvent(t, b)
		raised, err := bus.WarnCertificates(ctx, b.Res.JS, b.Res.Engine, s.certs, s.at)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		ev, after := lastCertificateEvent(t, b)
		if len(s.want) == 0 {
			if len(raised) != 0 || after != before {
				t.Fatalf("%s: raised %q (event %d → %d)", s.name, raised, before, after)
			}
			continue
		}
		if len(raised) != 1 || after == before {
			t.Fatalf("%s: raised %q, want one", s.name, raised)
		}
		for _, w := range s.want {
			if !strings.Contains(raised[0], w) || !strings.Contains(ev.Message, w) {
				t.Fatalf("%s: raised %q, event %q, want %q in both", s.name, raised[0], ev.Message, w)
			}
		}
		if ev.Kind != contract.EventCertificate || ev.WarnDays != s.days || ev.Certificate == nil || ev.Certificate.SHA256 == "" {
			t.Fatalf("%s: event %+v", s.name, ev)
		}
	}
	if _, err := bus.WarnCertificates(ctx, b.Res.JS, b.Res.Engine, []contract.Certificate{{Name: "a.b>", NotAfter: now}}, now); err == nil {
		t.Fatal("a name that is no key was taken")
	}
}

// The summary keeps what each writer put, drops what it is told to, and
// counts the seconds left when it is read.
func TestCertificatesSummary(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	now := time.Now()
	got, err := bus.LoadCertificates(ctx, b.Res.Engine, now)
	if err != nil || len(got.Certificates) != 0 {
		t.Fatalf("fresh store: %+v %v", got, err)
	}
	ca := contract.DescribeCertificate(contract.CertAgentsCA, contract.CertMade, expiringCert(t, "ca", now.Add(20*24*time.Hour)), now)
	api := contract.DescribeCertificate(contract.CertAPI, contract.CertGiven, expiringCert(t, "api", now.Add(5*24*time.Hour)), now)
	if err := bus.UpdateCertificates(ctx, b.Res.Engine, []contract.Certificate{ca}); err != nil {
		t.Fatal(err)
	}
	if err := bus.UpdateCertificates(ctx, b.Res.Engine, []contract.Certificate{api}); err != nil {
		t.Fatal(err)
	}
	later := now.Add(24 * time.Hour)
	got, err = bus.LoadCertificates(ctx, b.Res.Engine, later)
	if err != nil || len(got.Certificates) != 2 {
		t.Fatalf("two writers: %+v %v", got, err)
	}
	a, c := got.Certificates[0], got.Certificates[1]
	if a.Name != contract.CertAgentsCA || c.Name != contract.CertAPI {
		t.Fatalf("not by name: %s, %s", a.Name, c.Name)
	}
	if want := int64(19 * 24 * 3600); a.SecondsLeft < want-1 || a.SecondsLeft > want+1 {
		t.Fatalf("seconds left %d, want %d", a.SecondsLeft, want)
	}
	if a.Subject != "CN=ca" || a.DNSNames[0] != "localhost" || a.IPAddresses[0] != "10.0.0.1" || !a.IsCA || a.Source != contract.CertMade || a.Serial != "2a" {
		t.Fatalf("summary: %+v", a)
	}
	if err := bus.UpdateCertificates(ctx, b.Res.Engine, nil, contract.CertAPI); err != nil {
		t.Fatal(err)
	}
	if got, _ = bus.LoadCertificates(ctx, b.Res.Engine, now); len(got.Certificates) != 1 || got.Certificates[0].Name != contract.CertAgentsCA {
		t.Fatalf("after the drop: %+v", got)
	}
}
