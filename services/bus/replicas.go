package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeclareOption changes how Declare creates the streams and buckets.
type DeclareOption func(*declareOptions)

type declareOptions struct {
	replicas int
	log      *slog.Logger
}

// WithLogger logs the waits of a Declare for a cluster not ready yet.
func WithLogger(l *slog.Logger) DeclareOption {
	return func(o *declareOptions) { o.log = l }
}

// WithReplicas keeps every stream and bucket on n servers (0: the
// default, see DefaultReplicas).
func WithReplicas(n int) DeclareOption {
	return func(o *declareOptions) { o.replicas = n }
}

// ClusterSize is the number of servers of the NATS cluster nc is connected
// to, as its servers announce them (1 for a server on its own, such as the
// embedded one).
func ClusterSize(nc *nats.Conn) int {
	if nc.ConnectedClusterName() == "" {
		return 1
	}
	// The pool holds the URLs given and those the cluster announced; the
	// same server may be named twice (localhost and 127.0.0.1), so count
	// ports per host name only once by port.
	seen := map[string]bool{}
	for _, s := range nc.Servers() {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		seen[u.Port()+"@"+canonHost(u.Hostname())] = true
	}
	return max(1, len(seen))
}

func canonHost(h string) string {
	switch h {
	case "localhost", "::1", "127.0.0.1":
		return "loopback"
	}
	return h
}

// DefaultReplicas is 3 on a cluster of 3 servers or more, else 1.
func DefaultReplicas(nc *nats.Conn) int {
	if ClusterSize(nc) >= 3 {
		return 3
	}
	return 1
}

// replicas decides the replica count of the streams: the one asked for, or
// the default; more than one only on a cluster large enough.
func (o declareOptions) resolve(nc *nats.Conn) (int, error) {
	n := o.replicas
	if n < 0 || n > 5 {
		return 0, fmt.Errorf("bus: --replicas %d: JetStream keeps 1 to 5 replicas", n)
	}
	if n == 0 {
		return DefaultReplicas(nc), nil
	}
	if size := ClusterSize(nc); n > size {
		return 0, fmt.Errorf("bus: --replicas %d asks for more servers than the NATS cluster has (%d): start the engine against a cluster of %d or more, or lower --replicas", n, size, n)
	}
	return n, nil
}

// raised is the replica count to declare stream name with: want, or more
// when the stream already has more. A stream is never lowered by a start:
// one process started with the wrong count must not weaken what the others
// rely on.
func raised(ctx context.Context, js jetstream.JetStream, name string, want int) (int, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return want, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", name, err)
	}
	return max(want, s.CachedInfo().Config.Replicas), nil
}
