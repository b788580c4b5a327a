package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/kit"
)

// errReconnected is a request whose connection to the bus was made anew
// while it waited: its reply, if any, was lost with the old connection.
var errReconnected = errors.New("the connection to the bus was re-established while the request waited")

// requestOnce sends a command and waits for its reply, but gives up at once
// when the connection to the bus reconnects meanwhile (a NATS server of a
// cluster went away): the reply would never come, and the request would
// otherwise hang to its timeout. A read (GET) is sent again, once, on the
// new connection; anything else answers 503, since it may have run.
func (s *server) requestOnce(ctx context.Context, r *http.Request, subj string, body any) (kit.Reply, error) {
	for try := 0; ; try++ {
		rep, err := s.requestWatched(ctx, subj, body)
		if errors.Is(err, errReconnected) && r.Method == http.MethodGet && try == 0 {
			continue
		}
		return rep, err
	}
}

func (s *server) requestWatched(ctx context.Context, subj string, body any) (kit.Reply, error) {
	nc := s.o.NC
	before := nc.Stats().Reconnects
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		rep kit.Reply
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := kit.Request(ctx, nc, subj, body)
		done <- result{rep, err}
	}()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case res := <-done:
			return res.rep, res.err
		case <-t.C:
			if nc.Stats().Reconnects != before || nc.Status() == nats.RECONNECTING {
				cancel()
				<-done
				return kit.Reply{}, errReconnected
			}
		}
	}
}
