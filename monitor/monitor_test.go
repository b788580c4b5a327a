package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deployment-engine/engine/monitor"
	"github.com/deployment-engine/engine/monitor/agent"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/monittest"
	"github.com/deployment-engine/engine/services/subject"
)

// The node is this machine: a real monit daemon of the test's own watches a
// real process, a real agent reports it over a real embedded NATS server
// with its own restricted user, and the monitor answers from that.
const (
	nodeIP  = "127.0.0.1"
	process = "de-monitor-test-web"
)

// marker names the test's process by a number of this test binary's own:
// monit's "matching" and pkill see every process on the machine, and
// another run of these tests must not stop ours.
var marker = fmt.Sprintf("sleep %d", 1000000+os.Getpid())

// startMonit runs a monit daemon with its own control file and returns the
// command line that talks to it and its XML status URL.
func startMonit(t *testing.T, extra ...string) ([]string, string) {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("pkill", "-f", marker).Run() })
	rc, port := monittest.Start(t, dir, fmt.Sprintf(`check process %[1]s matching "%[2]s"
  start program = "/bin/sh -c '/bin/%[2]s >/dev/null 2>&1 &'"
  stop program = "/usr/bin/pkill -f '%[2]s'"
`, process, marker)+strings.ReplaceAll(strings.Join(extra, "\n"), "DIR", dir))
	return []string{"monit", "-c", rc}, fmt.Sprintf("http://127.0.0.1:%d/_status?format=xml", port)
}

type env struct {
	nc   *nats.Conn
	res  *bus.Resources
	mon  *monitor.Monitor
	url  string // NATS URL for agents
	sec  []byte
	reg  *prometheus.Registry
	evMu sync.Mutex
	evs  []contract.ComponentEvent
}

func newEnv(t testing.TB, procs ...string) *env {
	t.Helper()
	ctx := context.Background()
	port := bustest.FreePort(t)
	b := bustest.Start(t, bus.ServerOptions{Host: "127.0.0.1", Port: port})
	e := &env{url: fmt.Sprintf("nats://127.0.0.1:%d", port), sec: []byte("agent-secret-for-tests"), nc: b.NC, res: b.Res}
	b.Srv.SetAgentSecret(e.sec)
	var err error
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.mon, err = monitor.Start(ctx, monitor.Options{NC: e.nc, Res: e.res, Logger: quiet,
		Process: func(_, comp string) (string, bool) {
			if comp == "web" {
				return process, true
			}
			// Further components name their monit process: comp=process.
			for _, p := range procs {
				if c, proc, _ := strings.Cut(p, "="); c == comp {
					return proc, true
				}
			}
			return "", false
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	e.reg.MustRegister(e.mon.Collectors()...)
	if _, err := e.nc.Subscribe(subject.AllComponents, func(m *nats.Msg) {
		var ev contract.ComponentEvent
		_ = json.Unmarshal(m.Data, &ev)
		e.evMu.Lock()
		e.evs = append(e.evs, ev)
		e.evMu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.mon.Stop() })
	return e
}

func (e *env) ask(t *testing.T, subj string, body any) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := kit.Request(ctx, e.nc, subj, body)
	if err != nil {
		t.Fatalf("%s: %v", subj, err)
	}
	return rep.Code, rep.Body
}

func (e *env) status(t *testing.T) contract.StatusEntry {
	t.Helper()
	code, body := e.ask(t, subject.MonitorStatus(), nil)
	var st []contract.StatusEntry
	if code != 200 || json.Unmarshal(body, &st) != nil || len(st) != 1 {
		t.Fatalf("status: %d %s", code, body)
	}
	return st[0]
}

// waitStatus polls until the instance reaches want and returns how long it took.
func (e *env) waitStatus(t *testing.T, want string, within time.Duration) (time.Duration, contract.StatusEntry) {
	t.Helper()
	start := time.Now()
	var st contract.StatusEntry
	for time.Since(start) < within {
		if st = e.status(t); st.Status == want {
			return time.Since(start), st
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("status did not become %s within %s: %+v", want, within, st)
	return 0, st
}

func TestMonitorWithAgentAndMonit(t *testing.T) {
	e := newEnv(t)
	// No config: 403 everywhere, as the API promises.
	for _, subj := range []string{subject.MonitorStatus(), subject.MonitorHardware(), subject.MonitorControl()} {
		if code, body := e.ask(t, subj, contract.ControlRequest{Target: contract.Target{Comp: "web", IP: nodeIP}, Action: "stop"}); code != 403 {
			t.Fatalf("%s without a config: %d %s", subj, code, body)
		}
	}
	cfg := contract.Config{Components: map[string][]string{"web": {nodeIP}}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t); st.Status != "DOWN" || !strings.Contains(st.Reason, "agent") {
		t.Fatalf("status before any agent reported: %+v", st)
	}

	monitCmd, monitURL := startMonit(t)
	dir := t.TempDir()
	pass := filepath.Join(dir, "agent.pass")
	_ = os.WriteFile(pass, []byte(bus.AgentPassword(e.sec, nodeIP)+"\n"), 0o600)
	logFile := filepath.Join(dir, "web.log")
	_ = os.WriteFile(logFile, []byte("old line\n"), 0o644)
	acfg := contract.AgentConfig{V: 1, IP: nodeIP, NATS: e.url, User: bus.AgentUser(nodeIP), PasswordFile: pass,
		Listen: "127.0.0.1:0", IntervalS: 1, Components: []contract.AgentComponent{{Name: "web", Process: process, Logs: []string{logFile, filepath.Join(dir, "job", "*.log")}}}}

	var logMu sync.Mutex
	var logLines []string
	if _, err := e.nc.Subscribe(subject.AllNodeLogs, func(m *nats.Msg) {
		var l contract.LogLine
		_ = json.Unmarshal(m.Data, &l)
		logMu.Lock()
		logLines = append(logLines, l.Line)
		logMu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	// The server has the subscription before the agent starts: its first
	// read sends the old line at once (ci190 lost it on a loaded machine).
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	confFile := filepath.Join(dir, "agent.json")
	confJSON, _ := json.Marshal(acfg)
	_ = os.WriteFile(confFile, confJSON, 0o600)
	ctx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, acfg, agent.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MonitURL: monitURL, MonitCmd: monitCmd,
			StateFile: filepath.Join(dir, "offsets.json"), Ready: func(a string) { addrc <- a }, ConfigFile: confFile})
	}()
	metricsAddr := <-addrc

	_, st := e.waitStatus(t, "RUNNING", 60*time.Second)
	if !strings.HasSuffix(st.Cpu, "%") || !strings.HasSuffix(st.Mem, "%") || !strings.HasSuffix(st.Disk, "%") {
		t.Fatalf("usage not in the manual's format: %+v", st)
	}

	t.Run("hardware", func(t *testing.T) {
		code, body := e.ask(t, subject.MonitorHardware(), contract.Target{Comp: "web", IP: nodeIP})
		var hw contract.NodeHardware
		if code != 200 || json.Unmarshal(body, &hw) != nil || hw.CPU < 1 || hw.RAM < 1000 || hw.DISK < 1 {
			t.Fatalf("hardware: %d %s", code, body)
		}
		code, body = e.ask(t, subject.MonitorHardware(), contract.Target{Comp: "all", IP: "0.0.0.0"})
		if code != 200 || !strings.HasPrefix(string(body), "[") {
			t.Fatalf("hardware for all: %d %s", code, body)
		}
		for _, bad := range []contract.Target{{Comp: "web", IP: "127.0.0.2"}, {Comp: "nats", IP: nodeIP}, {Comp: "", IP: ""}} {
			if code, body := e.ask(t, subject.MonitorHardware(), bad); code != 400 {
				t.Errorf("hardware %+v: %d %s, want 400", bad, code, body)
			}
		}
	})

	t.Run("agent metrics", func(t *testing.T) {
		fams := scrape(t, "http://"+metricsAddr+"/metrics")
		if v := value(fams, "de_component_up", "component", "web"); v != 1 {
			t.Errorf("de_component_up{component=web} = %v, want 1", v)
		}
		if v := value(fams, "node_memory_MemTotal_bytes"); v <= 0 {
			t.Errorf("node_memory_MemTotal_bytes = %v", v)
		}
		if v := value(fams, "node_filesystem_size_bytes", "mountpoint", "/"); v <= 0 {
			t.Errorf("node_filesystem_size_bytes = %v", v)
		}
		if fams["node_cpu_seconds_total"] == nil || fams["node_cpu_seconds_total"].GetHelp() == "" {
			t.Error("node_cpu_seconds_total missing or without help text")
		}
	})

	t.Run("logs", func(t *testing.T) {
		// waitLines waits up to 10 s for n lines followed.
		waitLines := func(n int) {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				logMu.Lock()
				got := len(logLines)
				logMu.Unlock()
				if got >= n {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		f, _ := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0o644)
		for i := range 50 {
			fmt.Fprintf(f, "line %d\n", i)
		}
		f.Close()
		waitLines(51)
		logMu.Lock()
		defer logMu.Unlock()
		if len(logLines) != 51 || logLines[0] != "old line" || logLines[50] != "line 49" {
			t.Fatalf("followed %d lines, first %q, want old line + 50 in order", len(logLines), logLines[:min(3, len(logLines))])
		}
		for i := 1; i <= 50; i++ {
			if logLines[i] != fmt.Sprintf("line %d", i-1) {
				t.Fatalf("line %d is %q: out of order", i, logLines[i])
			}
		}
		logMu.Unlock()
		// Rotated (truncated in place): followed again from its top.
		_ = os.WriteFile(logFile, []byte("after rotation\n"), 0o644)
		waitLines(52)
		logMu.Lock()
		if len(logLines) != 52 || logLines[51] != "after rotation" {
			t.Fatalf("after truncation followed %d lines, last %q", len(logLines), logLines[len(logLines)-1])
		}
		// A file the pattern matches, made after the agent started (a
		// BOSH job's log under /var/vcap/sys/log/<job>/): followed too.
		logMu.Unlock()
		if err := os.MkdirAll(filepath.Join(dir, "job"), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "job", "worker.log"), []byte("job line\n"), 0o644)
		waitLines(53)
		logMu.Lock()
		if len(logLines) != 53 || logLines[52] != "job line" {
			t.Fatalf("a file the pattern matches: followed %d lines, last %q", len(logLines), logLines[len(logLines)-1])
		}
	})

	t.Run("stop stays stopped, restart brings it back", func(t *testing.T) {
		code, body := e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "web", IP: nodeIP}, Action: "stop"})
		if code != 200 || !strings.Contains(string(body), `"via":"agent"`) {
			t.Fatalf("stop: %d %s", code, body)
		}
		took, st := e.waitStatus(t, "DOWN", 15*time.Second)
		t.Logf("stop → DOWN in %s (heartbeat interval 1s)", took.Round(10*time.Millisecond))
		if !strings.Contains(st.Reason, "monit") {
			t.Errorf("a stopped component should say what monit says: %+v", st)
		}
		time.Sleep(4 * time.Second) // several monit cycles
		if st := e.status(t); st.Status != "DOWN" {
			t.Fatalf("monit brought a stopped component back: %+v", st)
		}
		if err := exec.Command("pgrep", "-f", marker).Run(); err == nil {
			t.Fatal("the process still runs after stop")
		}
		code, body = e.ask(t, subject.MonitorControl(), contract.ControlRequest{Target: contract.Target{Comp: "all", IP: "0.0.0.0"}, Action: "restart"})
		if code != 200 {
			t.Fatalf("restart all: %d %s", code, body)
		}
		took, _ = e.waitStatus(t, "RUNNING", 30*time.Second)
		t.Logf("restart → RUNNING in %s", took.Round(10*time.Millisecond))
		for _, bad := range []contract.ControlRequest{
			{Target: contract.Target{Comp: "web", IP: "127.0.0.9"}, Action: "stop"},
			{Target: contract.Target{Comp: "web", IP: nodeIP}, Action: "format-disk"},
		} {
			if code, body := e.ask(t, subject.MonitorControl(), bad); code != 400 {
				t.Errorf("control %+v: %d %s, want 400", bad, code, body)
			}
		}
		// The agent itself refuses what the engine never asks.
		for _, c := range []contract.Control{{V: 1, Action: "unmonitor", Process: process}, {V: 1, Action: "stop", Process: "sshd"}} {
			b, _ := json.Marshal(c)
			msg, err := e.nc.Request(subject.Node(nodeIP, subject.VerbControl), b, 5*time.Second)
			var r contract.ControlReply
			if err != nil || json.Unmarshal(msg.Data, &r) != nil || r.OK || r.Error == "" {
				t.Errorf("agent control %+v: %v %+v", c, err, r)
			}
		}
		e.evMu.Lock()
		var downs, ups int
		for _, ev := range e.evs {
			if ev.Up {
				ups++
			} else {
				downs++
			}
		}
		e.evMu.Unlock()
		if downs < 1 || ups < 1 {
			t.Errorf("component events: %d down, %d up; want both", downs, ups)
		}
	})

	t.Run("a heartbeat for another node is ignored", func(t *testing.T) {
		hb, _ := json.Marshal(contract.Heartbeat{V: 1, IP: nodeIP, IntervalS: 1})
		_ = e.nc.Publish(subject.Node("127.0.0.2", subject.VerbHeartbeat), hb)
		_ = e.nc.Publish(subject.Node(nodeIP, subject.VerbHeartbeat), []byte("{not json"))
		_ = e.nc.Flush()
		time.Sleep(200 * time.Millisecond)
		if st := e.status(t); st.Status != "RUNNING" {
			t.Fatalf("a forged or broken heartbeat changed the status: %+v", st)
		}
	})

	t.Run("engine metrics", func(t *testing.T) {
		fams, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			m[f.GetName()] = f
		}
		if v := value(m, "de_component_instance_up", "component", "web"); v != 1 {
			t.Errorf("de_component_instance_up = %v, want 1", v)
		}
		if v := value(m, "de_node_up", "node", nodeIP); v != 1 {
			t.Errorf("de_node_up = %v, want 1", v)
		}
	})

	t.Run("monit not answering is reported with the hint", func(t *testing.T) {
		if out, err := exec.Command(monitCmd[0], append(monitCmd[1:], "quit")...).CombinedOutput(); err != nil {
			t.Fatalf("monit quit: %v %s", err, out)
		}
		_, st := e.waitStatus(t, "DOWN", 10*time.Second)
		if !strings.Contains(st.Reason, "monit") || !strings.Contains(st.Reason, "CPU") || st.Cpu == "N/A" {
			t.Fatalf("a node whose monit does not answer: %+v", st)
		}
	})

	t.Run("a new config restarts the agent", func(t *testing.T) {
		_ = os.WriteFile(confFile, append(confJSON, '\n'), 0o600)
		select {
		case err := <-done:
			if !errors.Is(err, agent.ErrRestart) {
				t.Fatalf("agent ended with %v, want ErrRestart", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the agent did not notice its new config")
		}
	})

	t.Run("a silent node is reported unreachable", func(t *testing.T) {
		// The agent ended above. Bound: 3 missed intervals of 1 s, plus
		// the monitor's 1 s check.
		start := time.Now()
		var st contract.StatusEntry
		for time.Since(start) < 6*time.Second {
			if st = e.status(t); strings.Contains(st.Reason, "unreachable") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("agent stopped → DOWN (unreachable) in %s", time.Since(start).Round(10*time.Millisecond))
		if st.Status != "DOWN" || !strings.Contains(st.Reason, "unreachable") || st.Cpu != "N/A" {
			t.Fatalf("a silent node: %+v", st)
		}
	})

	t.Run("a restarted monitor knows the last report", func(t *testing.T) {
		e.mon.Stop()
		var err error
		e.mon, err = monitor.Start(context.Background(), monitor.Options{NC: e.nc, Res: e.res, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Process: func(_, comp string) (string, bool) { return process, comp == "web" }})
		if err != nil {
			t.Fatal(err)
		}
		// No installer runs here: the hardware can only come from the
		// heartbeat kept in the bucket.
		code, body := e.ask(t, subject.MonitorHardware(), contract.Target{Comp: "web", IP: nodeIP})
		var hw contract.NodeHardware
		if code != 200 || json.Unmarshal(body, &hw) != nil || hw.CPU < 1 {
			t.Fatalf("hardware after a restart: %d %s", code, body)
		}
		if st := e.status(t); st.Status != "DOWN" || !strings.Contains(st.Reason, "unreachable") {
			t.Fatalf("status after a restart, the agent still silent: %+v", st)
		}
	})
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value is the first sample of a family whose labels include the given pairs.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}
