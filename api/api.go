// Package api serves the engine's HTTP routes, the SPEC's to the letter, as
// commands on the bus; it holds no state.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// MaxBody is the largest request body any route reads.
const MaxBody = 1 << 20

// Options configure the API.
type Options struct {
	NC *nats.Conn
	// Token every route of /deployment-engine requires as
	// "Authorization: Bearer <token>"; it holds every role. Empty with
	// AuthNone turns auth off.
	Token    string
	AuthNone bool
	// Tokens, when set, knows the named tokens beside Token and their
	// roles.
	Tokens TokenLookup
	Logger *slog.Logger
	// Registry receives the API's metrics; /metrics serves Gatherer.
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	// MirrorDir is served read-only at /mirror/ when set.
	MirrorDir string
	// Agent, when set, is the node agent's binary, served read-only at
	// AgentPath(Agent.SHA256).
	Agent *AgentBinary
	// Releases, when set, stores BOSH releases (/deployment-engine/releases)
	// and serves their packages read-only at /releases/.
	Releases Releases
	// Compiled, when set, keeps the packages nodes compiled, at
	// /compiled/<fingerprint>/<os>.tgz: nodes fetch them, and put those
	// they compiled with their upload token.
	Compiled Compiled
	// Console is the web console's static files, served at /.
	Console fs.FS
	// Build is what GET /version answers.
	Build BuildInfo
	// Timeout bounds every bus request (default 60s: config checks contact nodes).
	Timeout time.Duration
	// Limits bound requests in flight and the server's timeouts.
	Limits Limits
	// Cluster is the cluster this API acts on: "" for the default one,
	// whose API also serves /deployment-engine/clusters; a named
	// cluster's API is served through it (Clusters.Handler).
	Cluster string
	// Clusters, when set, are the engine's clusters, listed and made at
	// /deployment-engine/clusters, each one's routes served below
	// /deployment-engine/clusters/{name}/.
	Clusters Clusters
}

type server struct {
	o   Options
	log *slog.Logger
	// self is the router New returns: the default cluster's routes below
	// /deployment-engine/clusters/default/.
	self http.Handler
	js   jetstream.JetStream
	// cfgMu keeps config changes one at a time, for their audit diffs.
	cfgMu sync.Mutex
	lim   *limiter
	// revoker ends the requests of named tokens that stop verifying.
	revoker *revoker
	// store, when the API has a bus, tells whether its store answers.
	store *storeCheck
	// openapi is the API's OpenAPI document, built once.
	openapi []byte
	// asyncapi is the AsyncAPI document of the engine's events.
	asyncapi []byte
}

// New returns the engine's HTTP handler.
func New(o Options) (http.Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Token == "" && !o.AuthNone {
		return nil, errors.New("api: no API token and auth not turned off")
	}
	if o.Registry == nil {
		r := prometheus.NewRegistry()
		o.Registry, o.Gatherer = r, r
	}
	o.Limits.defaults(o.Timeout)
	s := &server{o: o, log: o.Logger.With("service", "api"), lim: newLimiter(o.Limits)}
	s.revoker = &revoker{every: revokeCheck, identify: s.identify}
	if o.NC != nil {
		js, err := jetstream.New(o.NC)
		if err != nil {
			return nil, fmt.Errorf("api: jetstream: %w", err)
		}
		s.js = js
		s.store = &storeCheck{js: js, every: time.Second, log: s.log}
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	if s.openapi, err = openAPIDoc(s.routes(), o.Build); err != nil {
		return nil, err
	}
	if s.asyncapi, err = AsyncAPI(o.Build); err != nil {
		return nil, err
	}
	s.self = s.router(m)
	return s.self, nil
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.o.NC == nil || s.o.NC.Status() != nats.CONNECTED {
		writeError(w, http.StatusServiceUnavailable, "not connected to the bus")
		return
	}
	writeJSON(w, http.StatusOK, HealthStatus{Status: "ok"})
}

// call sends a command and writes its reply as the HTTP answer.
func (s *server) call(w http.ResponseWriter, r *http.Request, subj string, body any) {
	if rep, ok := s.request(w, r, subj, body); ok {
		writeReply(w, rep)
	}
}

// writeReply answers with a service's reply as it came: its code and JSON.
func writeReply(w http.ResponseWriter, rep kit.Reply) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(rep.Code)
	_, _ = w.Write(rep.Body)
}

// forward is a route that sends a command on subj, with no body, and
// answers its reply.
func (s *server) forward(subj string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.call(w, r, subj, nil) }
}

// request sends a command; on a bus failure it writes the answer itself
// and returns false.
func (s *server) request(w http.ResponseWriter, r *http.Request, subj string, body any) (kit.Reply, bool) {
	timeout := s.o.Timeout
	if rt, ok := routeOf(r.Context()); ok && rt.nodes {
		// A route that waits for nodes waits longer than most; the
		// server's write timeout is for quick answers.
		timeout = max(timeout, nodesTimeout)
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + 10*time.Second))
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	rep, err := s.requestOnce(ctx, r, subj, body)
	switch {
	case err != nil && errors.Is(context.Cause(r.Context()), errRevoked):
		writeError(w, http.StatusUnauthorized, errRevoked.Error())
		return rep, false
	case err != nil && r.Context().Err() != nil:
		// The request's own context ended: its client left, or the engine
		// stops and cut the wait (a client that left reads nothing).
		writeError(w, http.StatusServiceUnavailable, "the engine is stopping; the command may still take effect: look (GET /deployment-engine/deployments, /config, /audit) before sending it again")
		return rep, false
	case errors.Is(err, errReconnected):
		writeError(w, http.StatusServiceUnavailable, "the connection to the engine's bus was re-established while the command waited (a NATS server went away); check whether it took effect and try again")
		return rep, false
	case errors.Is(err, nats.ErrNoResponders):
		s.log.Error("no service answers", "subject", subj, "id", kit.RequestID(r.Context()))
		writeError(w, http.StatusServiceUnavailable, "the service behind this route is not running; check the engine's log")
		return rep, false
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		msg := "the engine did not answer in time; try again"
		if rt, ok := routeOf(r.Context()); ok && rt.audit.action != "" {
			// A change: the service may still carry it out after the wait.
			msg = "the engine did not answer in time; the command may still take effect: look (GET /deployment-engine/deployments, /config, /audit) before sending it again"
		}
		writeError(w, http.StatusGatewayTimeout, msg)
		return rep, false
	case err != nil:
		s.log.Error("bus request failed", "subject", subj, "id", kit.RequestID(r.Context()), "err", err)
		writeError(w, http.StatusServiceUnavailable, "the engine's bus is unavailable; check the engine's log")
		return rep, false
	}
	return rep, true
}

// readBody reads at most MaxBody bytes, answering 413 beyond, and 400 to
// JSON with a key twice in one object: every decoder behind the API would
// keep the last silently, while the client may have meant the first.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	return readBodyUpTo(w, r, MaxBody)
}

// readBodyUpTo is readBody for a route that takes more than MaxBody (a
// file): limit bytes at most.
func readBodyUpTo(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body larger than "+sizeText(limit))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	if err := checkJSONKeys(b); err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return nil, false
	}
	return b, true
}

// sizeText is a body limit as the 413 says it: whole MiB, or bytes.
func sizeText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, contract.ErrorBody{Error: msg})
}
