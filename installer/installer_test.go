package installer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

const secret = "s3cret-Value-42"

func storeConfig(t testing.TB, e *testEnv) {
	t.Helper()
	cfg := contract.Config{Components: map[string][]string{"x": {nodeIP}},
		Properties: contract.Properties{Domain: "t.local", Home: "127.0.0.1", Key: keyPath, Password: secret, User: "u"}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
}

// recorder keeps every event payload of a deployment.
type recorder struct {
	mu     sync.Mutex
	steps  []contract.StepEvent
	lines  []contract.LogLine
	frames []string
}

func record(t testing.TB, e *testEnv, dep string) *recorder {
	r := &recorder{}
	nc, err := e.srv.Connect("recorder")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, err = nc.Subscribe(subject.AllEvents, func(m *nats.Msg) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.frames = append(r.frames, string(m.Data))
		if _, err := subject.ParseLog(m.Subject); err == nil {
			var l contract.LogLine
			_ = json.Unmarshal(m.Data, &l)
			if l.Deployment == dep {
				r.lines = append(r.lines, l)
			}
			return
		}
		var ev contract.StepEvent
		_ = json.Unmarshal(m.Data, &ev)
		if ev.Deployment == dep {
			r.steps = append(r.steps, ev)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	return r
}

func (r *recorder) final(t *testing.T, timeout time.Duration) contract.StepEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, ev := range r.steps {
			if ev.Final {
				r.mu.Unlock()
				return ev
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no final step event within %s; got %+v", timeout, r.steps)
	return contract.StepEvent{}
}

func queue(t testing.TB, e *testEnv, s contract.Step) {
	t.Helper()
	s.V, s.Node, s.Engine = 1, nodeIP, "e-test"
	if s.Attempt == 0 {
		s.Attempt = 1
	}
	if s.ID == "" {
		s.ID = nodeIP + "/" + s.Component + "/" + s.Action
	}
	if s.Component == "" {
		s.Component = "x"
	}
	b, _ := json.Marshal(s)
	if _, err := e.res.JS.Publish(context.Background(), subject.Step(s.Deployment, nodeIP), b); err != nil {
		t.Fatal(err)
	}
}

func TestProbe(t *testing.T) {
	e := newEnv(t)
	var resolve []string
	ask := func(auth contract.Auth, nodes ...string) []contract.ProbeResult {
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(), contract.Probe{V: 1, Nodes: nodes, Auth: auth, TimeoutMS: 8000, Resolve: resolve})
		if err != nil || rep.Code != 200 {
			t.Fatalf("probe: %v %+v", err, rep)
		}
		var out contract.ProbeReply
		_ = json.Unmarshal(rep.Body, &out)
		return out.Nodes
	}
	r := ask(contract.Auth{Key: keyPath}, nodeIP, "127.0.77.2")
	if !r[0].Reachable || r[0].Hardware.CPU < 1 || r[0].Hardware.RAM < 100000 || r[0].Hardware.DISK < 100 {
		t.Fatalf("probe of a live node: %+v", r[0])
	}
	if r[1].Reachable || !strings.HasPrefix(r[1].Error, "refused: ") {
		t.Fatalf("probe of a closed port: %+v", r[1])
	}
	// The node's system, and its resolver's answers in the order asked.
	if r[0].OS.ID != "debian" || r[0].OS.VersionID == "" || !strings.HasPrefix(r[0].Monit, "5.") {
		t.Errorf("node system: %+v monit %q", r[0].OS, r[0].Monit)
	}
	// (Only names /etc/hosts answers: this node's resolver would send
	// others off the machine.)
	resolve = []string{"localhost", "localhost"}
	r = ask(contract.Auth{Key: keyPath}, nodeIP)
	if n := r[0].Names; len(n) != 2 || n[0].Name != "localhost" || len(n[0].Addrs) != 1 || n[0].Addrs[0] != "127.0.0.1" || n[1].Name != "localhost" {
		t.Errorf("names: %+v", n)
	}
	resolve = nil
	other := filepath.Join(t.TempDir(), "k")
	_ = exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).Run()
	r = ask(contract.Auth{Key: other}, nodeIP)
	if r[0].Reachable || !strings.HasPrefix(r[0].Error, "auth: ") || !strings.Contains(r[0].Error, "authentication failed") {
		t.Fatalf("probe with a wrong key: %+v", r[0])
	}
}

// A probe that unclaims removes the node's owner file only when it names
// that engine, and says so; a malformed engine id is refused before any
// node is contacted.
func TestProbeUnclaims(t *testing.T) {
	e := newEnv(t)
	ownerFile := nodePath(nodefs.Owner)
	if err := os.MkdirAll(filepath.Dir(ownerFile), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(ownerFile) })
	ask := func(unclaim string) (int, contract.ProbeResult) {
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(), contract.Probe{V: 1, Nodes: []string{nodeIP}, Auth: contract.Auth{Key: keyPath}, TimeoutMS: 8000, Unclaim: unclaim})
		if err != nil {
			t.Fatal(err)
		}
		var out contract.ProbeReply
		_ = json.Unmarshal(rep.Body, &out)
		if len(out.Nodes) == 0 {
			return rep.Code, contract.ProbeResult{}
		}
		return rep.Code, out.Nodes[0]
	}
	for _, tc := range []struct {
		name, owner, unclaim, wantOwner, wantUnclaimed, after string
	}{
		{"another engine's claim stays", "e-other\n", "e-gone", "e-other", "", "e-other\n"},
		{"the named engine's claim goes", "e-gone\n", "e-gone", "", "e-gone", ""},
		{"no claim, nothing to do", "", "e-gone", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(ownerFile)
			if tc.owner != "" {
				if err := os.WriteFile(ownerFile, []byte(tc.owner), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, r := ask(tc.unclaim)
			if code != 200 || !r.Reachable || r.Owner != tc.wantOwner || r.Unclaimed != tc.wantUnclaimed {
				t.Fatalf("probe unclaiming %s: %d %+v", tc.unclaim, code, r)
			}
			if b, _ := os.ReadFile(ownerFile); string(b) != tc.after {
				t.Errorf("owner file after: %q, want %q", b, tc.after)
			}
		})
	}
	if code, _ := ask("e-x; touch /tmp/de-pwned"); code != 400 {
		t.Errorf("a malformed engine id: %d, want 400", code)
	}
}

func TestStepRunsOnceThenUnchanged(t *testing.T) { forTransports(t, testStepRunsOnceThenUnchanged) }

func testStepRunsOnceThenUnchanged(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dir := t.TempDir()
	target := filepath.Join(dir, "etc", "app.conf")
	script := "set -eu\nfor i in 1 2 3; do echo line $i; done\necho oops >&2\necho \"secret is $DE_SECRET_PASSWORD\"\ncat " + target + "\n"
	step := contract.Step{Deployment: "d-1", Action: "install", Key: "x.install", Hash: uniq(), Script: script, TimeoutS: 30,
		SecretEnv: []string{"password"},
		Files:     []contract.StepFile{{Path: target, Mode: 0o640, Content: []byte("hello file\n")}}}
	r := record(t, e, "d-1")
	queue(t, e, step)
	ev := r.final(t, 20*time.Second)
	if ev.State != contract.StateSucceeded || ev.ExitCode == nil || *ev.ExitCode != 0 {
		t.Fatalf("step: %+v", ev)
	}
	st, err := os.Stat(target)
	if err != nil || st.Mode().Perm() != 0o640 {
		r.mu.Lock()
		t.Fatalf("uploaded file: %v %v; lines %+v", st, err, r.lines)
	}
	time.Sleep(200 * time.Millisecond)
	r.mu.Lock()
	var got, stdout []string
	for i, l := range r.lines {
		if l.Seq != int64(i+1) {
			t.Errorf("line %d has seq %d", i, l.Seq)
		}
		got = append(got, l.Line)
		if l.Stream == "stdout" {
			stdout = append(stdout, l.Line)
		}
	}
	all := strings.Join(r.frames, "\n")
	r.mu.Unlock()
	// Order holds within a stream; stderr may come between stdout lines.
	joined := strings.Join(got, "|") + "\n" + strings.Join(stdout, "|")
	for _, want := range []string{"line 1|line 2|line 3", "oops", "secret is <redacted>", "hello file"} {
		if !strings.Contains(joined, want) {
			t.Errorf("log lines %q lack %q", joined, want)
		}
	}
	if strings.Contains(all, secret) {
		t.Fatal("a secret reached an event")
	}

	if ev.Attempt != 1 {
		t.Errorf("first delivery of a step first queued: attempt %d", ev.Attempt)
	}

	// The same step in a later deployment has nothing to do. Queued again
	// after two tries, its delivery is its third.
	step.Deployment, step.Attempt = "d-2", 3
	r2 := record(t, e, "d-2")
	queue(t, e, step)
	if ev := r2.final(t, 20*time.Second); ev.State != contract.StateUnchanged || ev.Attempt != 3 {
		t.Fatalf("second run: %+v", ev)
	}
}

func TestFailingAndHungSteps(t *testing.T) { forTransports(t, testFailingAndHungSteps) }

func testFailingAndHungSteps(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	r := record(t, e, "d-3")
	queue(t, e, contract.Step{Deployment: "d-3", Action: "fail", Key: "x.fail", Hash: uniq(), Script: "echo about to fail >&2\nexit 3\n", TimeoutS: 30})
	ev := r.final(t, 20*time.Second)
	if ev.State != contract.StateFailed || ev.ExitCode == nil || *ev.ExitCode != 3 || !strings.Contains(ev.Error, "about to fail") {
		t.Fatalf("failing step: %+v", ev)
	}

	marker := "de-hung-" + time.Now().Format("150405.000")
	r = record(t, e, "d-4")
	start := time.Now()
	queue(t, e, contract.Step{Deployment: "d-4", Action: "hang", Key: "x.hang", Hash: uniq(), Script: "exec -a " + marker + " sleep 3600\n", TimeoutS: 2})
	ev = r.final(t, 30*time.Second)
	if ev.State != contract.StateFailed || !strings.Contains(ev.Error, "timed out") {
		t.Fatalf("hung step: %+v", ev)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("hung step took %s to fail", d)
	}
	time.Sleep(500 * time.Millisecond)
	if out, _ := exec.Command("pgrep", "-f", marker).Output(); len(out) > 0 {
		t.Fatalf("the hung command is still running on the node: pids %s", out)
	}
}

func TestHostKeyChange(t *testing.T) {
	e := newEnv(t)
	storeConfig(t, e)
	ctx := context.Background()
	if _, err := e.ins.dial(ctx, nodeIP, contract.Auth{Key: keyPath}); err != nil {
		t.Fatal(err)
	}
	stopSSHD()
	if err := newHostKey(); err != nil {
		t.Fatal(err)
	}
	if err := startSSHD(); err != nil {
		t.Fatal(err)
	}
	_, err := e.ins.dial(ctx, nodeIP, contract.Auth{Key: keyPath})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("dial after the host key changed: %v", err)
	}
	r := record(t, e, "d-5")
	queue(t, e, contract.Step{Deployment: "d-5", Action: "any", Key: "x.any", Hash: uniq(), Script: "true\n", TimeoutS: 10})
	if ev := r.final(t, 20*time.Second); ev.State != contract.StateFailed || !strings.Contains(ev.Error, "host key") {
		t.Fatalf("step on a node whose key changed: %+v", ev)
	}
}

// uniq is a fresh step hash: the node (this machine) keeps markers between runs.
func uniq() string { return fmt.Sprintf("%016x", time.Now().UnixNano()) }

// A step that claims its node records its engine as the node's owner
// before its script runs, and fails without running on a node another
// engine owns; a step that does not claim leaves the owner alone, whatever
// its action is called.
func TestClaimingStep(t *testing.T) { forTransports(t, testClaimingStep) }

func testClaimingStep(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	ownerFile := nodePath(nodefs.Owner)
	_ = os.Remove(ownerFile)
	t.Cleanup(func() { _ = os.Remove(nodePath(nodefs.Cluster)) })
	owner := func() string { b, _ := os.ReadFile(ownerFile); return string(b) }

	r := record(t, e, "d-6")
	queue(t, e, contract.Step{Deployment: "d-6", Action: "prepare", Key: "x.noclaim", Hash: uniq(), Script: "true\n", TimeoutS: 10})
	if ev := r.final(t, 20*time.Second); ev.State != contract.StateSucceeded || owner() != "" {
		t.Fatalf("a step that does not claim: %+v, owner %q", ev, owner())
	}

	r = record(t, e, "d-7")
	queue(t, e, contract.Step{Deployment: "d-7", Action: "take", Key: "x.claim", Hash: uniq(), Script: "echo owner is $(cat " + nodefs.Owner + ")\n", TimeoutS: 10, Claim: true})
	if ev := r.final(t, 20*time.Second); ev.State != contract.StateSucceeded || owner() != "e-test\n" {
		t.Fatalf("a claiming step: %+v, owner %q", ev, owner())
	}
	// The claim names the cluster too: this installer's is the default.
	if b, _ := os.ReadFile(nodePath(nodefs.Cluster)); string(b) != contract.DefaultCluster+"\n" {
		t.Errorf("the cluster a claim recorded: %q", b)
	}
	r.mu.Lock()
	saw := false
	for _, l := range r.lines {
		saw = saw || l.Line == "owner is e-test"
	}
	r.mu.Unlock()
	if !saw {
		t.Error("the script ran before the owner was written")
	}

	if err := os.WriteFile(ownerFile, []byte("e-other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(t.TempDir(), "ran")
	r = record(t, e, "d-8")
	queue(t, e, contract.Step{Deployment: "d-8", Action: "take", Key: "x.claim", Hash: uniq(), Script: "touch " + ran + "\n", TimeoutS: 10, Claim: true})
	ev := r.final(t, 20*time.Second)
	if ev.State != contract.StateFailed || !strings.Contains(ev.Error, "owned by engine e-other") || !strings.Contains(ev.Error, nodefs.Owner) {
		t.Fatalf("a claim on another engine's node: %+v", ev)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the script ran on another engine's node")
	}
	if owner() != "e-other\n" {
		t.Errorf("owner %q after a refused claim", owner())
	}
}

// Stop ends a probe in flight: its node's dial (here to a node that
// accepts and never speaks SSH, which would hold it for every try of its
// handshake) is cancelled, its requester answered, and no goroutine of it
// is left.
func TestStopEndsProbeInFlight(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.79.1:"+nodePort)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	base := runtime.NumGoroutine()
	answered := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := kit.Request(ctx, e.ins.o.NC, subject.InstallerProbe(), contract.Probe{V: 1, Nodes: []string{"127.0.79.1"}, Auth: contract.Auth{Key: keyPath}, TimeoutMS: 60000})
		answered <- err
	}()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("the probe never reached the silent node")
	}
	start := time.Now()
	e.ins.Stop()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Stop took %s with a probe in flight", took)
	}
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the probe's requester got no answer after Stop")
	}
	// Goroutines of the probe (its node's dial) end with it; the
	// installer's own (subscriptions, consumer) ended with Stop.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Stop, %d before the probe", runtime.NumGoroutine(), base)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A step whose files travel sealed is opened by the installer: the node
// gets the file's own bytes. A step message of a version newer than the
// installer reads is refused, never run.
func TestSealedStepFiles(t *testing.T) { forTransports(t, testSealedStepFiles) }

func testSealedStepFiles(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	bus.SetSealKey([]byte("installer-test-engine-key-0123456789"))
	dir := t.TempDir()
	target := filepath.Join(dir, "vault.conf")
	step := contract.Step{V: 1, Deployment: "d-sealed", ID: nodeIP + "/vault/apply", Node: nodeIP, Engine: "e-test", Component: "vault", Action: "apply", Attempt: 1,
		Key: "vault.apply-" + uniq(), Hash: uniq(), TimeoutS: 30, Script: "cat " + target + "\n",
		Files: []contract.StepFile{{Path: target, Mode: 0o600, Content: []byte("password=sealed-secret-1\n")}}}
	sum := sha256.Sum256(step.Files[0].Content)
	step.Files[0].SHA256 = hex.EncodeToString(sum[:])
	sealed := bus.SealStep(step)
	if !sealed.Files[0].Sealed || sealed.V != contract.StepVersionSealed {
		t.Fatalf("the step was not sealed: %+v", sealed.Files[0])
	}
	r := record(t, e, "d-sealed")
	b, _ := json.Marshal(sealed)
	if _, err := e.res.JS.Publish(context.Background(), subject.Step("d-sealed", nodeIP), b); err != nil {
		t.Fatal(err)
	}
	if ev := r.final(t, 30*time.Second); ev.State != contract.StateSucceeded {
		t.Fatalf("sealed step: %+v", ev)
	}
	if got, _ := os.ReadFile(target); string(got) != "password=sealed-secret-1\n" {
		t.Fatalf("the node got %q", got)
	}

	newer := step
	newer.V, newer.Deployment, newer.Hash = contract.StepVersionSealed+1, "d-newer", uniq()
	r = record(t, e, "d-newer")
	b, _ = json.Marshal(newer)
	if _, err := e.res.JS.Publish(context.Background(), subject.Step("d-newer", nodeIP), b); err != nil {
		t.Fatal(err)
	}
	if ev := r.final(t, 30*time.Second); ev.State != contract.StateFailed || !strings.Contains(ev.Error, "version") {
		t.Fatalf("a newer step message: %+v", ev)
	}
}
