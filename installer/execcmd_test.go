package installer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

func TestExec(t *testing.T) { forTransports(t, testExec) }

// An exec (a read of the nodes, as a plan's) goes through the node's
// agent when it takes commands: over the agent transport, env's check
// fails the test for any SSH session.
func testExec(t *testing.T, tr transport) {
	e := tr.env(t)
	ask := func(x contract.Exec) (int, contract.ExecReply) {
		t.Helper()
		x.V = 1
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerExec(), x)
		if err != nil {
			t.Fatal(err)
		}
		var out contract.ExecReply
		_ = json.Unmarshal(rep.Body, &out)
		return rep.Code, out
	}
	if code, _ := ask(contract.Exec{Node: nodeIP, Script: "true"}); code != 403 {
		t.Fatalf("exec without a config: code %d, want 403", code)
	}
	storeConfig(t, e)
	code, r := ask(contract.Exec{Node: nodeIP, Script: "echo hello; echo " + secret + "; echo oops >&2; exit 3"})
	if code != 200 || r.ExitCode != 3 || r.Error != "" {
		t.Fatalf("exec: code %d reply %+v", code, r)
	}
	if want := "hello\n" + contract.Redacted + "\n"; r.Output != want {
		t.Fatalf("exec output %q, want %q (stdout only, secrets redacted)", r.Output, want)
	}
	if code, _ := ask(contract.Exec{Node: "127.0.77.9", Script: "true"}); code != 400 {
		t.Fatalf("exec on a node outside the config: code %d, want 400", code)
	}
	if code, _ := ask(contract.Exec{Node: "../x", Script: "true"}); code != 400 {
		t.Fatalf("exec on a bad IP: code %d, want 400", code)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, r = ask(contract.Exec{Node: nodeIP, Script: "echo $$ > " + pidFile + "; exec sleep 30", TimeoutS: 1})
	if r.ExitCode != -1 || !strings.Contains(r.Error, "killed") || !r.TimedOut {
		t.Fatalf("hung exec: %+v", r)
	}
	// Killed on the node, as the reply says, not only given up on.
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hung exec's process %s still runs 3 s after the reply", strings.TrimSpace(string(b)))
		}
	}

	// A node of the config that nothing answers on: an error that says so.
	cfg := contract.Config{Components: map[string][]string{"x": {nodeIP, "127.0.77.3"}},
		Properties: contract.Properties{Domain: "t.local", Home: "127.0.0.1", Key: keyPath, Password: secret, User: "u"}}
	b, _ = json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	code, r = ask(contract.Exec{Node: "127.0.77.3", Script: "true", TimeoutS: 5})
	if code != 200 || r.ExitCode != -1 || !strings.Contains(r.Error, "refused") || r.TimedOut {
		t.Fatalf("exec on a node that does not answer: %d %+v", code, r)
	}
}

// One slow exec holds up no other: the monitor reads every node at once
// through this endpoint, and a node that hangs must not delay the rest.
func TestExecRunsConcurrently(t *testing.T) {
	e := newEnv(t)
	storeConfig(t, e)
	ask := func(script string, timeout int) contract.ExecReply {
		var out contract.ExecReply
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerExec(), contract.Exec{V: 1, Node: nodeIP, Script: script, TimeoutS: timeout})
		if err != nil {
			t.Error(err)
			return out
		}
		_ = json.Unmarshal(rep.Body, &out)
		return out
	}
	// The slow exec lasts until the test opens its gate, after the quick one
	// answered: run one after the other, the quick one would never answer.
	dir := t.TempDir()
	started, gate := filepath.Join(dir, "started"), filepath.Join(dir, "gate")
	slow := make(chan contract.ExecReply, 1)
	go func() {
		r := ask("touch "+started+"; while [ ! -e "+gate+" ]; do sleep 0.05; done; echo slow", 120)
		slow <- r
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow exec never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	quick := make(chan contract.ExecReply, 1)
	go func() { quick <- ask("echo quick", 60) }()
	select {
	case r := <-quick:
		if r.Output != "quick\n" {
			t.Fatalf("the quick exec beside a slow one: %+v", r)
		}
	case <-time.After(60 * time.Second):
		// Generous: only a quick exec queued behind the slow one waits this long.
		t.Fatal("the quick exec did not answer while a slow one ran")
	}
	select {
	case r := <-slow:
		t.Fatalf("the slow exec answered before its gate opened: %+v", r)
	default:
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := <-slow; r.Output != "slow\n" {
		t.Fatalf("the slow exec: %+v", r)
	}
}
