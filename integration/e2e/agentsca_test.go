package e2e

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// heartbeats hears one node's heartbeats as the engine does, on its
// subject, through a connection of that node's agent user (which may
// subscribe to its own node's subjects), and keeps the longest silence.
type heartbeats struct {
	mu      sync.Mutex
	last    time.Time
	longest time.Duration
}

func hearBeats(t *testing.T, e *harness.Engine, natsURL, ip string) *heartbeats {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(e.Data, "agent-secret"))
	if err != nil {
		t.Fatal(err)
	}
	// Whichever CA the listener's certificate is from: the auto pair
	// before the rotation, the agents' own after.
	roots := func() (*x509.CertPool, error) {
		pool := x509.NewCertPool()
		for _, f := range []string{"tls/cert.pem", "tls/agents-ca.pem"} {
			if b, err := os.ReadFile(filepath.Join(e.Data, f)); err == nil {
				pool.AppendCertsFromPEM(b)
			}
		}
		return pool, nil
	}
	nc, err := nats.Connect(natsURL, nats.UserInfo(bus.AgentUser(ip), bus.AgentPassword([]byte(strings.TrimSpace(string(secret))), ip)),
		nats.ClientTLSConfig(nil, roots), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h := &heartbeats{}
	if _, err := nc.Subscribe(subject.Node(ip, subject.VerbHeartbeat), func(*nats.Msg) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.last.IsZero() {
			h.longest = max(h.longest, time.Since(h.last))
		}
		h.last = time.Now()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return h
}

// state is the last heartbeat's time and the longest silence so far, the
// one running now included.
func (h *heartbeats) state() (time.Time, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last.IsZero() {
		return h.last, 0
	}
	return h.last, max(h.longest, time.Since(h.last))
}

// The agents' CA rotates under four nodes running alpha: every agent
// keeps reporting (no silence over 10 s), no agent and no instance
// restarts, and each agent's config trusts the new CA alone. An agent
// killed afterwards comes back under monit and reaches the engine
// verifying the new CA, and a deployment afterwards succeeds.
func TestAgentsCARotation(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--catalog", catalogDir(t), "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 60))
		}
	}()
	n := ips(0, 1, 2, 3)
	storeE2E(t, e, map[string][]string{"alpha": n})
	if d := wait(t, e, deploy(t, e), 5*time.Minute); d.State != contract.DeploySucceeded {
		t.Fatalf("deployment: %s\n%s", d.State, failures(d))
	}
	established := fmt.Sprintf("ss -Htn state established dst %s:%d | wc -l", bed.Home, natsPort)
	pids := map[string]string{}
	procs := `echo "$(cat /run/e2e-alpha.pid) $(pgrep -f '^/usr/local/bin/de-agen[t] ')"`
	natsURL := fmt.Sprintf("nats://%s:%d", bed.Home, natsPort)
	var beats []*heartbeats
	for i, node := range bed.Nodes {
		untilNode(t, node, "the agent is connected", established, "1")
		pids[node.IP] = nodeSh(t, node, procs)
		beats = append(beats, hearBeats(t, e, natsURL, n[i]))
	}
	for i, h := range beats {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			if last, _ := h.state(); !last.IsZero() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no heartbeat from %s within 30 s", n[i])
			}
		}
	}

	code, body := e.Do("POST", "/deployment-engine/certificates/agents-ca/rotate", nil)
	var got contract.CertificateRotated
	if code != 202 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("rotate the agents' CA: %d %s", code, body)
	}
	t.Logf("rotated: %s", body)
	if !slices.Equal(got.AgentsUpdated, n) || len(got.AgentsMissed) != 0 {
		t.Fatalf("agents updated %v, missed %+v; want all of %v", got.AgentsUpdated, got.AgentsMissed, n)
	}
	caPEM, err := os.ReadFile(filepath.Join(e.Data, "tls", "agents-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// Three heartbeat intervals on, every agent still reports, over the
	// connection it had, and neither it nor alpha restarted.
	time.Sleep(15 * time.Second)
	for i, node := range bed.Nodes {
		_, longest := beats[i].state()
		t.Logf("%s: longest silence around the rotation %s", n[i], longest.Round(time.Millisecond))
		if longest > 10*time.Second {
			t.Errorf("%s: its agent was silent for %s", n[i], longest)
		}
		if now := nodeSh(t, node, procs); now != pids[node.IP] {
			t.Errorf("%s: alpha and agent PIDs %q, %q before the rotation", n[i], now, pids[node.IP])
		}
		var cfg contract.AgentConfig
		if err := json.Unmarshal([]byte(nodeSh(t, node, "cat /var/lib/deployment-engine/agent.json")), &cfg); err != nil || cfg.CA != string(caPEM) {
			t.Errorf("%s: the agent's config trusts %q (%v), want the new CA alone", n[i], cfg.CA, err)
		}
	}

	// An agent killed comes back under monit and reaches the engine
	// again: its new connection verifies the listener with the new CA.
	node := bed.Nodes[0]
	nodeSh(t, node, "pkill -KILL -f '^/usr/local/bin/de-agen[t] ' && echo killed")
	killed := time.Now()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if last, _ := beats[0].state(); last.After(killed.Add(time.Second)) {
			break
		}
		if time.Now().After(deadline) {
			out, _ := node.Exec(t.Context(), "tail -5 /var/log/de-agent.log")
			t.Fatalf("the agent killed on %s did not report again within 90 s:\n%s", n[0], out)
		}
	}
	t.Logf("the agent killed on %s reported again %s later", n[0], time.Since(killed).Round(time.Second))
	pids[node.IP] = nodeSh(t, node, procs)

	code, body = e.Do("GET", "/deployment-engine/certificates", nil)
	var certs contract.Certificates
	if code != 200 || json.Unmarshal(body, &certs) != nil {
		t.Fatalf("certificates: %d %s", code, body)
	}
	if i := slices.IndexFunc(certs.Certificates, func(c contract.Certificate) bool { return c.Name == contract.CertAgentsCA }); i < 0 ||
		certs.Certificates[i].Serial != got.Certificate.Serial {
		t.Errorf("the agents' CA listed: %s", body)
	}
	// The next deployment writes each agent's config as the agent wrote
	// it: the agent, trusting the new CA already, does not restart.
	if d := wait(t, e, deploy(t, e), 5*time.Minute); d.State != contract.DeploySucceeded {
		t.Fatalf("deployment after the rotation: %s\n%s", d.State, failures(d))
	}
	time.Sleep(6 * time.Second) // an agent checks its config every interval
	for i, node := range bed.Nodes {
		untilNode(t, node, "the agent is connected after the deployment", established, "1")
		if now := nodeSh(t, node, procs); now != pids[node.IP] {
			t.Errorf("%s: alpha and agent PIDs %q after the deployment, %q before", n[i], now, pids[node.IP])
		}
	}
}
