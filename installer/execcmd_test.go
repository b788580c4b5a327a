package installer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

func TestExec(t *testing.T) {
	e := newEnv(t)
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
	_, r = ask(contract.Exec{Node: nodeIP, Script: "sleep 30", TimeoutS: 1})
	if r.ExitCode != -1 || !strings.Contains(r.Error, "killed") {
		t.Fatalf("hung exec: %+v", r)
	}

	// A node of the config that nothing answers on: an error that says so.
	cfg := contract.Config{Components: map[string][]string{"x": {nodeIP, "127.0.77.3"}},
		Properties: contract.Properties{Domain: "t.local", Home: "127.0.0.1", Key: keyPath, Password: secret, User: "u"}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	code, r = ask(contract.Exec{Node: "127.0.77.3", Script: "true", TimeoutS: 5})
	if code != 200 || r.ExitCode != -1 || !strings.Contains(r.Error, "refused") {
		t.Fatalf("exec on a node that does not answer: %d %+v", code, r)
	}
}

// One slow exec holds up no other: the monitor reads every node at once
// through this endpoint, and a node that hangs must not delay the rest.
func TestExecRunsConcurrently(t *testing.T) {
	e := newEnv(t)
	storeConfig(t, e)
	ask := func(script string, timeout int) (contract.ExecReply, time.Duration) {
		start := time.Now()
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerExec(), contract.Exec{V: 1, Node: nodeIP, Script: script, TimeoutS: timeout})
		if err != nil {
			t.Error(err)
		}
		var out contract.ExecReply
		_ = json.Unmarshal(rep.Body, &out)
		return out, time.Since(start)
	}
	slow := make(chan time.Duration, 1)
	go func() { _, took := ask("sleep 6", 20); slow <- took }()
	time.Sleep(500 * time.Millisecond)
	r, took := ask("echo quick", 10)
	if r.Output != "quick\n" || took > 3*time.Second {
		t.Fatalf("an exec beside a slow one: %+v after %s", r, took)
	}
	t.Logf("an exec beside a slow one answered in %s", took.Round(time.Millisecond))
	if took := <-slow; took < 5*time.Second {
		t.Fatalf("the slow exec answered after %s: it did not run", took)
	}
}
