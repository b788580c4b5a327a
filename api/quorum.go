package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/kit"
)

// storeCheck knows whether the engine's store answers: on a NATS cluster
// that lost its quorum, no stream has a leader and every route that needs
// the store would fail one way or another (or answer from a service's
// memory what may no longer be true). It looks at most once a second;
// every request in between, and every one while it looks, takes the last
// answer: no request waits on another's probe.
type storeCheck struct {
	js    jetstream.JetStream
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	checked time.Time
	down    bool
	probing bool // one request probes; kv is its alone meanwhile

	kv jetstream.KeyValue
}

// available tells whether the store answered its last probe.
func (c *storeCheck) available(ctx context.Context) bool {
	c.mu.Lock()
	due := !c.probing && time.Since(c.checked) >= c.every
	c.probing = c.probing || due
	down := c.down
	c.mu.Unlock()
	if !due {
		return !down
	}
	// The answer is everyone's: one client's short deadline or hang-up
	// must not read as a store that is down.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := c.probe(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	// Any failed probe is a store that does not work: without a quorum a
	// server may also answer errors that say nothing of availability (a
	// cluster "not current", an internal error), and taking those for a
	// working store let requests through to answer from memory.
	if down := err != nil; down != c.down && c.log != nil {
		if down {
			c.log.Warn("the store stopped answering; routes that need it answer 503", "err", err)
		} else {
			c.log.Info("the store answers again")
		}
	}
	c.down, c.checked, c.probing = err != nil, time.Now(), false
	return !c.down
}

// probe asks JetStream for the account's usage (its meta leader answers,
// and without a quorum there is none, once it notices) and writes one small
// key, which fails at once without a quorum: reads of a bucket would still
// be answered by a replica left alone, with what may be stale.
func (c *storeCheck) probe(ctx context.Context) error {
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return err
	}
	if c.kv == nil {
		kv, err := c.js.KeyValue(ctx, bus.KVEngine)
		if err != nil {
			return err
		}
		c.kv = kv
	}
	_, err := c.kv.Put(ctx, "api-probe", []byte(time.Now().UTC().Format(time.RFC3339)))
	return err
}

// needStore answers 503 at once, saying why, while the store is down.
func (s *server) needStore(next http.Handler) http.Handler {
	if s.store == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.store.available(r.Context()) {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, kit.UnavailableMsg)
			return
		}
		next.ServeHTTP(w, r)
	})
}
