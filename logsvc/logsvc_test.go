package logsvc

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// env is a real embedded NATS server with JetStream and the engine's
// streams, a store directory, and the service under test.
type env struct {
	t   testing.TB
	srv *bus.Server
	nc  *nats.Conn
	res *bus.Resources
	dir string
	svc *Service
	o   Options
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newEnv(t testing.TB, cfg map[string][]string) *env {
	t.Helper()
	ctx := context.Background()
	srv, err := bus.StartServer(ctx, bus.ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	res, err := bus.Declare(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, nc: nc, res: res, dir: t.TempDir()}
	e.o = Options{NC: nc, Res: res, Dir: e.dir, Logger: quiet}
	if cfg != nil {
		e.putConfig(cfg)
	}
	t.Cleanup(func() {
		if e.svc != nil {
			e.svc.Stop()
		}
		nc.Close()
		srv.Stop()
	})
	return e
}

func (e *env) putConfig(comps map[string][]string) {
	e.t.Helper()
	b, _ := json.Marshal(contract.Config{Components: comps})
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) start() *Service {
	e.t.Helper()
	s, err := Start(context.Background(), e.o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = s
	return s
}

func (e *env) stop() {
	e.svc.Stop()
	e.svc = nil
}

// publish stores an event in DE_EVENTS and waits for the ack.
func (e *env) publish(subj string, v any) {
	e.t.Helper()
	b, _ := json.Marshal(v)
	if _, err := e.res.JS.Publish(context.Background(), subj, b); err != nil {
		e.t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func logLine(dep, ip, comp, step string, seq int64, text string) contract.LogLine {
	return contract.LogLine{V: 1, Deployment: dep, Node: ip, Component: comp, Step: step, Stream: "stdout", Seq: seq, Time: t0, Line: text}
}

// waitLines waits until the service has written n lines in total.
func (e *env) waitLines(n int64) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for e.svc.written.Load() < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("wrote %d lines, want %d", e.svc.written.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) file(name string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, name))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *env) request(verb string, body any) kit.Reply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := kit.Request(ctx, e.nc, subject.Cmd("logs", verb), body)
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

func TestRouting(t *testing.T) {
	e := newEnv(t, map[string][]string{
		"web":  {"10.0.0.2", "10.0.0.3"},
		"nats": {"10.0.0.3"},
	})
	e.start()
	e.publish(subject.Log("d-1", "10.0.0.3", "web"), logLine("d-1", "10.0.0.3", "web", "10.0.0.3/web/install", 1, "web on .3"))
	e.publish(subject.Log("d-1", "10.0.0.2", "web"), logLine("d-1", "10.0.0.2", "web", "10.0.0.2/web/install", 1, "web on .2"))
	e.publish(subject.Log("d-1", "10.0.0.3", "nats"), logLine("d-1", "10.0.0.3", "nats", "", 1, "nats on .3\nforged line"))
	e.publish(subject.Log("d-1", "10.0.0.3", "node"), logLine("d-1", "10.0.0.3", "node", "10.0.0.3/node/agent", 1, "node step"))
	e.publish(subject.Log("d-1", "10.0.0.9", "web"), logLine("d-1", "10.0.0.9", "web", "", 1, "web not in config"))
	e.waitLines(5)

	want := map[string]string{
		"web_0.log":  "2026-11-25T12:00:00Z [d-1 10.0.0.2/web/install stdout] web on .2\n",
		"web_1.log":  "2026-11-25T12:00:00Z [d-1 10.0.0.3/web/install stdout] web on .3\n",
		"nats_0.log": "2026-11-25T12:00:00Z [d-1 - stdout] nats on .3\\nforged line\n",
		"local.log": "2026-11-25T12:00:00Z 10.0.0.3 [d-1 10.0.0.3/node/agent stdout] node step\n" +
			"2026-11-25T12:00:00Z 10.0.0.9 web [d-1 - stdout] web not in config\n",
	}
	for name, text := range want {
		if got := e.file(name); got != text {
			t.Errorf("%s:\n got %q\nwant %q", name, got, text)
		}
	}

	// A config change (scale out) is picked up on the first miss.
	e.putConfig(map[string][]string{"web": {"10.0.0.2", "10.0.0.3", "10.0.0.4"}, "nats": {"10.0.0.3"}})
	e.publish(subject.Log("d-2", "10.0.0.4", "web"), logLine("d-2", "10.0.0.4", "web", "s", 1, "new web"))
	e.waitLines(6)
	if got := e.file("web_2.log"); got != "2026-11-25T12:00:00Z [d-2 s stdout] new web\n" {
		t.Errorf("web_2.log: %q", got)
	}

	// Runtime lines from an agent go to the same instance file.
	rt := logLine("", "10.0.0.2", "web", "", 7, "GET / 200")
	rt.Stream = "/var/log/de-web/access.log"
	b, _ := json.Marshal(rt)
	if err := e.nc.Publish(subject.NodeLog("10.0.0.2", "web"), b); err != nil {
		t.Fatal(err)
	}
	e.waitLines(7)
	if got := e.file("web_0.log"); !strings.HasSuffix(got, "2026-11-25T12:00:00Z [runtime /var/log/de-web/access.log] GET / 200\n") {
		t.Errorf("web_0.log after a runtime line: %q", got)
	}

	rep := e.request("list", nil)
	var names []string
	if err := json.Unmarshal(rep.Body, &names); err != nil || rep.Code != 200 {
		t.Fatalf("list: %d %s %v", rep.Code, rep.Body, err)
	}
	if got := strings.Join(names, " "); got != "local.log nats_0.log web_0.log web_1.log web_2.log" {
		t.Errorf("list: %s", got)
	}
}

func TestLocalLog(t *testing.T) {
	e := newEnv(t, map[string][]string{"web": {"10.0.0.2"}})
	e.start()
	exit := 3
	fin := t0.Add(time.Minute)
	e.publish(subject.DeployEvent("d-1", subject.DeployStarted), contract.DeploymentEvent{V: 1, ID: "d-1", State: "running", Time: t0})
	e.publish(subject.DeployEvent("d-1", subject.DeployStep), contract.StepEvent{V: 1, Deployment: "d-1", ID: "10.0.0.2/web/install", Node: "10.0.0.2", Component: "web", Action: "install", State: "running", Attempt: 1})
	e.publish(subject.DeployEvent("d-1", subject.DeployStep), contract.StepEvent{V: 1, Deployment: "d-1", ID: "10.0.0.2/web/install", Node: "10.0.0.2", Component: "web", Action: "install", State: "failed", Attempt: 1, Finished: &fin, ExitCode: &exit, Error: "apt-get failed", Final: true})
	e.publish(subject.DeployEvent("d-1", subject.DeployFinished), contract.DeploymentEvent{V: 1, ID: "d-1", State: "failed", Changed: 2, Time: fin, Error: "1 step failed"})
	e.publish(subject.EngineEvent("restart"), contract.EngineEvent{V: 1, Kind: "restart", Time: fin, Message: "restart web on 10.0.0.2: ok"})
	e.publish(subject.ComponentEvent("web", "10.0.0.2", false), contract.ComponentEvent{V: 1, Component: "web", IP: "10.0.0.2", Time: fin, Reason: "monit: not running"})
	e.publish(subject.ComponentEvent("web", "10.0.0.2", true), contract.ComponentEvent{V: 1, Component: "web", IP: "10.0.0.2", Up: true, Time: fin})
	e.publish(subject.NodeEvent("10.0.0.2", subject.NodeUsage), map[string]any{"v": 1})
	e.nc.Publish(subject.EngineEvent("broken"), []byte("{not json"))
	e.waitLines(6)
	time.Sleep(100 * time.Millisecond) // nothing else may follow
	want := `2026-11-25T12:00:00Z deployment d-1 started
2026-11-25T12:01:00Z step 10.0.0.2/web/install failed on 10.0.0.2 (web install, deployment d-1, attempt 1, exit 3, final): apt-get failed
2026-11-25T12:01:00Z deployment d-1 finished: failed, 2 changed: 1 step failed
2026-11-25T12:01:00Z engine restart: restart web on 10.0.0.2: ok
2026-11-25T12:01:00Z component web on 10.0.0.2 down: monit: not running
2026-11-25T12:01:00Z component web on 10.0.0.2 up
`
	if got := e.file("local.log"); got != want {
		t.Errorf("local.log:\n%s\nwant:\n%s", got, want)
	}
}
