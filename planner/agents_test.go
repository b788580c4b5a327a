package planner

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// A deployment installs the agent where the engine listens for it at the
// config's home; where it could not listen, none; a home never tried (a
// plan of a config not stored yet) counts as one it will listen at.
func TestAgentPlanFollowsTheListener(t *testing.T) {
	cfgAt := func(home string) contract.Config {
		return contract.Config{Properties: contract.Properties{Home: home}}
	}
	var tried []string
	listen := func(home string) error {
		tried = append(tried, home)
		if home == "192.0.2.1" {
			return errors.New("listen for node agents at 192.0.2.1:4222: cannot assign requested address")
		}
		return nil
	}
	p := &Planner{log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		o: Options{Port: 50000, Agent: &AgentSpec{SHA256: "abc", Path: "/agent/abc/de-agent", NATSPort: 4222, Listen: listen, CA: "CA", Password: func(string) string { return "pw" }}}}

	if err := p.listenForAgents(cfgAt("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	a := p.agentPlanFor(cfgAt("10.0.0.1"))
	if a == nil || a.NATSURL != "nats://10.0.0.1:4222" || a.CA != "CA" || a.SHA256 != "abc" || a.URL != "http://10.0.0.1:50000/agent/abc/de-agent" {
		t.Fatalf("agent plan at a home the engine listens at: %+v", a)
	}
	if a := p.agentPlanFor(cfgAt("10.0.0.9")); a == nil || a.NATSURL != "nats://10.0.0.9:4222" {
		t.Errorf("a home never tried: %+v", a)
	}
	err := p.listenForAgents(cfgAt("192.0.2.1"))
	if err == nil {
		t.Fatal("a failed listen was not reported")
	}
	if w := agentWarning(err); w == "" || p.agentPlanFor(cfgAt("192.0.2.1")) != nil {
		t.Errorf("a home the engine cannot listen at still installs agents (warning %q)", w)
	}
	// Back at a good home: agents again.
	if err := p.listenForAgents(cfgAt("10.0.0.1")); err != nil || p.agentPlanFor(cfgAt("10.0.0.1")) == nil {
		t.Errorf("back at a good home: %v", err)
	}
	if len(tried) != 3 {
		t.Errorf("listened %v", tried)
	}

	// Agents off: no plan, no listening.
	off := &Planner{log: p.log}
	if off.listenForAgents(cfgAt("10.0.0.1")) != nil || off.agentPlanFor(cfgAt("10.0.0.1")) != nil {
		t.Error("an engine without agents plans one")
	}
}

// An engine without an agent binary to serve installs no agent, and says
// so wherever a listener it could not open is reported; it still listens,
// for the agents installed before.
func TestAgentBinaryMissing(t *testing.T) {
	missing := errors.New("no agent binary at /opt/de/de-agent")
	listened := 0
	p := &Planner{log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		o: Options{Port: 50000, Agent: &AgentSpec{Missing: missing, NATSPort: 4222, Listen: func(string) error { listened++; return nil },
			Password: func(string) string { return "pw" }}}}
	cfg := contract.Config{Properties: contract.Properties{Home: "10.0.0.1"}}
	err := p.listenForAgents(cfg)
	if !errors.Is(err, missing) || listened != 1 {
		t.Fatalf("listen: %v after %d listens", err, listened)
	}
	if w := agentWarning(err); !strings.Contains(w, "/opt/de/de-agent") || !strings.Contains(w, "install none") {
		t.Errorf("warning %q", w)
	}
	if a := p.agentPlanFor(cfg); a != nil {
		t.Errorf("a deployment installs an agent the engine cannot serve: %+v", a)
	}
}
