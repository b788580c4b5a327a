package logsvc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
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
	b := bustest.Start(t, bus.ServerOptions{})
	e := &env{t: t, srv: b.Srv, nc: b.NC, res: b.Res, dir: t.TempDir()}
	e.o = Options{NC: b.NC, Res: b.Res, Dir: e.dir, Logger: quiet}
	if cfg != nil {
		e.putConfig(cfg)
	}
	t.Cleanup(func() {
		if e.svc != nil {
			e.svc.Stop()
		}
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

// fileOf is log name once it holds n lines: the service counts a line
// written when its batch took it, and the batch reaches the file at its
// flush, a moment later on a loaded machine.
func (e *env) fileOf(name string, n int) string {
	e.t.Helper()
	var text string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		text = e.file(name)
		if strings.Count(text, "\n") >= n || time.Now().After(deadline) {
			return text
		}
	}
}

func (e *env) request(subj string, body any) kit.Reply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := kit.Request(ctx, e.nc, subj, body)
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
	e.publish(subject.Log("d-1", "10.0.0.3", "_node"), logLine("d-1", "10.0.0.3", "_node", "10.0.0.3/_node/agent", 1, "node step"))
	e.publish(subject.Log("d-1", "10.0.0.9", "web"), logLine("d-1", "10.0.0.9", "web", "", 1, "web not in config"))
	e.waitLines(5)

	want := map[string]string{
		"web_0.log":  "2026-11-25T12:00:00Z [d-1 10.0.0.2/web/install stdout] web on .2\n",
		"web_1.log":  "2026-11-25T12:00:00Z [d-1 10.0.0.3/web/install stdout] web on .3\n",
		"nats_0.log": "2026-11-25T12:00:00Z [d-1 - stdout] nats on .3\\nforged line\n",
		"local.log": "2026-11-25T12:00:00Z 10.0.0.3 _node [d-1 10.0.0.3/_node/agent stdout] node step\n" +
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

	rep := e.request(subject.LogsList(), nil)
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
	e.publish(subject.HealEvent("gave-up"), map[string]any{"v": 1})
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

// publishBurst publishes n lines for each IP of web concurrently, one
// connection per node, as the installers would; it returns when the
// stream has stored them all.
func (e *env) publishBurst(ips []string, dep string, from, n int) {
	e.t.Helper()
	errs := make(chan error, len(ips))
	for _, ip := range ips {
		go func() {
			errs <- func() error {
				nc, err := e.srv.Connect("node-" + ip)
				if err != nil {
					return err
				}
				defer nc.Close()
				js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
				if err != nil {
					return err
				}
				subj := subject.Log(dep, ip, "web")
				for i := from; i < from+n; i++ {
					b, _ := json.Marshal(logLine(dep, ip, "web", ip+"/web/install", int64(i), "line "+strconv.Itoa(i)))
					if _, err := js.PublishAsync(subj, b, jetstream.WithStallWait(30*time.Second)); err != nil {
						return err
					}
				}
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(60 * time.Second):
					return errors.New("publish did not complete")
				}
				return nil
			}()
		}()
	}
	for range ips {
		if err := <-errs; err != nil {
			e.t.Fatal(err)
		}
	}
}

// checkSeqs asserts that name holds exactly the lines first..last, in order.
func checkSeqs(t testing.TB, text string, name string, first, last int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != last-first+1 {
		t.Fatalf("%s: %d lines, want %d", name, len(lines), last-first+1)
	}
	for i, l := range lines {
		j := strings.LastIndex(l, " line ")
		if j < 0 {
			t.Fatalf("%s:%d: %q", name, i+1, l)
		}
		if n, err := strconv.Atoi(l[j+6:]); err != nil || n != first+i {
			t.Fatalf("%s:%d: line %q, want seq %d", name, i+1, l, first+i)
		}
	}
}

// readAll reads a log through de.cmd.logs.read, in the largest chunks.
func (e *env) readAll(name string) string {
	e.t.Helper()
	var out []byte
	for {
		rep := e.request(subject.LogsRead(), contract.LogRead{Name: name, Offset: int64(len(out)), Length: 1 << 30})
		if rep.Code != 200 {
			e.t.Fatalf("read %s: %d %s", name, rep.Code, rep.Body)
		}
		var r contract.LogChunk
		if err := json.Unmarshal(rep.Body, &r); err != nil {
			e.t.Fatal(err)
		}
		if len(r.Data) > MaxRead {
			e.t.Fatalf("read %s: %d bytes, more than %d", name, len(r.Data), MaxRead)
		}
		if len(r.Data) == 0 {
			return string(out)
		}
		out = append(out, r.Data...)
	}
}

var webIPs = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}

func TestBurst(t *testing.T) {
	e := newEnv(t, map[string][]string{"web": webIPs})
	e.start()
	const per = 25_000
	start := time.Now()
	e.publishBurst(webIPs, "d-1", 1, per)
	e.waitLines(4 * per)
	t.Logf("100000 lines from 4 nodes published and written in %s", time.Since(start))
	for i := range webIPs {
		name := "web_" + strconv.Itoa(i) + ".log"
		disk := e.fileOf(name, per)
		checkSeqs(t, disk, name, 1, per)
		if bus := e.readAll(name); bus != disk {
			t.Fatalf("%s: read over the bus differs from the disk (%d vs %d bytes)", name, len(bus), len(disk))
		}
	}
}

func TestRestart(t *testing.T) {
	e := newEnv(t, map[string][]string{"web": webIPs[:2]})
	ips := webIPs[:2]
	e.publishBurst(ips, "d-1", 1, 40000)
	e.start()
	e.waitLines(1000)
	e.stop() // mid-way: the rest waits in the stream
	if n := strings.Count(e.file("web_0.log"), "\n") + strings.Count(e.file("web_1.log"), "\n"); n >= 80000 {
		t.Logf("the service had written all %d lines before it stopped; the resume below starts at the end", n)
	}
	e.publishBurst(ips, "d-1", 40001, 10000)
	e.start()
	// Resumed where it stopped: the files get to exactly 50000 lines each.
	waitFile := e.waitFile
	for i := range ips {
		name := "web_" + strconv.Itoa(i) + ".log"
		checkSeqs(t, waitFile(name, 50000), name, 1, 50000)
	}

	// The engine died after writing but before its acks reached the
	// server: the consumer is behind the store. Nothing is written twice.
	e.stop()
	ctx := context.Background()
	if err := e.res.JS.DeleteConsumer(ctx, bus.StreamEvents, Consumer); err != nil {
		t.Fatal(err)
	}
	if _, err := e.res.JS.CreateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: Consumer, AckPolicy: jetstream.AckAllPolicy, FilterSubject: subject.AllEvents}); err != nil {
		t.Fatal(err)
	}
	e.publishBurst(ips, "d-1", 50001, 100)
	pos, err := strconv.ParseUint(strings.TrimSpace(e.file(seqName)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	if c, err := e.res.JS.Consumer(ctx, bus.StreamEvents, Consumer); err != nil {
		t.Fatal(err)
	} else if ci := c.CachedInfo(); ci.Config.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || ci.Config.OptStartSeq != pos+1 {
		t.Errorf("consumer not reset to the store's position: %v from %d, store at %d", ci.Config.DeliverPolicy, ci.Config.OptStartSeq, pos)
	}
	for i := range ips {
		name := "web_" + strconv.Itoa(i) + ".log"
		checkSeqs(t, waitFile(name, 50100), name, 1, 50100)
	}

	// A store whose position file is gone resumes from the consumer's
	// ack floor rather than replaying the whole stream.
	e.stop()
	if err := os.Remove(filepath.Join(e.dir, seqName)); err != nil {
		t.Fatal(err)
	}
	e.publishBurst(ips, "d-1", 50101, 100)
	e.start()
	for i := range ips {
		name := "web_" + strconv.Itoa(i) + ".log"
		checkSeqs(t, waitFile(name, 50200), name, 1, 50200)
	}
}

func TestRotation(t *testing.T) {
	e := newEnv(t, map[string][]string{"web": webIPs[:1]})
	e.o.MaxBytes, e.o.Keep = 1000, 2
	s := e.start()
	e.publishBurst(webIPs[:1], "d-1", 1, 200)
	e.waitLines(200)
	var all string
	for _, name := range []string{"web_0.log.2", "web_0.log.1", "web_0.log"} {
		text := e.file(name)
		if len(text) > 1000 || len(text) == 0 {
			t.Errorf("%s: %d bytes", name, len(text))
		}
		all += text
	}
	if _, err := os.Lstat(filepath.Join(e.dir, "web_0.log.3")); !os.IsNotExist(err) {
		t.Errorf("web_0.log.3 kept: %v", err)
	}
	// What is kept is the newest lines, in order, without a gap.
	n := strings.Count(all, "\n")
	checkSeqs(t, all, "rotated", 201-n, 200)
	if got := testutil.ToFloat64(s.metrics.rotations); got < 3 {
		t.Errorf("rotations metric %v", got)
	}
	var names []string
	_ = json.Unmarshal(e.request(subject.LogsList(), nil).Body, &names)
	if got := strings.Join(names, " "); got != "local.log web_0.log web_0.log.1 web_0.log.2" {
		t.Errorf("list: %s", got)
	}
	if got := e.readAll("web_0.log.1"); got != e.file("web_0.log.1") {
		t.Errorf("read web_0.log.1: %q", got)
	}
}

// waitFile waits until name has n lines (or 30 s), then a little more, so
// that a line too many would show.
func (e *env) waitFile(name string, n int) string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		text, _ := os.ReadFile(filepath.Join(e.dir, name))
		if strings.Count(string(text), "\n") >= n || time.Now().After(deadline) {
			time.Sleep(50 * time.Millisecond)
			return e.file(name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriteFailure(t *testing.T) {
	e := newEnv(t, map[string][]string{"web": webIPs[:2]})
	ips := webIPs[:2]
	s := e.start()
	e.publishBurst(ips, "d-1", 1, 1000)
	for i := range ips {
		e.waitFile("web_"+strconv.Itoa(i)+".log", 1000)
	}
	// The next two batches reach the disk but their flush reports an
	// error (a full disk, say): each is undone and delivered again.
	s.st.failFlushes.Store(2)
	e.publishBurst(ips, "d-1", 1001, 3000)
	for i := range ips {
		name := "web_" + strconv.Itoa(i) + ".log"
		checkSeqs(t, e.waitFile(name, 4000), name, 1, 4000)
	}
	if n := s.st.failFlushes.Load(); n != 0 {
		t.Errorf("%d injected failures did not happen", n)
	}
}

// A service's own log may print the config's secrets: they never reach
// the store.
func TestRuntimeLinesLoseSecrets(t *testing.T) {
	e := newEnv(t, map[string][]string{"web": {"10.0.0.2"}})
	b, _ := json.Marshal(contract.Config{Components: map[string][]string{"web": {"10.0.0.2"}},
		Properties: contract.Properties{Password: "hunter2-pass", Root: "r00t-pass"}})
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	e.start()
	rt := logLine("", "10.0.0.2", "web", "", 1, "login user=de password=hunter2-pass root=r00t-pass")
	rt.Stream = "/var/log/app.log"
	b, _ = json.Marshal(rt)
	if err := e.nc.Publish(subject.NodeLog("10.0.0.2", "web"), b); err != nil {
		t.Fatal(err)
	}
	e.waitLines(1)
	got := e.file("web_0.log")
	if strings.Contains(got, "hunter2") || strings.Contains(got, "r00t") || !strings.Contains(got, "password="+contract.Redacted) {
		t.Fatalf("web_0.log: %q", got)
	}
}
