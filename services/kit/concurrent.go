package kit

import "github.com/nats-io/nats.go/micro"

// Concurrent runs each request of h in a goroutine of its own, at most
// limit at once (beyond that, delivery waits). micro hands an endpoint its
// requests one after another: without this one slow request, such as a
// node that does not answer, holds up every other.
func Concurrent(limit int, h micro.Handler) micro.Handler {
	sem := make(chan struct{}, max(limit, 1))
	return micro.HandlerFunc(func(req micro.Request) {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			h.Handle(req)
		}()
	})
}
