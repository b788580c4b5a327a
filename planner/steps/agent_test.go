package steps

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// The agent's monit check finds and stops the agent by its binary's path,
// anchored: a shell whose command line only mentions the agent (an
// operator's script, a reset) is neither taken for it nor killed with it.
func TestAgentCheckAnchored(t *testing.T) {
	in := Builder{Config: contract.Config{Properties: contract.Properties{Home: "10.0.0.1"}}, Agent: &Agent{NATSURL: "nats://10.0.0.1:4222", Binary: "/bin/de", Password: func(string) string { return "pw" }}}
	var monit string
	for _, f := range agentStep(in, "10.0.0.2").Spec.Files {
		if f.Path == "/etc/monit/conf.d/de-agent" {
			monit = string(f.Content)
		}
	}
	for _, want := range []string{`matching "^/usr/local/bin/deployment-engine agent"`, `pkill -f '^/usr/local/bin/deployment-engine agent'`} {
		if !strings.Contains(monit, want) {
			t.Errorf("the agent's monit check lacks %s:\n%s", want, monit)
		}
	}
}
