package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Unavailable tells whether err means the bus or its JetStream store
// cannot be reached now, rather than anything about the request: no server
// answers for a stream (no quorum, no leader yet), the connection is down,
// or the store did not answer in time. Such errors answer 503, never 500.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{
		nats.ErrNoResponders, nats.ErrTimeout, nats.ErrConnectionClosed, nats.ErrConnectionReconnecting,
		nats.ErrNoStreamResponse, jetstream.ErrNoStreamResponse, nats.ErrJetStreamNotEnabled, jetstream.ErrJetStreamNotEnabled,
		context.DeadlineExceeded,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code == 503 {
		return true // "JetStream system temporarily unavailable"
	}
	var napi *nats.APIError
	return errors.As(err, &napi) && napi.Code == 503
}

// Consumer creates or updates a durable consumer on stream, waiting out a
// cluster that is still electing the stream's leader or is briefly without
// quorum (see Retry).
func Consumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var c jetstream.Consumer
	err := Retry(ctx, func(ctx context.Context) (err error) {
		c, err = js.CreateOrUpdateConsumer(ctx, stream, cfg)
		return err
	})
	return c, err
}

// Retry runs f, each try bounded to 10s, again while it fails because the
// store is not ready (see NotYet), for up to a minute: a service started alongside
// the cluster, or while it elects leaders, waits instead of dying.
func Retry(ctx context.Context, f func(ctx context.Context) error) error {
	return retry(ctx, 10*time.Second, f)
}

// RetryLong is Retry for work one try of which may take minutes (a large
// file put into an object store): a try is bounded by ctx alone.
func RetryLong(ctx context.Context, f func(ctx context.Context) error) error {
	return retry(ctx, 0, f)
}

func retry(ctx context.Context, perTry time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if perTry > 0 {
			actx, cancel = context.WithTimeout(ctx, perTry)
		}
		err := f(actx)
		cancel()
		if err == nil || !NotYet(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
