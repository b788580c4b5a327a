package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/monitor/agent"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/monittest"
	"github.com/deployment-engine/engine/services/subject"
)

// A BOSH job whose monit file has two processes: stop and restart act on
// both, and the instance runs only while both run; when the second stops,
// status says so and names it.
func TestEveryProcessOfAJob(t *testing.T) {
	e := newEnv(t)
	cfg := contract.Config{Components: map[string][]string{"two-procs": {nodeIP}}, Properties: contract.Properties{Catalog: "bosh"}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	procs := []string{"de-test-main", "de-test-helper"}
	markers := []string{fmt.Sprintf("sleep %d", 2000000+os.Getpid()), fmt.Sprintf("sleep %d", 3000000+os.Getpid())}
	var checks strings.Builder
	for i, p := range procs {
		fmt.Fprintf(&checks, `check process %[1]s matching "%[2]s"
  start program = "/bin/sh -c '/bin/%[2]s >/dev/null 2>&1 &'"
  stop program = "/usr/bin/pkill -f '%[2]s'"
`, p, markers[i])
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		for _, m := range markers {
			_ = exec.Command("pkill", "-f", m).Run()
		}
	})
	rc, port := monittest.Start(t, dir, checks.String())
	monitCmd := []string{"monit", "-c", rc}
	pass := filepath.Join(dir, "agent.pass")
	_ = os.WriteFile(pass, []byte(bus.AgentPassword(e.sec, nodeIP)+"\n"), 0o600)
	acfg := contract.AgentConfig{V: 1, IP: nodeIP, NATS: e.url, User: bus.AgentUser(nodeIP), PasswordFile: pass, Listen: "127.0.0.1:0", IntervalS: 1,
		Components: []contract.AgentComponent{{Name: "two-procs", Process: procs[0], Processes: procs}}}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		_ = agent.Run(ctx, acfg, agent.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MonitCmd: monitCmd,
			MonitURL: fmt.Sprintf("http://127.0.0.1:%d/_status?format=xml", port), StateFile: filepath.Join(dir, "offsets.json")})
	}()
	e.waitStatus(t, "RUNNING", 60*time.Second)
	running := func(i int) bool { return exec.Command("pgrep", "-f", markers[i]).Run() == nil }

	// The second process stopped behind the engine's back: DOWN, naming it.
	if out, err := exec.Command(monitCmd[0], append(monitCmd[1:], "stop", procs[1])...).CombinedOutput(); err != nil {
		t.Fatalf("monit stop: %v %s", err, out)
	}
	_, st := e.waitStatus(t, "DOWN", 20*time.Second)
	if !strings.Contains(st.Reason, procs[1]) {
		t.Errorf("the reason does not name the process that is down: %+v", st)
	}

	// Restart brings both back; stop stops both.
	ctrl := func(action string) {
		t.Helper()
		code, body := e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "two-procs", IP: nodeIP}, Action: action})
		if code != 200 {
			t.Fatalf("%s: %d %s", action, code, body)
		}
	}
	ctrl("restart")
	e.waitStatus(t, "RUNNING", 30*time.Second)
	if !running(0) || !running(1) {
		t.Errorf("after restart: main %v, helper %v; want both", running(0), running(1))
	}
	ctrl("stop")
	e.waitStatus(t, "DOWN", 15*time.Second)
	if running(0) || running(1) {
		t.Errorf("after stop: main %v, helper %v; want neither", running(0), running(1))
	}
}
