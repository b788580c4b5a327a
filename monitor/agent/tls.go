package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/nats-io/nats.go"
)

// pinnedTLS connects over TLS trusting the engine's certificate alone,
// when the config carries one.
func pinnedTLS(caPEM string) (nats.Option, error) {
	if caPEM == "" {
		return func(*nats.Options) error { return nil }, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("agent: the config's ca holds no PEM certificate")
	}
	return nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}
