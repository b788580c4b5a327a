package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		body, query string
		want        contract.Target
		bad         bool
	}{
		{body: `{"name": "nats", "ip": "10.0.0.5"}`, want: contract.Target{Comp: "nats", IP: "10.0.0.5"}},
		{body: `{"Comp": "nats", "Ip": "10.0.0.5"}`, want: contract.Target{Comp: "nats", IP: "10.0.0.5"}},
		{body: `{"COMPONENT": " nats ", "IP": "10.0.0.5"}`, want: contract.Target{Comp: "nats", IP: "10.0.0.5"}},
		{body: `{"name": "all", "ip": "0.0.0.0"}`, want: contract.Target{Comp: "all", IP: "0.0.0.0"}},
		{query: "comp=web&ip=10.0.0.6", want: contract.Target{Comp: "web", IP: "10.0.0.6"}},
		{query: "name=web&ip=10.0.0.6", want: contract.Target{Comp: "web", IP: "10.0.0.6"}},
		{body: `{"name": "web", "ip": "0.0.0.0", "max_in_flight": 1}`, want: contract.Target{Comp: "web", IP: "0.0.0.0", MaxInFlight: "1"}},
		{body: `{"name": "web", "ip": "0.0.0.0", "max_in_flight": "50%"}`, want: contract.Target{Comp: "web", IP: "0.0.0.0", MaxInFlight: "50%"}},
		{body: `{"name": "web", "ip": "0.0.0.0", "max_in_flight": true}`, bad: true},
		{body: `{"name": "nats"`, bad: true},
		{body: `["nats"]`, bad: true},
		{body: `{"name": 5, "ip": "10.0.0.5"}`, bad: true},
		{body: `{"name": "nats", "ip": "10.0.0.5", "force": true}`, bad: true},
		{bad: true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/deployment-engine/hardware?"+tt.query, nil)
		got, problem := parseTarget([]byte(tt.body), r)
		if (problem != "") != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("body %q query %q: got %+v, problem %q", tt.body, tt.query, got, problem)
		}
	}
}

// Restart and stop wait for the nodes' outcome, longer than other
// commands and than the server's write timeout, and a failure comes back
// as the monitor's 502 with monit's words.
func TestControlWaitsAndAnswers502(t *testing.T) {
	nc := bustest.Start(t, bus.ServerOptions{}).NC
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := micro.AddService(nc, micro.Config{Name: "monitor", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	subj := subject.MonitorControl()
	words := "'redis' failed to stop (exit status 2) -- start-stop-daemon: matching only on non-root pidfile /run/redis/de.pid is insecure"
	if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(quiet, func(context.Context, micro.Request) (int, any, error) {
		time.Sleep(1500 * time.Millisecond) // monit at work on the node
		return 502, contract.ControlOutcome{Error: "stop failed on 1 of 1: " + words,
			Problems: []contract.Problem{{Component: "redis", IP: "10.0.0.5", Reason: words}},
			Results:  []contract.ControlResult{{Comp: "redis", Ip: "10.0.0.5", Via: "agent", Error: words}}}, nil
	}), micro.WithEndpointSubject(subj)); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{NC: nc, AuthNone: true, Logger: quiet, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(checked(t, h))
	ts.Config.WriteTimeout = 500 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	resp, body := do(t, "PUT", ts.URL+"/deployment-engine/stop", `{"name": "redis", "ip": "10.0.0.5"}`)
	var e contract.ErrorBody
	if resp.StatusCode != 502 || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "insecure") ||
		len(e.Problems) != 1 || e.Problems[0].Reason != words {
		t.Fatalf("stop that failed: %d %s", resp.StatusCode, body)
	}
}
