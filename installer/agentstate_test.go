package installer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

// A node whose agent failed a command goes over SSH for agentBadFor,
// asking no hello until its ask time; asked then, the same agent (its
// start unchanged) stays out of use, one started since (monit started it
// again) is trusted at once, and an agent that says nothing of its start
// stays out for the whole while.
func TestAgentStartedAgainIsTrusted(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	const ip = "10.9.9.9"
	var started atomic.Value
	started.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var hellos atomic.Int32
	sub, err := b.NC.Subscribe(subject.Node(ip, subject.VerbHello), func(m *nats.Msg) {
		hellos.Add(1)
		out, _ := json.Marshal(nodeexec.Hello{V: 1, Version: "v1", MaxStdin: 1024, Started: started.Load().(time.Time)})
		_ = m.Respond(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	a := &agents{nc: b.NC, version: "v1", password: func(string) string { return "pw" }, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		hello: 2 * time.Second, fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"reason"}), known: map[string]agentState{}}
	ctx := context.Background()
	if _, ok := a.state(ctx, ip); !ok {
		t.Fatal("a working agent is not used")
	}
	a.bad(ip, "lost", errors.New("lost"))
	asked := hellos.Load()
	if _, ok := a.state(ctx, ip); ok || hellos.Load() != asked {
		t.Fatalf("just after its failure: used %v, asked %d more hellos", ok, hellos.Load()-asked)
	}
	askNow := func() {
		a.mu.Lock()
		st := a.known[ip]
		st.ask = time.Now().Add(-time.Second)
		a.known[ip] = st
		a.mu.Unlock()
	}
	askNow()
	if _, ok := a.state(ctx, ip); ok || hellos.Load() != asked+1 {
		t.Fatalf("the same agent, asked again: used %v, %d hellos", ok, hellos.Load()-asked)
	}
	if st := a.known[ip]; st.ask.Before(time.Now()) || st.until.Before(time.Now().Add(agentBadFor-10*time.Second)) {
		t.Errorf("after asking the same agent: %+v", st)
	}
	started.Store(time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC))
	askNow()
	if _, ok := a.state(ctx, ip); !ok {
		t.Fatal("an agent started since its failure is not used")
	}

	// An agent that says nothing of its start: out for the whole while.
	started.Store(time.Time{})
	a.known = map[string]agentState{}
	if _, ok := a.state(ctx, ip); !ok {
		t.Fatal("a working agent of no start is not used")
	}
	a.bad(ip, "lost", errors.New("lost"))
	askNow()
	asked = hellos.Load()
	if _, ok := a.state(ctx, ip); ok || hellos.Load() != asked {
		t.Fatalf("an agent of no start after its failure: used %v, %d hellos", ok, hellos.Load()-asked)
	}
}
