package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func waitContains(t *testing.T, path, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(readFile(t, path), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %q: %q", path, want, readFile(t, path))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An earlier run of a step whose installer went away (its connection
// dropped, its process group still running on the node) is killed and
// reaped before the next attempt at that step runs: the two never overlap.
func TestNextAttemptKillsEarlierRun(t *testing.T) { forTransports(t, testNextAttemptKillsEarlierRun) }

func testNextAttemptKillsEarlierRun(t *testing.T, tr transport) {
	e := tr.env(t)
	if e.agent != nil {
		e.agent.mixed = true // the earlier run is over SSH
	}
	storeConfig(t, e)
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	key := "x.conc-" + uniq()
	tag := "de-earlier-" + uniq()

	// The earlier run: an older version of the step, on a connection
	// that then drops without a word, as when an engine is killed.
	ctx := context.Background()
	orphan, err := e.ins.dial(ctx, nodeIP, contract.Auth{Key: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	go runStep(ctx, e.ins.sshConn(orphan), stepJob{key: nodefs.MarkerName(key), hash: uniq(), deployment: "d-old", until: time.Now().Add(time.Hour)},
		"echo first start >> "+log+"\nexec -a "+tag+" sleep 3600\n", time.Hour, func(string, string) {})
	waitContains(t, log, "first start", 10*time.Second)
	orphan.Close()
	time.Sleep(300 * time.Millisecond)
	if !alive(tag) {
		t.Fatal("the earlier run died with its connection: the test does not reproduce an orphan")
	}

	r := record(t, e, "d-new")
	queue(t, e, contract.Step{Deployment: "d-new", Action: "install", Key: key, Hash: uniq(), TimeoutS: 30,
		Script: "if pgrep -f " + tag + " >/dev/null; then echo 'first still running' >> " + log + "; fi\necho second start >> " + log + "\n"})
	ev := r.final(t, 30*time.Second)
	if ev.State != contract.StateSucceeded {
		t.Fatalf("next attempt: %+v", ev)
	}
	if got := readFile(t, log); got != "first start\nsecond start\n" {
		t.Fatalf("runs on the node: %q (the next attempt ran while the earlier one was alive)", got)
	}
	if alive(tag) {
		t.Fatal("the earlier run is still alive on the node")
	}
	if !r.hasLine("killed an earlier run") {
		t.Error("the step's log does not say it killed the earlier run")
	}
}

// The same step handed out again while its first run still works on the
// node (the installer lost its connection to the node mid-step) waits for
// that run instead of starting a second one: it runs once, and the step
// succeeds. The run goes on printing after its connection is gone: its
// output must not kill it. Through an agent, the agent dies mid-step: the
// next attempt goes over SSH and finds the run.
func TestRedeliveredStepWaitsForItsRun(t *testing.T) {
	forTransports(t, testRedeliveredStepWaitsForItsRun)
}

func testRedeliveredStepWaitsForItsRun(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dir := t.TempDir()
	log, gate := filepath.Join(dir, "runs"), filepath.Join(dir, "gate")
	key := "x.redo-" + uniq()
	r := record(t, e, "d-redo")
	// The first run lasts until the test opens its gate: however slow the
	// machine, it is still running when the second attempt looks for it.
	queue(t, e, contract.Step{Deployment: "d-redo", Action: "install", Key: key, Hash: uniq(), TimeoutS: 120,
		Script: "echo run >> " + log + "\nwhile [ ! -e " + gate + " ]; do sleep 0.05; done\necho done >> " + log + "\n"})
	waitContains(t, log, "run", 30*time.Second)
	// Drop the node's connection under the running step: the command goes
	// on on the node, the installer sees a network error and tries again.
	if e.agent != nil {
		e.agent.mixed = true
		e.agent.ex.Stop()
		e.agent.nc.Close()
	} else {
		e.ins.closeAll()
	}
	// The second attempt's check of earlier runs waits in a loop of
	// `sleep 0.5` on the node (this machine, under the test's sshd); the
	// first run's loop sleeps 0.05. The gate opens once it is seen waiting.
	deadline := time.Now().Add(60 * time.Second)
	for !settling() {
		if time.Now().After(deadline) {
			t.Fatalf("the second attempt never waited for the first: %v", r.frames)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ev := r.final(t, 60*time.Second)
	if ev.State != contract.StateSucceeded || ev.Attempt < 2 {
		t.Fatalf("step after its connection dropped: %+v", ev)
	}
	if got := readFile(t, log); got != "run\ndone\n" {
		t.Fatalf("runs on the node: %q, want one run", got)
	}
	if !r.hasLine("waited for an earlier run") {
		t.Errorf("the second attempt does not say it waited for the first: %v", r.frames)
	}
	if e.agent != nil && testutil.ToFloat64(e.ins.metrics.sshSessions) == 0 {
		t.Error("the step did not finish over SSH once its agent died")
	}
}

// settling tells whether a check of earlier runs waits on the test's node:
// a `sleep 0.5` that descends from its sshd.
func settling() bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err != nil || string(b) != "sleep\x000.5\x00" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		for range 32 {
			if pid == sshd.Process.Pid {
				return true
			}
			if pid = parentOf(pid); pid <= 1 {
				break
			}
		}
	}
	return false
}

// parentOf is a process's parent pid, 0 when it is gone.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields follow the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// A step message the installer cannot read becomes a failed step event
// for its deployment and node, and leaves the queue.
func TestUnreadableStepFails(t *testing.T) {
	e := newEnv(t)
	r := record(t, e, "d-bad")
	if _, err := e.res.JS.Publish(context.Background(), subject.Step("d-bad", nodeIP), []byte(`{"v": 1, "id": `)); err != nil {
		t.Fatal(err)
	}
	ev := r.final(t, 10*time.Second)
	if ev.State != contract.StateFailed || ev.Node != nodeIP || !strings.Contains(ev.Error, "could not read") {
		t.Fatalf("unreadable step: %+v", ev)
	}
	waitEmpty(t, e)
}

// A cancel stops a deployment's running step: its command is killed on
// the node and the step fails saying so.
func TestCancelKillsRunningStep(t *testing.T) { forTransports(t, testCancelKillsRunningStep) }

func testCancelKillsRunningStep(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	tag := "de-cancel-" + uniq()
	r := record(t, e, "d-cancel")
	queue(t, e, contract.Step{Deployment: "d-cancel", Action: "install", Key: "x.cancel-" + uniq(), Hash: uniq(), TimeoutS: 600,
		Script: "exec -a " + tag + " sleep 3600\n"})
	deadline := time.Now().Add(10 * time.Second)
	for !alive(tag) {
		if time.Now().After(deadline) {
			t.Fatal("the step never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.Marshal(contract.StepCancel{V: 1, Deployment: "d-cancel", Reason: "test"})
	if err := e.ins.o.NC.Publish(subject.InstallerCancel(), b); err != nil {
		t.Fatal(err)
	}
	ev := r.final(t, 20*time.Second)
	if ev.State != contract.StateFailed || !strings.Contains(ev.Error, "cancelled") {
		t.Fatalf("cancelled step: %+v", ev)
	}
	time.Sleep(300 * time.Millisecond)
	if alive(tag) {
		t.Fatal("the cancelled step still runs on the node")
	}
	waitEmpty(t, e)
}

func alive(tag string) bool {
	out, _ := exec.Command("pgrep", "-f", tag).Output()
	return len(strings.TrimSpace(string(out))) > 0
}

func waitEmpty(t *testing.T, e *testEnv) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := e.res.Steps.Info(context.Background())
		if err == nil && info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the step stayed in the queue: %+v %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *recorder) hasLine(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l.Line, s) {
			return true
		}
	}
	return false
}
