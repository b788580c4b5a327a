package manifestdeploy

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// CertPrefix begins the name, in the certificates' summary (GET
// /certificates), of a certificate variable the engine generated for the
// manifest: variable/<name>.
const CertPrefix = "variable/"

// variableCertificates describes each generated certificate variable of
// kept: what its certificate says of itself, never its key.
func variableCertificates(kept manifest.Vars, now time.Time) []contract.Certificate {
	var out []contract.Certificate
	for _, n := range contract.SortedKeys(kept) {
		m, ok := kept[n].(map[string]any)
		if !ok {
			continue
		}
		p, _ := m["certificate"].(string)
		block, _ := pem.Decode([]byte(p))
		if block == nil {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		out = append(out, contract.DescribeCertificate(CertPrefix+n, contract.CertMade, c, now))
	}
	return out
}

// publishCertificates puts the manifest's certificates in the summary in
// place of those of the last deploy, and raises the warnings due.
func publishCertificates(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, kept manifest.Vars, now time.Time) ([]string, error) {
	certs := variableCertificates(kept, now)
	if err := bus.ReplaceCertificates(ctx, kv, CertPrefix, certs); err != nil {
		return nil, err
	}
	if js == nil {
		return nil, nil
	}
	return bus.WarnCertificates(ctx, js, kv, certs, now)
}

// WatchCertificates raises, every interval until ctx ends, the warnings
// due for the manifest's certificates in the summary: the engine's own
// are its certificate watch's, these the planner's, since a cluster's
// store holds them.
func WatchCertificates(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, log *slog.Logger, every time.Duration) {
	for {
		if err := warnVariables(ctx, js, kv, time.Now(), log); err != nil && ctx.Err() == nil {
			log.Warn("the manifest's certificates' warnings", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func warnVariables(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, now time.Time, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	have, err := bus.LoadCertificates(ctx, kv, now)
	if err != nil {
		return err
	}
	var certs []contract.Certificate
	for _, c := range have.Certificates {
		if strings.HasPrefix(c.Name, CertPrefix) {
			certs = append(certs, c)
		}
	}
	raised, err := bus.WarnCertificates(ctx, js, kv, certs, now)
	for _, msg := range raised {
		log.Warn(msg)
	}
	return err
}
