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
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/monitor"
	"github.com/deployment-engine/engine/monitor/agent"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

const stuckProcess = "de-monitor-test-stuck"

// stuckSleep is the stuck process's command line, by a number of this test
// binary's own (see marker).
var stuckSleep = fmt.Sprintf("sleep %d", 2000000+os.Getpid())

// stuckCheck is a monit process whose stop program fails, as the starter's
// redis stop once did (start-stop-daemon refusing a non-root pidfile).
var stuckCheck = `check process ` + stuckProcess + ` with pidfile DIR/stuck.pid
  start program = "/sbin/start-stop-daemon --start --background --make-pidfile --pidfile DIR/stuck.pid --exec /bin/sleep -- ` + strings.TrimPrefix(stuckSleep, "sleep ") + `"
  stop program = "/bin/sh -c 'echo start-stop-daemon: matching only on non-root pidfile is insecure >&2; exit 2'" with timeout 2 seconds
`

func (e *env) statuses(t *testing.T) map[string]contract.StatusEntry {
	t.Helper()
	code, body := e.ask(t, subject.MonitorStatus(), nil)
	var st []contract.StatusEntry
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("status: %d %s", code, body)
	}
	out := map[string]contract.StatusEntry{}
	for _, s := range st {
		out[s.Comp+"@"+s.Ip] = s
	}
	return out
}

// Restart and stop answer with the outcome on the node, not monit's
// instant yes: a stop that failed is a 502 with monit's words, and the
// process that still runs is not reported DOWN.
func TestControlTellsTheTruth(t *testing.T) {
	e := newEnv(t, "stuck="+stuckProcess)
	cfg := contract.Config{Components: map[string][]string{"web": {nodeIP}, "stuck": {nodeIP}}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	monitCmd, monitURL := startMonit(t, stuckCheck)
	t.Cleanup(func() { _ = exec.Command("pkill", "-f", stuckSleep).Run() })
	dir := t.TempDir()
	pass := filepath.Join(dir, "agent.pass")
	_ = os.WriteFile(pass, []byte(bus.AgentPassword(e.sec, nodeIP)+"\n"), 0o600)
	acfg := contract.AgentConfig{V: 1, IP: nodeIP, NATS: e.url, User: bus.AgentUser(nodeIP), PasswordFile: pass,
		Listen: "127.0.0.1:0", IntervalS: 1, Components: []contract.AgentComponent{{Name: "web", Process: process}, {Name: "stuck", Process: stuckProcess}}}
	ctx, stopAgent := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, acfg, agent.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MonitURL: monitURL, MonitCmd: monitCmd,
			StateFile: filepath.Join(dir, "offsets.json"), MarkDir: filepath.Join(dir, "marks")})
	}()
	defer func() { stopAgent(); <-done }()

	web, stuck := "web@"+nodeIP, "stuck@"+nodeIP
	deadline := time.Now().Add(60 * time.Second)
	for st := e.statuses(t); st[web].Status != "RUNNING" || st[stuck].Status != "RUNNING"; st = e.statuses(t) {
		if time.Now().After(deadline) {
			t.Fatalf("not both RUNNING: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A stop that works: when it answers, the process is gone.
	code, body := e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "web", IP: nodeIP}, Action: "stop"})
	if code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	if exec.Command("pgrep", "-f", marker).Run() == nil {
		t.Fatal("stop answered 200 while the process still runs")
	}
	code, body = e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "web", IP: nodeIP}, Action: "restart"})
	if code != 200 || exec.Command("pgrep", "-f", marker).Run() != nil {
		t.Fatalf("restart answered %d %s; the process runs: %v", code, body, exec.Command("pgrep", "-f", marker).Run() == nil)
	}

	// A stop that fails: 502 with monit's words, and the process, alive,
	// is RUNNING with the reason.
	start := time.Now()
	code, body = e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "stuck", IP: nodeIP}, Action: "stop"})
	var rep struct {
		Error    string
		Problems []contract.Problem
		Results  []contract.ControlResult
	}
	_ = json.Unmarshal(body, &rep)
	if code != 502 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Reason, "failed to stop") ||
		!strings.Contains(rep.Error, "non-root pidfile is insecure") || len(rep.Results) != 1 || rep.Results[0].Via != "agent" {
		t.Fatalf("a stop that failed: %d %s", code, body)
	}
	t.Logf("failed stop answered in %s: %s", time.Since(start).Round(10*time.Millisecond), rep.Error)
	if exec.Command("pgrep", "-f", stuckSleep).Run() != nil {
		t.Fatal("the stuck process died: the test proves nothing")
	}
	deadline = time.Now().Add(10 * time.Second)
	var st map[string]contract.StatusEntry
	for st = e.statuses(t); !strings.HasPrefix(st[stuck].Reason, "stop failed"); st = e.statuses(t) {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st[stuck].Status != "RUNNING" || !strings.Contains(st[stuck].Reason, "stop failed: ") || !strings.Contains(st[stuck].Reason, "insecure") {
		t.Fatalf("status of a process whose stop failed: %+v", st[stuck])
	}
	if st[web].Status != "RUNNING" || st[web].Reason != "" {
		t.Fatalf("status of the other component: %+v", st[web])
	}
}

// A node that does not answer a restart is failed at its deadline, while
// the other nodes' outcome comes as usual.
func TestControlDeadlinePerNode(t *testing.T) {
	e := newEnv(t)
	e.mon.Stop()
	var err error
	e.mon, err = monitor.Start(context.Background(), monitor.Options{NC: e.nc, Res: e.res, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Process: func(_, comp string) (string, bool) { return process, true }, ControlWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hung, fine := "127.0.0.2", nodeIP
	cfg := contract.Config{Components: map[string][]string{"web": {fine, hung}}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	// Both nodes report; one agent answers controls, the other never does.
	for _, ip := range []string{fine, hung} {
		hb, _ := json.Marshal(contract.Heartbeat{V: 1, IP: ip, IntervalS: 60, Components: []contract.ComponentState{{Name: "web", Process: process, Monit: "OK", Running: true}}})
		if err := e.nc.Publish(subject.Node(ip, subject.VerbHeartbeat), hb); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.nc.Subscribe(subject.Node(fine, subject.VerbControl), func(m *nats.Msg) {
		b, _ := json.Marshal(contract.ControlReply{V: 1, OK: true})
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.nc.Subscribe(subject.Node(hung, subject.VerbControl), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	_ = e.nc.Flush()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	code, body := e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "all", IP: "0.0.0.0"}, Action: "restart"})
	took := time.Since(start)
	var rep struct{ Results []contract.ControlResult }
	_ = json.Unmarshal(body, &rep)
	if code != 502 || len(rep.Results) != 2 {
		t.Fatalf("restart with a hung node: %d %s", code, body)
	}
	for _, r := range rep.Results {
		if r.Ip == fine && !r.OK || r.Ip == hung && (r.OK || !strings.Contains(r.Error, "unreachable")) {
			t.Errorf("result %+v", r)
		}
	}
	// The deadline is ControlWait (1 s) plus the agent's margin (5 s).
	if took > 10*time.Second {
		t.Errorf("restart with a hung node answered after %s", took)
	}
	t.Logf("restart with a hung node answered in %s", took.Round(10*time.Millisecond))
}

// Without agents every node is read over SSH through the installer's exec:
// a node whose read hangs delays status by at most StatusWait and is
// reported unreachable, while every other node is read correctly. The
// installer stands in here only as its exec endpoint.
func TestStatusWithAHungNodeOverSSH(t *testing.T) {
	e := newEnv(t)
	hung := "127.0.0.4"
	nodes := []string{"127.0.0.2", "127.0.0.3", hung, "127.0.0.5"}
	release := make(chan struct{})
	defer close(release)
	readsOverSSH(t, e, nodes, func(x contract.Exec, good contract.ExecReply) contract.ExecReply {
		if x.Node == hung {
			<-release // a frozen node: no answer until the test ends
		}
		return good
	})
	for round := range 3 {
		start := time.Now()
		st := e.statuses(t)
		took := time.Since(start)
		if took > 3*time.Second {
			t.Errorf("round %d: status took %s with a hung node", round, took)
		}
		for _, ip := range nodes {
			s := st["web@"+ip]
			switch {
			case ip == hung && (s.Status != "DOWN" || !strings.Contains(s.Reason, "unreachable")):
				t.Errorf("round %d: the hung node: %+v", round, s)
			case ip != hung && (s.Status != "RUNNING" || s.Cpu != "25%"):
				t.Errorf("round %d: %s beside a hung node: %+v", round, ip, s)
			}
		}
		t.Logf("round %d: status in %s", round, took.Round(time.Millisecond))
	}
}

// A release's job is in no catalog: when its node's agent has not reported
// it (late, or none), its processes are read from its monit file on the
// node over SSH, and each is stopped. The installer stands in as its exec
// endpoint and runs the read against a real monit file in a temp dir.
func TestControlReadsAJobsProcessesOverSSH(t *testing.T) {
	e := newEnv(t)
	ip := "127.0.0.2"
	cfg := contract.Config{Components: map[string][]string{"web-hooks": {ip}, "idle": {ip}}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	confd := t.TempDir()
	monitFile := "check process web-hooks-main\n  with pidfile /x/main.pid\ncheck process \"web-hooks-helper\"\n  with pidfile /x/helper.pid\n"
	if err := os.WriteFile(filepath.Join(confd, "web-hooks"), []byte(monitFile), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := micro.AddService(e.nc, micro.Config{Name: "installer", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	var controlled []string
	subj := subject.InstallerExec()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(quiet, func(ctx context.Context, req micro.Request) (int, any, error) {
		var x contract.Exec
		_ = json.Unmarshal(req.Data(), &x)
		if strings.HasPrefix(x.Script, "set --") { // a control: record its process
			f := strings.Fields(strings.SplitN(x.Script, "\n", 2)[0])
			controlled = append(controlled, strings.Trim(f[2], "'")+" "+strings.Trim(f[3], "'"))
			return 200, contract.ExecReply{V: 1, Output: "ok: done\n"}, nil
		}
		out, err := exec.CommandContext(ctx, "bash", "-c", strings.ReplaceAll(x.Script, "/etc/monit/conf.d", confd)).CombinedOutput()
		if err != nil {
			return 200, contract.ExecReply{V: 1, Output: string(out), ExitCode: 1}, nil
		}
		return 200, contract.ExecReply{V: 1, Output: string(out)}, nil
	}), micro.WithEndpointSubject(subj)); err != nil {
		t.Fatal(err)
	}

	code, body := e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "web-hooks", IP: ip}, Action: "stop"})
	if code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	if want := []string{"stop web-hooks-main", "stop web-hooks-helper"}; !slices.Equal(controlled, want) {
		t.Errorf("controlled %q, want %q", controlled, want)
	}
	// A job with no monit file has nothing to stop, and says so.
	code, body = e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "idle", IP: ip}, Action: "stop"})
	if code != 502 || !strings.Contains(string(body), "no monit file on the node names one") {
		t.Errorf("stop of a job of no process: %d %s", code, body)
	}
}

// A read the node did not finish in time (a busy machine: the installer
// killed it) does not turn a node that answered a moment ago DOWN: its
// last good read stands for it while that is younger than 15 s, as an
// agent may miss heartbeats; a node that stays that slow is unreachable
// after, with the installer's words.
func TestStatusToleratesASlowReadOverSSH(t *testing.T) {
	e := newEnv(t)
	slow := "127.0.0.4"
	var slowNow atomic.Bool
	readsOverSSH(t, e, []string{"127.0.0.2", slow}, func(x contract.Exec, good contract.ExecReply) contract.ExecReply {
		if x.Node == slow && slowNow.Load() {
			return contract.ExecReply{V: 1, ExitCode: -1, Error: "the command did not finish within 10s and was killed", TimedOut: true}
		}
		return good
	})
	if s := e.statuses(t)["web@"+slow]; s.Status != "RUNNING" {
		t.Fatalf("before: %+v", s)
	}
	good := time.Now()
	slowNow.Store(true)
	var s contract.StatusEntry
	for time.Since(good) < 30*time.Second {
		s = e.statuses(t)["web@"+slow]
		if s.Status != "RUNNING" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if since := time.Since(good); s.Status != "DOWN" || !strings.Contains(s.Reason, "did not finish within 10s") || since < 14*time.Second {
		t.Fatalf("%s after its last good read, the slow node is %+v; want RUNNING for 15 s, then DOWN with the installer's words", since.Round(time.Second), s)
	}
	if s := e.statuses(t)["web@127.0.0.2"]; s.Status != "RUNNING" {
		t.Fatalf("the other node: %+v", s)
	}
}

// readsOverSSH starts e's monitor again without agents, web on nodes, and
// stands in for the installer's exec endpoint: answer gets each read and
// the good answer (monit's batch summary, RUNNING) and says what to reply.
func readsOverSSH(t *testing.T, e *env, nodes []string, answer func(x contract.Exec, good contract.ExecReply) contract.ExecReply) {
	t.Helper()
	e.mon.Stop()
	var err error
	e.mon, err = monitor.Start(context.Background(), monitor.Options{NC: e.nc, Res: e.res, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Process: func(_, comp string) (string, bool) { return "sleeper", true }})
	if err != nil {
		t.Fatal(err)
	}
	summary, err := os.ReadFile("monit/testdata/summary-5.33-batch.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(contract.Config{Components: map[string][]string{"web": nodes}})
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	svc, err := micro.AddService(e.nc, micro.Config{Name: "installer", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	subj := subject.InstallerExec()
	good := contract.ExecReply{V: 1, Output: "cpu 25 75\nmem 1000 250\ndisk 2000 500\n--- monit\n" + string(summary) + "--- unsupervised\n"}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Concurrent(16, kit.Endpoint(quiet, func(_ context.Context, req micro.Request) (int, any, error) {
		var x contract.Exec
		_ = json.Unmarshal(req.Data(), &x)
		return 200, answer(x, good), nil
	})), micro.WithEndpointSubject(subj)); err != nil {
		t.Fatal(err)
	}
}
