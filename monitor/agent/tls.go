package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// trustedCAs are the certificates the agent verifies the engine's NATS
// listener with. The client reads them at each TLS handshake (its first
// and every reconnect), so that the engine's trust command swaps them
// without dropping the connection; the verification itself is the
// standard library's, server name included (the host of the config's
// nats URL).
type trustedCAs struct {
	pool atomic.Pointer[x509.CertPool]
}

// pinnedTLS connects over TLS trusting the engine's certificates alone,
// when the config carries them; it returns nil trust otherwise (plain
// NATS, nothing to trust).
func pinnedTLS(caPEM string) (nats.Option, *trustedCAs, error) {
	if caPEM == "" {
		return func(*nats.Options) error { return nil }, nil, nil
	}
	t := &trustedCAs{}
	if err := t.set(caPEM); err != nil {
		return nil, nil, errors.New("agent: the config's ca holds no PEM certificate")
	}
	return func(o *nats.Options) error {
		o.Secure = true
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		o.RootCAsCB = t.roots
		return nil
	}, t, nil
}

// set trusts the certificates of caPEM from the next handshake on.
func (t *trustedCAs) set(caPEM string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return errors.New("no PEM certificate")
	}
	t.pool.Store(pool)
	return nil
}

func (t *trustedCAs) roots() (*x509.CertPool, error) { return t.pool.Load(), nil }
