package installer

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodeexec/execd"
)

// transport is how a test's commands reach the node: over SSH, or through
// a real agent executor (package nodeexec) running them in the test
// node's namespace with the shell sshd runs them with.
type transport struct {
	name  string
	agent bool
}

var transports = []transport{{"ssh", false}, {"agent", true}}

// forTransports runs test once over each transport.
func forTransports(t *testing.T, test func(*testing.T, transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { test(t, tr) })
	}
}

// agentEnv is what a test of the agent transport holds of its agent.
type agentEnv struct {
	nc *nats.Conn
	ex *execd.Executor
	// mixed: the test runs commands over SSH too (an orphan it makes, a
	// fallback it causes).
	mixed bool
}

const testVersion = "v-test 0123456789ab"

func agentPassword(ip string) string { return "agent-password-of-" + ip }

// env starts the test's installer over tr; with the agent transport, it
// checks when the test ends that the steps went through the agent.
func (tr transport) env(t testing.TB, opts ...func(*Options)) *testEnv {
	t.Helper()
	if !tr.agent {
		return newEnv(t, opts...)
	}
	e := newEnv(t, append(opts, func(o *Options) {
		o.Version, o.AgentPassword, o.AgentLiveness = testVersion, agentPassword, 2*nodeexec.Beat
	})...)
	// The config's secrets were given for the node: over SSH, a store
	// without the record trusts the nodes whose host key it pinned, and
	// through an agent nothing is pinned.
	hosts := contract.SecretHosts{Hosts: map[string][]string{}}
	for _, name := range contract.OfferedSecrets {
		hosts.Hosts[name] = []string{nodeIP}
	}
	if err := bus.StoreSecretHosts(context.Background(), e.res.Engine, hosts); err != nil {
		t.Fatal(err)
	}
	nc, err := e.srv.Connect("agent")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := execd.Serve(nc, nodeIP, nodeexec.Key(agentPassword(nodeIP), nodeIP), execd.Options{
		Version: testVersion, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// root's login shell, in the node's mount namespace.
		Shell: []string{"nsenter", "-t", strconv.Itoa(sshd.Process.Pid), "-m", "--", "/bin/bash"},
		Bash:  []string{"nsenter", "-t", strconv.Itoa(sshd.Process.Pid), "-m", "--", "/bin/bash"}, Root: nodePath("/")})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e.agent = &agentEnv{nc: nc, ex: ex}
	t.Cleanup(func() {
		ex.Stop()
		nc.Close()
		runs, ssh := testutil.ToFloat64(e.ins.metrics.agentRuns), testutil.ToFloat64(e.ins.metrics.sshSessions)
		if runs == 0 {
			t.Error("no command went through the agent")
		}
		if ssh > 0 && !e.agent.mixed {
			t.Errorf("%.0f commands went over SSH with a working agent", ssh)
		}
	})
	return e
}
