package planner

import (
	"errors"
	"io"
	"log/slog"
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
		o: Options{Agent: &AgentSpec{Binary: "/bin/de", NATSPort: 4222, Listen: listen, CA: "CA", Password: func(string) string { return "pw" }}}}

	if err := p.listenForAgents(cfgAt("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	a := p.agentPlanFor(cfgAt("10.0.0.1"))
	if a == nil || a.NATSURL != "nats://10.0.0.1:4222" || a.CA != "CA" || a.Binary != "/bin/de" {
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
