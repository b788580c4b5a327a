package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// deployRoutes registers the deploy routes under /deployment-engine.
func (s *server) deployRoutes(r chi.Router) {
	r.Get("/deploy", s.deploy)
	r.Post("/deploy", s.deploy)
	r.Post("/scale", s.scale)
	r.Post("/takeover", s.takeover)
	s.planRoutes(r)
	r.Get("/deployments", s.listDeployments)
	r.Get("/deployments/{id}", s.getDeployment)
	r.Get("/deployments/{id}/events", streaming(s.o.Limits.StreamIdle, s.deploymentEvents))
	r.Get("/deployments/{id}/report", s.deploymentReport)
	r.Post("/deployments/{id}/cancel", s.cancelDeployment)
}

func (s *server) deploy(w http.ResponseWriter, r *http.Request) {
	in, ok := deployRequest(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployStart(), in)
}

func (s *server) scale(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployScale(), body)
}

func (s *server) listDeployments(w http.ResponseWriter, r *http.Request) {
	s.call(w, r, subject.DeployList(), nil)
}

func deploymentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if len(id) > 64 || !subject.ValidToken(id) || !strings.HasPrefix(id, "d-") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no deployment %q", contract.Clip(id)))
		return "", false
	}
	return id, true
}

func (s *server) getDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := deploymentID(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployGet(), contract.DeployGet{ID: id})
}

// cancelDeployment ends a running deployment: 202 with the deployment as
// it ended, 404 for an unknown id, 409 when it has already ended.
func (s *server) cancelDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := deploymentID(w, r)
	if !ok {
		return
	}
	s.call(w, r, subject.DeployCancel(), contract.DeployCancel{V: contract.Version, ID: id})
}

// deploymentEvents streams a deployment as server-sent events: first its
// state ("deployment"), then every event from its start ("started", "step",
// "log", "finished"), replayed from the bus's event stream so that a late
// follower misses nothing. The stream ends after "finished".
func (s *server) deploymentEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := deploymentID(w, r)
	if !ok {
		return
	}
	rep, ok := s.request(w, r, subject.DeployGet(), contract.DeployGet{ID: id})
	if !ok {
		return
	}
	if rep.Code != http.StatusOK {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(rep.Code)
		_, _ = w.Write(rep.Body)
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
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	// A finished deployment whose events have aged out of the stream
	// would never send "finished": end the replay when it goes quiet.
	final := contract.Final(snap.State)
	idle := time.NewTimer(3 * time.Second)
	defer idle.Stop()
	if !final {
		idle.Stop()
	}
	type next struct {
		m   jetstream.Msg
		err error
	}
	ch := make(chan next)
	go func() {
		for {
			m, err := msgs.Next()
			select {
			case ch <- next{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
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
				idle.Reset(3 * time.Second)
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
// "log", a deployment event its kind (started, step, finished).
func eventKind(subj string) string {
	ev, err := subject.ParseEvent(subj)
	if err == nil && ev.Family == subject.FamilyLog {
		return "log"
	}
	return ev.Kind
}

func writeEvent(w http.ResponseWriter, kind string, data []byte) {
	// Event data is compact JSON: it never holds a raw newline.
	_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, data)
}
