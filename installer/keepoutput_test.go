package installer

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// A step that keeps its output (an exec's) ends with the last lines of
// both streams in its final event, the config's secrets redacted, and its
// exit code; one that outlives its deadline is killed on the node with
// all it started and fails with exit code 124, as timeout(1) has it.
func TestKeptOutputAndTimeout(t *testing.T) { forTransports(t, testKeptOutputAndTimeout) }

func testKeptOutputAndTimeout(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)

	dep := "d-keep-" + uniq()
	r := record(t, e, dep)
	// The two streams are read apart: the line on stderr waits for stdout's.
	script := "for i in $(seq 1 40); do echo line $i; done\necho \"the secret is " + secret + "\"\nsleep 0.3\necho on stderr >&2\nexit 3\n"
	queue(t, e, contract.Step{Deployment: dep, Action: "exec", Key: "x.exec", Hash: uniq(), TimeoutS: 30, KeepOutput: true, Script: script})
	ev := r.final(t, 20*time.Second)
	if ev.State != contract.StateFailed || ev.ExitCode == nil || *ev.ExitCode != 3 {
		t.Fatalf("failing step: %+v", ev)
	}
	lines := strings.Split(ev.Output, "\n")
	if len(lines) != keptLines || lines[0] != "line 23" || lines[len(lines)-1] != "on stderr" {
		t.Errorf("output kept: %d lines %q", len(lines), ev.Output)
	}
	if strings.Contains(ev.Output, secret) || !strings.Contains(ev.Output, "the secret is "+contract.Redacted) {
		t.Errorf("the secret is not redacted in the output kept: %q", ev.Output)
	}

	// A step that does not keep its output carries none.
	dep = "d-nokeep-" + uniq()
	r = record(t, e, dep)
	queue(t, e, contract.Step{Deployment: dep, Action: "exec", Key: "x.exec", Hash: uniq(), TimeoutS: 30, Script: "echo hello\n"})
	if ev := r.final(t, 20*time.Second); ev.State != contract.StateSucceeded || ev.Output != "" {
		t.Errorf("step without KeepOutput: %+v", ev)
	}

	marker := fmt.Sprintf("de-exec-hang-%d", time.Now().UnixNano())
	dep = "d-hang-" + uniq()
	r = record(t, e, dep)
	queue(t, e, contract.Step{Deployment: dep, Action: "exec", Key: "x.exec", Hash: uniq(), TimeoutS: 2, KeepOutput: true,
		Script: "echo started\n( setsid bash -c 'exec -a " + marker + "-child sleep 600' & )\nexec -a " + marker + " sleep 600\n"})
	waitRunning(t, marker)
	ev = r.final(t, 30*time.Second)
	if ev.State != contract.StateFailed || ev.ExitCode == nil || *ev.ExitCode != exitTimedOut || !strings.Contains(ev.Error, "timed out") || ev.Output != "started" {
		t.Fatalf("hung step: %+v", ev)
	}
	if out, _ := exec.Command("pgrep", "-f", marker).Output(); len(out) > 0 {
		t.Fatalf("the timed-out command still runs on the node: pids %s", out)
	}
	waitEmpty(t, e)
}

// waitRunning waits until a process whose command line holds marker runs.
func waitRunning(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if out, _ := exec.Command("pgrep", "-f", marker).Output(); len(out) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never ran", marker)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
