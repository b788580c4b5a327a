package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// certCheckEvery is how often a process looks again at the certificates
// it holds, for their warnings at 30 and 7 days.
const certCheckEvery = time.Hour

// certSource is what some certificates a process holds say of themselves
// at now.
type certSource func(now time.Time) []contract.Certificate

// certWatch keeps the store's summary of the certificates this process
// holds (bus.KeyCertificates), at its start, whenever one is issued and
// every certCheckEvery, and raises their expiry warnings: the API answers
// GET /certificates and de_certificate_expiry_seconds from that summary,
// whichever process it runs in.
type certWatch struct {
	res     *bus.Resources
	log     *slog.Logger
	now     func() time.Time
	sources []certSource
	drop    []string // the names this process stopped serving
	// reissued and apiIssued say a certificate was issued again.
	reissued, apiIssued <-chan struct{}
}

// newCertWatch is the watch of what this process holds: the agents'
// certificates where it runs the embedded NATS, the API's where it serves
// the API. One it would hold but does not (TLS off, no agents) is dropped
// from the summary; with an external NATS the agents' are another
// process's to keep.
func newCertWatch(o Options, b *engineBus, api *apiCert) *certWatch {
	w := &certWatch{res: b.res, log: o.Logger.With("service", "certificates"), now: time.Now}
	switch {
	case b.certs != nil:
		w.sources = append(w.sources, b.certs.summary)
		w.reissued = b.certs.issued
	case o.NATSURL == "":
		w.drop = append(w.drop, contract.CertAgentsCA, contract.CertAgentsListener)
	}
	if o.runs("api") {
		if api != nil {
			w.sources = append(w.sources, api.summary)
			w.apiIssued = api.issued
		} else {
			w.drop = append(w.drop, contract.CertAPI)
		}
	}
	return w
}

// run checks at once, then whenever a certificate is issued and every
// interval, until ctx ends.
func (w *certWatch) run(ctx context.Context, every time.Duration) {
	for {
		wait := every
		if err := w.check(ctx); err != nil && ctx.Err() == nil {
			// A store still electing its leaders (a cold start) is asked
			// again soon, not in an hour.
			w.log.Warn("the certificates' summary and warnings", "err", err)
			wait = min(every, time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-w.reissued:
		case <-w.apiIssued:
		}
	}
}

// check writes the summary of the certificates held and raises the
// warnings due.
func (w *certWatch) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := w.now()
	var certs []contract.Certificate
	for _, s := range w.sources {
		certs = append(certs, s(now)...)
	}
	if len(certs) == 0 && len(w.drop) == 0 {
		return nil
	}
	if err := bus.UpdateCertificates(ctx, w.res.Engine, certs, w.drop...); err != nil {
		return err
	}
	raised, err := bus.WarnCertificates(ctx, w.res.JS, w.res.Engine, certs, now)
	for _, msg := range raised {
		w.log.Warn(msg)
	}
	return err
}

// summary is what the agents' certificates say of themselves: the CA they
// pin and the listener's certificate it issued, or the pair of --tls-cert
// the listener presents as it is (agents pin it itself).
func (c *agentCerts) summary(now time.Time) []contract.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	src := contract.CertMade
	if c.given {
		src = contract.CertGiven
	}
	if c.fixed != nil {
		leaf, err := leafOf(*c.fixed)
		if err != nil {
			return nil
		}
		return []contract.Certificate{contract.DescribeCertificate(contract.CertAgentsListener, src, leaf, now)}
	}
	return []contract.Certificate{
		contract.DescribeCertificate(contract.CertAgentsCA, src, c.ca, now),
		contract.DescribeCertificate(contract.CertAgentsListener, contract.CertMade, c.cert.Leaf, now),
	}
}

func leafOf(pair tls.Certificate) (*x509.Certificate, error) {
	if pair.Leaf != nil {
		return pair.Leaf, nil
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

// startCertWatch runs w until ctx ends or the engine stops.
func startCertWatch(ctx context.Context, w *certWatch, stops *[]func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, certCheckEvery)
	}()
	*stops = append(*stops, func() { cancel(); <-done })
}
