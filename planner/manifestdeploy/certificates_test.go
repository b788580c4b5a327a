package manifestdeploy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// The certificates generated for a manifest are in the certificates'
// summary (GET /certificates) by what they say of themselves, never their
// key; one the manifest no longer declares leaves it; a CA made to expire
// in 20 days raises the 30-day warning (event, and so webhook) once, also
// across the planner's periodic look.
func TestManifestCertificatesListedAndWarned(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	events := make(chan contract.EngineEvent, 8)
	sub, err := b.NC.Subscribe(subject.EngineEvent(contract.EventCertificate), func(m *nats.Msg) {
		var e contract.EngineEvent
		if json.Unmarshal(m.Data, &e) == nil {
			events <- e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	decl := []manifest.Variable{
		{Name: "db_ca", Type: "certificate", Options: manifest.CertOptions{IsCA: true, CommonName: "db-ca", Duration: 20}},
		{Name: "db_tls", Type: "certificate", Options: manifest.CertOptions{CA: "db_ca", CommonName: "db.internal", AlternativeNames: []string{"db.internal", "10.9.0.1"}, Duration: 365}},
		{Name: "admin_pw", Type: "password"},
	}
	kept := manifest.Vars{}
	if _, err := manifest.Generate(decl, kept); err != nil {
		t.Fatal(err)
	}
	// Another holder's entry in the summary stays.
	if err := bus.UpdateCertificates(ctx, b.Res.Engine, []contract.Certificate{{Name: contract.CertAPI, NotAfter: time.Now().AddDate(1, 0, 0)}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raised, err := publishCertificates(ctx, b.Res.JS, b.Res.Engine, kept, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(raised) != 1 || !strings.Contains(raised[0], "variable/db_ca") {
		t.Fatalf("warnings raised: %q, want the 20-day CA's", raised)
	}
	select {
	case e := <-events:
		if e.Certificate == nil || e.Certificate.Name != "variable/db_ca" || e.WarnDays != 30 {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no certificate event")
	}
	certs, err := bus.LoadCertificates(ctx, b.Res.Engine, now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range certs.Certificates {
		names = append(names, c.Name)
		if c.Name == "variable/db_tls" && (c.Subject != "CN=db.internal" || !slices.Contains(c.DNSNames, "db.internal") ||
			!slices.Contains(c.IPAddresses, "10.9.0.1") || c.IsCA || c.Issuer != "CN=db-ca") {
			t.Errorf("db_tls as listed: %+v", c)
		}
	}
	if !slices.Equal(names, []string{"api", "variable/db_ca", "variable/db_tls"}) {
		t.Fatalf("listed %v", names)
	}
	raw, _ := json.Marshal(certs)
	for _, n := range []string{"db_ca", "db_tls"} {
		key := kept[n].(map[string]any)["private_key"].(string)
		if strings.Contains(string(raw), strings.TrimSpace(strings.Split(key, "\n")[1])) {
			t.Errorf("%s's key is in the summary", n)
		}
	}

	// The planner's periodic look does not warn again.
	if err := warnVariables(ctx, b.Res.JS, b.Res.Engine, now.Add(time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	// Nor does a deploy that keeps the same CA; dropping db_tls takes it
	// out of the summary.
	delete(kept, "db_tls")
	if raised, err := publishCertificates(ctx, b.Res.JS, b.Res.Engine, kept, now); err != nil || len(raised) != 0 {
		t.Fatalf("the same CA again: %q %v", raised, err)
	}
	select {
	case e := <-events:
		t.Fatalf("warned again: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	certs, _ = bus.LoadCertificates(ctx, b.Res.Engine, now)
	if len(certs.Certificates) != 2 || certs.Certificates[1].Name != "variable/db_ca" {
		t.Fatalf("after db_tls was dropped: %+v", certs.Certificates)
	}
	// Within 7 days, the CA is warned of again, at that threshold.
	if err := warnVariables(ctx, b.Res.JS, b.Res.Engine, now.Add(14*24*time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Certificate == nil || e.Certificate.Name != "variable/db_ca" || e.WarnDays != 7 {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no 7-day warning")
	}
}
