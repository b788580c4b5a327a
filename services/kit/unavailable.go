package kit

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// UnavailableMsg is what a command answers, with 503, when the store it
// needs does not answer.
const UnavailableMsg = "the engine's store is unavailable (its NATS servers have no quorum or are unreachable); try again once they are back"

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
