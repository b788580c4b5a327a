package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// quietEnd ends the replay of a finished deployment whose events have aged
// out of the stream: it would never send "finished".
const quietEnd = 3 * time.Second

// deploymentEvents streams a deployment as server-sent events: first its
// state ("deployment": every step, or with ?steps= its summary and a page
// of steps, as GET /deployments/{id} answers them), then every event from its start ("started", "step",
// "log", "finished"), replayed from the bus's event stream so that a late
// follower misses nothing. The stream ends after "finished".
func (s *server) deploymentEvents(w http.ResponseWriter, r *http.Request) {
	// ?steps=0 (or a page) opens the stream with the deployment's summary.
	in, ok := deployGetOf(w, r)
	if !ok {
		return
	}
	id := in.ID
	rep, ok := s.request(w, r, subject.DeployGet(), in)
	if !ok {
		return
	}
	if rep.Code != http.StatusOK {
		writeReply(w, rep)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming not supported")
		return
	}
	js, err := jetstream.New(s.o.NC)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the engine's bus is unavailable")
		return
	}
	ctx := r.Context()
	cons, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject.DeployEvents(id), subject.Logs(id)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		s.log.Error("follow deployment", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot follow the deployment's events")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	writeEvent(w, "deployment", rep.Body)
	flusher.Flush()

	var snap contract.Deployment
	_ = json.Unmarshal(rep.Body, &snap)
	msgs, err := cons.Messages()
	if err != nil {
		return
	}
	defer msgs.Stop()
	go func() { <-ctx.Done(); msgs.Stop() }()
	relayEvents(ctx, w, flusher, feed(ctx, msgs), contract.Final(snap.State))
}

// fed is one read of a deployment's events.
type fed struct {
	m   jetstream.Msg
	err error
}

// feed hands msgs' reads to a channel, so that the relay can wait on them
// beside its timers; it stops after a failed read or when ctx ends.
func feed(ctx context.Context, msgs jetstream.MessagesContext) <-chan fed {
	ch := make(chan fed)
	go func() {
		for {
			m, err := msgs.Next()
			select {
			case ch <- fed{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// relayEvents writes each event fed as a server-sent event, with a comment
// every 15 s to keep the connection, until "finished", a failed read, the
// client's end or, for a deployment already final, quietEnd of silence.
func relayEvents(ctx context.Context, w io.Writer, flusher http.Flusher, ch <-chan fed, final bool) {
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	idle := time.NewTimer(quietEnd)
	defer idle.Stop()
	if !final {
		idle.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			return
		case <-keepalive.C:
			_, _ = fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
		case n := <-ch:
			if n.err != nil {
				return
			}
			if final {
				idle.Reset(quietEnd)
			}
			kind := eventKind(n.m.Subject())
			writeEvent(w, kind, n.m.Data())
			flusher.Flush()
			if kind == string(subject.DeployFinished) {
				return
			}
		}
	}
}

// eventKind names a deployment's event in the stream: a log line is
// "log", a deployment event its kind (started, step, batch, finished).
func eventKind(subj string) string {
	ev, err := subject.ParseEvent(subj)
	if err == nil && ev.Family == subject.FamilyLog {
		return "log"
	}
	return ev.Kind
}

func writeEvent(w io.Writer, kind string, data []byte) {
	// Event data is compact JSON: it never holds a raw newline.
	_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, data)
}
