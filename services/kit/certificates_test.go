package kit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// de_certificate_expiry_seconds is each stored certificate's seconds left
// at the scrape, by name; nothing while none is stored.
func TestCertificateCollector(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	end := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewCertificateCollector(b.Res.Engine).(*certCollector)
	c.now = func() time.Time { return end.Add(-1000 * time.Second) }
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("no certificate stored: %d series", n)
	}
	certs := []contract.Certificate{
		{Name: contract.CertAgentsCA, NotAfter: end},
		{Name: contract.CertAPI, NotAfter: end.Add(-2000 * time.Second)},
	}
	if err := bus.UpdateCertificates(context.Background(), b.Res.Engine, certs); err != nil {
		t.Fatal(err)
	}
	want := `# HELP de_certificate_expiry_seconds Seconds until a certificate the engine made or serves expires (negative once expired).
# TYPE de_certificate_expiry_seconds gauge
de_certificate_expiry_seconds{name="agents-ca"} 1000
de_certificate_expiry_seconds{name="api"} -1000
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// Counted at each scrape, not when stored.
	c.now = func() time.Time { return end.Add(-500 * time.Second) }
	if err := testutil.CollectAndCompare(c, strings.NewReader(strings.ReplaceAll(strings.ReplaceAll(want, "} 1000", "} 500"), "} -1000", "} -1500"))); err != nil {
		t.Fatal(err)
	}
}
