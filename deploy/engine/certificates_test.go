package engine

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// caExpiringAt writes a CA pair, as --tls-cert takes one, that ends at
// notAfter.
func caExpiringAt(t *testing.T, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, tmpl, _, err := serverCert("test ca", notAfter, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certFile, pemCert(der), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pemKey(t, &tls.Certificate{PrivateKey: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// certEvents are the certificate events stored so far.
func certEvents(t *testing.T, b *bustest.Bus) []contract.EngineEvent {
	t.Helper()
	ctx := context.Background()
	info, err := b.Res.Events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.EngineEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := b.Res.Events.GetMsg(ctx, seq)
		if err != nil || m.Subject != subject.EngineEvent(contract.EventCertificate) {
			continue
		}
		var ev contract.EngineEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// The agents' CA given with 20 days left, and the listener's certificate
// it issues, are in the store's summary with no key, and each is warned of
// once at 30 days; a restart (a new watch, the listener issued again)
// warns of neither again, and the 7-day warning comes when it is due.
func TestCertWatchSummaryAndWarnings(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	certFile, keyFile := caExpiringAt(t, time.Now().Add(20*24*time.Hour))
	o := Options{DataDir: t.TempDir(), TLSCert: certFile, TLSKey: keyFile, Logger: quiet()}
	watch := func() *certWatch {
		certs, err := natsCerts(o, "")
		if err != nil {
			t.Fatal(err)
		}
		w := newCertWatch(o, &engineBus{res: b.Res, certs: certs}, nil)
		if err := w.check(ctx); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := watch()
	e, err := b.Res.Engine.Get(ctx, bus.KeyCertificates)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(keyFile)
	if s := string(e.Value()); strings.Contains(s, "PRIVATE") || strings.Contains(s, string(key[40:80])) {
		t.Fatalf("the summary holds key material: %s", s)
	}
	got, err := bus.LoadCertificates(ctx, b.Res.Engine, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range got.Certificates {
		names = append(names, c.Name+"/"+c.Source)
	}
	// No TLS for the API: none listed for it.
	if strings.Join(names, " ") != "agents-ca/given agents-listener/made" {
		t.Fatalf("summary %v", names)
	}
	if l := got.Certificates[1]; l.Issuer != "CN=test ca,O=deployment-engine" || !strings.Contains(strings.Join(l.IPAddresses, " "), "127.0.0.1") {
		t.Fatalf("listener %+v", l)
	}
	evs := certEvents(t, b)
	if len(evs) != 2 || evs[0].WarnDays != 30 || evs[1].WarnDays != 30 {
		t.Fatalf("events %+v", evs)
	}
	if err := w.check(ctx); err != nil {
		t.Fatal(err)
	}
	w = watch() // a restart
	if evs := certEvents(t, b); len(evs) != 2 {
		t.Fatalf("warned again after a restart: %+v", evs)
	}
	w.now = func() time.Time { return time.Now().Add(14 * 24 * time.Hour) }
	if err := w.check(ctx); err != nil {
		t.Fatal(err)
	}
	evs = certEvents(t, b)
	if len(evs) != 4 || evs[2].WarnDays != 7 || !strings.Contains(evs[2].Message, "fewer than 7") {
		t.Fatalf("events at 6 days left %+v", evs)
	}
}

// A process serving the API over TLS lists its certificate; one without
// TLS drops what an earlier start listed.
func TestCertWatchAPI(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	dir := t.TempDir()
	o := Options{DataDir: dir, TLS: TLSAuto, Logger: quiet(), Only: []string{"api"}, NATSURL: "nats://elsewhere"}
	tlsCfg, err := loadTLS(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := newCertWatch(o, &engineBus{res: b.Res}, tlsCfg).check(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := bus.LoadCertificates(ctx, b.Res.Engine, time.Now())
	if len(got.Certificates) != 1 || got.Certificates[0].Name != "api" || got.Certificates[0].Source != "made" || got.Certificates[0].SecondsLeft < 9*365*24*3600 {
		t.Fatalf("with --tls auto: %+v", got)
	}
	if evs := certEvents(t, b); len(evs) != 0 {
		t.Fatalf("a certificate far from its end warned of: %+v", evs)
	}
	o.TLS = ""
	if err := newCertWatch(o, &engineBus{res: b.Res}, nil).check(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := bus.LoadCertificates(ctx, b.Res.Engine, time.Now()); len(got.Certificates) != 0 {
		t.Fatalf("without TLS: %+v", got)
	}
}

// A listener certificate issued again for a new home is signalled, so
// that the watch writes the summary again at once.
func TestAgentCertsSignalIssue(t *testing.T) {
	c := autoCerts(t)
	<-c.issued // the first, at load
	if err := c.cover("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.issued:
		t.Fatal("a home already covered issued a certificate")
	default:
	}
	if err := c.cover("127.0.0.7"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.issued:
	default:
		t.Fatal("a certificate issued for a new home was not signalled")
	}
	if s := c.summary(time.Now()); len(s) != 2 || !strings.Contains(strings.Join(s[1].IPAddresses, " "), "127.0.0.7") {
		t.Fatalf("summary after the new home: %+v", s)
	}
}
