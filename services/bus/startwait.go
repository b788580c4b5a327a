package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStartTimeout bounds how long a process waits at start for a NATS
// cluster that is still forming (serve --start-timeout).
const DefaultStartTimeout = 3 * time.Minute

// The back-off between two tries of a start, and the bound of each try.
const (
	startBackoffMin = 250 * time.Millisecond
	startBackoffMax = 5 * time.Second
	startTryTimeout = 10 * time.Second
)

// JetStream error codes (the server's) that mean "not yet" at start.
const (
	errCodeNoPeers      = 10005 // no suitable peers: the meta leader does not yet count enough servers online
	errCodeNotAvailable = 10008 // temporarily unavailable: no meta leader yet
	errCodeNotLeader    = 10009 // the cluster cannot handle the request: a leader is changing
	errCodeInsufficient = 10023 // insufficient resources: storage or HA-asset limits
)

// NotYet tells whether err, met while a process starts, means the bus is
// not ready yet rather than wrong: no server reachable, none answering, no
// JetStream leader or quorum yet, or too few servers online for the
// replicas asked for ("no suitable peers", what a cluster that is still
// forming answers). "Insufficient resources" is not among them although
// the server answers it with 503: it means a storage or HA-asset limit,
// which stays until an operator acts, and waiting minutes would only hide
// it. A closed connection never comes back.
func NotYet(err error) bool {
	switch {
	case err == nil, errors.Is(err, nats.ErrConnectionClosed):
		return false
	case errors.Is(err, nats.ErrNoServers):
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return notYetCode(int(api.ErrorCode), api.Code)
	}
	var napi *nats.APIError
	if errors.As(err, &napi) {
		return notYetCode(int(napi.ErrorCode), napi.Code)
	}
	return Unavailable(err)
}

func notYetCode(code, status int) bool {
	switch code {
	case errCodeNoPeers, errCodeNotAvailable, errCodeNotLeader:
		return true
	case errCodeInsufficient:
		return false
	}
	return status == 503
}

// Await runs f, each try bounded to 10 s, until it succeeds, fails with
// an error that is not NotYet (returned as it is), or ctx ends (an error
// saying what to check, wrapping the last one); between
// tries it waits 250 ms doubling to 5 s, jittered, and logs what it waits
// for. The bound of the wait is ctx's deadline: a process that waits for
// ever at start is as bad as one that dies at once.
func Await(ctx context.Context, log *slog.Logger, what string, f func(ctx context.Context) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	backoff := startBackoffMin
	for attempt := 1; ; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, startTryTimeout)
		err := f(tctx)
		cancel()
		if err == nil || !NotYet(err) {
			return err
		}
		if ctx.Err() != nil {
			return notReady(ctx, attempt, time.Since(start), err)
		}
		// Full jitter over the upper half: processes started together
		// do not knock together.
		wait := backoff/2 + rand.N(backoff/2+1)
		left := "unbounded"
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d).Round(time.Second).String()
		}
		log.Warn("the bus is not ready yet; waiting", "for", what, "err", err, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "left", left)
		select {
		case <-ctx.Done():
			return notReady(ctx, attempt, time.Since(start), err)
		case <-time.After(wait):
		}
		backoff = min(2*backoff, startBackoffMax)
	}
}

// notReady is the error of a wait that ended before what it waited for
// was ready; what the wait was for is the caller's to say.
func notReady(ctx context.Context, attempts int, waited time.Duration, last error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("stopped while waiting for it (%d tries over %s; last: %w)", attempts, waited.Round(time.Millisecond), last)
	}
	return fmt.Errorf("never became available (%d tries over %s; last: %w): check that a majority of the NATS servers run, are routed to each other as one cluster and have JetStream enabled, or start with a longer --start-timeout",
		attempts, waited.Round(time.Millisecond), last)
}
