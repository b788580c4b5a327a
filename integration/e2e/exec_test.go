package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
)

// An exec on the bed's 4 nodes, 2 at a time, from the command line: a
// table of 4 rows with each node's exit code (one node's command exits 3
// and fails the run, not the others), the config's secret it echoes
// redacted, each batch after the one before; a command past its timeout
// leaves nothing running on its node; the audit holds each command, its
// secret taken out, with its actor.
func TestExecOnNodes(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 60))
		}
	}()
	const secret = "e2e-Exec-Secret-7310"
	cfg := config("e2e", map[string][]string{"alpha": ips(0, 1, 2, 3)})
	cfg["properties"].(map[string]any)["password"] = secret
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	odd := bed.Nodes[2]
	nodeSh(t, odd, "mkdir -p /var/lib/e2e && touch /var/lib/e2e/exec-exit3")
	defer nodeSh(t, odd, "rm -f /var/lib/e2e/exec-exit3")

	cli := exec.Command(harness.Binary(t), "exec", "alpha", "--max-in-flight", "2", "--timeout", "30", "--",
		"echo", "the password is", secret, ";", "hostname;", "[", "!", "-e", "/var/lib/e2e/exec-exit3", "]", "||", "exit", "3")
	cli.Env = append(cli.Environ(), "DE_SERVER="+e.URL(), "DE_API_TOKEN="+e.Token)
	var stdout, stderr strings.Builder
	cli.Stdout, cli.Stderr = &stdout, &stderr
	err := cli.Run()
	t.Logf("deployment-engine exec alpha --max-in-flight 2:\n%s%s", stdout.String(), stderr.String())
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1 (a node failed)", err)
	}
	rows := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(rows) != 5 || !strings.HasPrefix(rows[0], "NODE") {
		t.Fatalf("want a header and 4 rows:\n%s", stdout.String())
	}
	for _, row := range rows[1:] {
		f := strings.Fields(row)
		want := "0"
		if f[0] == odd.IP {
			want = "3"
		}
		if len(f) < 3 || f[1] != want {
			t.Errorf("row %q: exit %s, want %s", row, f[1], want)
		}
	}

	// The deployment behind it: its steps' exit codes, output and order.
	m := regexp.MustCompile(`deployment (d-[0-9a-z-]+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("the exec named no deployment: %s", stderr.String())
	}
	d, _, err := e.Client().Deployment(context.Background(), m[1])
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != contract.KindExec || d.State != contract.DeployFailed || len(d.Steps) != 4 || len(d.Batches) != 2 {
		t.Fatalf("exec deployment: kind %q, %s, %d steps, %d batches", d.Kind, d.State, len(d.Steps), len(d.Batches))
	}
	var firstEnd, secondStart time.Time
	for _, st := range d.Steps {
		if strings.Contains(st.Output, secret) || !strings.Contains(st.Output, "the password is "+contract.Redacted) {
			t.Errorf("%s's output: %q", st.Node, st.Output)
		}
		if st.Started == nil || st.Finished == nil {
			t.Fatalf("%s has no times: %+v", st.Node, st)
		}
		if slices.Contains(d.Batches[0].Nodes, st.Node) && st.Finished.After(firstEnd) {
			firstEnd = *st.Finished
		}
		if slices.Contains(d.Batches[1].Nodes, st.Node) && (secondStart.IsZero() || st.Started.Before(secondStart)) {
			secondStart = *st.Started
		}
	}
	if secondStart.Before(firstEnd) {
		t.Errorf("the second batch started at %s, before the first ended at %s", secondStart, firstEnd)
	}

	// A command past its timeout is killed on its node with all it started.
	n := bed.Nodes[0]
	code, body := e.Do("POST", "/deployment-engine/exec", map[string]any{"nodes": []string{n.IP}, "command": "sleep 601 & sleep 602", "timeout": 2})
	if code != 202 {
		t.Fatalf("exec sleep: %d %s", code, body)
	}
	var started contract.FleetExecStarted
	_ = json.Unmarshal(body, &started)
	untilNode(t, n, "the sleep running", "pgrep -c -f '^sleep 60[12]$' || true", "2")
	d = wait(t, e, started.ID, time.Minute)
	st := d.Steps[0]
	if d.State != contract.DeployFailed || st.ExitCode == nil || *st.ExitCode != 124 || !strings.Contains(st.Error, "timed out") {
		t.Fatalf("timed-out exec: %s %+v", d.State, st)
	}
	if got := nodeSh(t, n, "pgrep -a -f '^sleep 60[12]$' || true"); got != "" {
		t.Errorf("after the timeout, still on %s: %s", n.IP, got)
	}

	// The audit: each command with its actor, the secret taken out.
	code, body = e.Do("GET", "/deployment-engine/audit?action=exec", nil)
	var entries []contract.AuditEntry
	if err := json.Unmarshal(body, &entries); code != 200 || err != nil || len(entries) != 2 {
		t.Fatalf("audit: %d %s", code, body)
	}
	if strings.Contains(string(body), secret) {
		t.Errorf("the secret is in the audit: %s", body)
	}
	for _, en := range entries {
		if en.Actor != contract.ActorAdmin || en.Code != 202 || en.Deployment == "" {
			t.Errorf("audit entry: %+v", en)
		}
	}
	// Oldest first.
	if !strings.Contains(entries[0].Object, "echo the password is "+contract.Redacted) || entries[0].Deployment != m[1] || entries[1].Object != "sleep 601 & sleep 602" {
		t.Errorf("audit objects: %q, %q", entries[0].Object, entries[1].Object)
	}
}
