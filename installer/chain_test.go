package installer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

// sessionShell prints the session its shell runs in: one SSH session's
// commands share the session sshd made for it; a chain its agent runs
// itself runs every step in the agent's.
const sessionShell = `read -r _ _ _ _ _ sid _ < /proc/$$/stat
echo "session $sid"
`

// events are the recorder's events of step id, in order.
func (r *recorder) events(id string) []contract.StepEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []contract.StepEvent
	for _, ev := range r.steps {
		if ev.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

func (r *recorder) linesOf(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if l.Step == id {
			out = append(out, l.Line)
		}
	}
	return out
}

// chainStep is a step of component c on the test node for a chain.
func chainStep(dep, action, key, hash, script string) contract.Step {
	return contract.Step{V: 1, Deployment: dep, ID: nodeIP + "/c/" + action, Node: nodeIP, Component: "c", Action: action, Attempt: 1,
		Key: key, Hash: hash, Engine: "e-test", TimeoutS: 30, Script: script}
}

// A node's chained steps run in one SSH session, in order, each with its
// own events, lines, file and marker; the chain stops at the first step
// that fails, and the steps after it are neither run nor reported.
func TestChainRunsInOneSession(t *testing.T) { forTransports(t, testChainRunsInOneSession) }

func testChainRunsInOneSession(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dep := "d-chain"
	r := record(t, e, dep)
	dir := t.TempDir()
	step := func(action, script string, files ...contract.StepFile) contract.Step {
		st := chainStep(dep, action, "c."+action+"-"+uniq(), uniq(), script)
		st.Files = files
		return st
	}
	conf := contract.StepFile{Path: dir + "/c.conf", Mode: 0o640, Content: []byte("port 1\n")}
	head := step("upload", "cat "+conf.Path+"\n", conf)
	// A step of files only starts no shell: the chain writes its marker.
	more := contract.StepFile{Path: dir + "/c.more", Mode: 0o600, Content: []byte("more\n")}
	files := step("files", "true\n", more)
	head.Chain = []contract.Step{
		files,
		step("install", sessionShell+"echo oops >&2\n"),
		step("register", sessionShell+"read -r _ _ _ pp _ < /proc/$$/stat; echo \"parent $(cat /proc/$pp/comm)\"\n"),
		step("start", "exit 3\n"),
		step("after", "touch "+dir+"/ran\n"),
	}
	// The first two, with the head, share a session.
	head.Script = sessionShell + head.Script
	queue(t, e, head)
	deadline := time.Now().Add(30 * time.Second)
	for evs := r.events(nodeIP + "/c/start"); len(evs) == 0 || !evs[len(evs)-1].Final; evs = r.events(nodeIP + "/c/start") {
		if time.Now().After(deadline) {
			t.Fatalf("the chain did not reach its failing step: %+v", r.steps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // nothing more may come
	sessions := map[string]bool{}
	for _, a := range []string{"upload", "install", "register"} {
		id := nodeIP + "/c/" + a
		evs := r.events(id)
		if len(evs) != 2 || evs[0].State != contract.StateRunning || evs[1].State != contract.StateSucceeded || !evs[1].Final {
			t.Errorf("%s: events %+v, want running then succeeded", a, evs)
		}
		for _, l := range r.linesOf(id) {
			if strings.HasPrefix(l, "session ") {
				sessions[l] = true
			}
		}
	}
	if len(sessions) != 1 {
		t.Errorf("the chain's steps ran in %d sessions (%v), want one", len(sessions), sessions)
	}
	// Through the agent, the agent runs the chain itself: a step's shell
	// is its child, where over SSH the step runs in the chain script's
	// shell, the session's.
	want := "parent sshd"
	if tr.agent {
		want = "parent installer.test"
	}
	if got := r.linesOf(nodeIP + "/c/register"); !contains(got, want) {
		t.Errorf("register lines %q: want %q", got, want)
	}
	if got := r.linesOf(nodeIP + "/c/upload"); !contains(got, "sent "+conf.Path) || !contains(got, "port 1") {
		t.Errorf("upload lines %q: want the file sent and read back", got)
	}
	if evs := r.events(files.ID); len(evs) != 2 || evs[1].State != contract.StateSucceeded || !contains(r.linesOf(files.ID), "sent "+more.Path) {
		t.Errorf("files: events %+v lines %q, want its file sent and succeeded", evs, r.linesOf(files.ID))
	}
	if b, err := os.ReadFile(nodePath(nodefs.Marker(files.Key))); err != nil || string(b) != files.Hash+" "+dep+"\n" {
		t.Errorf("files: marker %q (%v), want %q", b, err, files.Hash+" "+dep)
	}
	if _, err := os.Stat(nodePath(nodefs.Run + "/" + nodefs.MarkerName(files.Key) + ".pgid")); !os.IsNotExist(err) {
		t.Errorf("files: a shell ran for a step of files only (its run record: %v)", err)
	}
	if got := r.linesOf(nodeIP + "/c/install"); !contains(got, "oops") {
		t.Errorf("install lines %q: want its stderr", got)
	}
	st := r.events(nodeIP + "/c/start")
	last := st[len(st)-1]
	if last.State != contract.StateFailed || last.ExitCode == nil || *last.ExitCode != 3 {
		t.Errorf("failing step: %+v", last)
	}
	if evs := r.events(nodeIP + "/c/after"); len(evs) != 0 {
		t.Errorf("a step after the failure was reported: %+v", evs)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Error("a step after the failure ran")
	}
	waitEmpty(t, e)

	// Run again, the chain finds its done steps' markers: no script runs.
	r2 := record(t, e, dep)
	head.Chain = head.Chain[:3]
	head.Attempt = 1
	queue(t, e, head)
	deadline = time.Now().Add(20 * time.Second)
	for evs := r2.events(nodeIP + "/c/register"); len(evs) == 0 || !evs[len(evs)-1].Final; evs = r2.events(nodeIP + "/c/register") {
		if time.Now().After(deadline) {
			t.Fatalf("the chain again: %+v", r2.steps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range []string{"upload", "install", "register"} {
		id := nodeIP + "/c/" + a
		evs := r2.events(id)
		if len(evs) == 0 || evs[len(evs)-1].State != contract.StateSucceeded || len(r2.linesOf(id)) != 0 {
			t.Errorf("%s again: events %+v lines %q, want succeeded from its marker without running", a, evs, r2.linesOf(id))
		}
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// A chain cancelled while it waits for an earlier run of its step starts
// nothing more on the node: not that step once the earlier run is gone,
// nor any after it.
func TestCancelledChainStartsNothing(t *testing.T) { forTransports(t, testCancelledChainStartsNothing) }

func testCancelledChainStartsNothing(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dep := "d-chain-cancel"
	r := record(t, e, dep)
	dir := t.TempDir()
	key, hash := "c.first-"+uniq(), uniq()
	// An earlier run of the same step, alive until its deadline an hour
	// away: the chain waits for it.
	tag := "de-orphan-" + uniq()
	orphan := exec.Command("setsid", "bash", "-c", "exec -a "+tag+" sleep 3600")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	// Reaped as soon as it dies, as an orphan on a node is.
	go func() { _ = orphan.Wait() }()
	t.Cleanup(func() { _ = orphan.Process.Kill() })
	if err := os.MkdirAll(nodePath(nodefs.Run), 0o755); err != nil {
		t.Fatal(err)
	}
	pgid := nodePath(fmt.Sprintf("%s/%s.pgid", nodefs.Run, nodefs.MarkerName(key)))
	if err := os.WriteFile(pgid, []byte(fmt.Sprintf("%d %s d-earlier %d\n", orphan.Process.Pid, hash, time.Now().Add(time.Hour).Unix())), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(pgid) })
	head := chainStep(dep, "first", key, hash, "touch "+dir+"/first\n")
	head.Chain = []contract.Step{chainStep(dep, "second", "c.second-"+uniq(), uniq(), "touch "+dir+"/second\n")}
	queue(t, e, head)
	deadline := time.Now().Add(15 * time.Second)
	for len(r.events(head.ID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the chain never began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // waiting for the earlier run
	b, _ := json.Marshal(contract.StepCancel{V: 1, Deployment: dep, Reason: "test"})
	if err := e.ins.o.NC.Publish(subject.InstallerCancel(), b); err != nil {
		t.Fatal(err)
	}
	ev := r.final(t, 20*time.Second)
	if ev.State != contract.StateFailed || !strings.Contains(ev.Error, "cancelled") {
		t.Fatalf("cancelled chain: %+v", ev)
	}
	time.Sleep(1500 * time.Millisecond)
	for _, f := range []string{"first", "second"} {
		if _, err := os.Stat(dir + "/" + f); err == nil {
			t.Errorf("step %s ran after its chain was cancelled", f)
		}
	}
	// The run it waited for is another deployment's: the cancel kills the
	// cancelled deployment's runs only (the next deployment's run of the
	// step, begun while the cancel went on, has the same run file).
	if err := orphan.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the cancel killed another deployment's run of the step: %v", err)
	}
	waitEmpty(t, e)
}

// A node the deploy's check reached keeps that connection for its steps:
// one SSH handshake per node, not two.
func TestProbedConnectionServesTheSteps(t *testing.T) {
	e := newEnv(t)
	storeConfig(t, e)
	e.ins.closeAll()
	before := testutil.ToFloat64(e.ins.metrics.conns)
	rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(), contract.Probe{V: 1, Nodes: []string{nodeIP}, Auth: contract.Auth{Key: keyPath}, TimeoutMS: 8000})
	if err != nil || rep.Code != 200 {
		t.Fatalf("probe: %v %+v", err, rep)
	}
	r := record(t, e, "d-probed")
	queue(t, e, contract.Step{Deployment: "d-probed", Action: "install", Key: "x.probed-" + uniq(), Hash: uniq(), TimeoutS: 30, Script: "true\n"})
	if ev := r.final(t, 20*time.Second); ev.State != contract.StateSucceeded {
		t.Fatalf("step: %+v", ev)
	}
	if n := testutil.ToFloat64(e.ins.metrics.conns) - before; n != 1 {
		t.Errorf("%v connections for a probe and a step on one node, want 1", n)
	}
}

// The chain's settle function is derived from a step alone's by replacing
// pieces of its text: a change there must not leave them silently
// unreplaced.
func TestChainSettleDerived(t *testing.T) {
	if strings.Contains(chainSettle, "exit ") || !strings.Contains(chainSettle, "return 0") {
		t.Errorf("chainSettle exits instead of returning:\n%s", chainSettle)
	}
}

// A chain whose steps are not all of the head's node, deployment and
// engine, or lack what a step alone must have, is refused before anything
// runs (the installer reports it unreadable).
func TestReadChain(t *testing.T) {
	ok := func() contract.Step { return chainStep("d-r", "b", "c.b", "0123456789abcdef", "true\n") }
	cases := []struct {
		name  string
		mod   func(*contract.Step)
		valid bool
	}{
		{"same node, deployment and engine", func(*contract.Step) {}, true},
		{"another node", func(s *contract.Step) { s.Node = "127.0.77.9" }, false},
		{"another deployment", func(s *contract.Step) { s.Deployment = "d-other" }, false},
		{"another engine", func(s *contract.Step) { s.Engine = "e-other" }, false},
		{"no id", func(s *contract.Step) { s.ID = "" }, false},
		{"no valid hash", func(s *contract.Step) { s.Hash = "zz" }, false},
		{"a chain of its own", func(s *contract.Step) { s.Chain = []contract.Step{ok()} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			head := chainStep("d-r", "a", "c.a", "0123456789abcdef", "true\n")
			f := ok()
			c.mod(&f)
			head.Chain = []contract.Step{f}
			if err := readChain(head); (err == nil) != c.valid {
				t.Errorf("readChain: %v, want valid %v", err, c.valid)
			}
		})
	}
}

// A step's script may set its own EXIT trap, or clear one, and exit: the
// installer's trap that records the step as done is not its to replace.
// Alone and in a chain, a step that succeeds leaves its marker; one that
// exits non-zero leaves none.
func TestScriptTrapsKeepTheMarker(t *testing.T) { forTransports(t, testScriptTrapsKeepTheMarker) }

func testScriptTrapsKeepTheMarker(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dep := "d-traps"
	r := record(t, e, dep)
	const own = "trap 'echo bye' EXIT\ntrap - EXIT\necho done\n"
	alone := chainStep(dep, "alone", "c.alone-"+uniq(), uniq(), own)
	queue(t, e, alone)
	head := chainStep(dep, "head", "c.head-"+uniq(), uniq(), own)
	second := chainStep(dep, "second", "c.second-"+uniq(), uniq(), "trap 'rm -f /nonexistent' EXIT\nexit 0\n")
	failing := chainStep(dep, "failing", "c.failing-"+uniq(), uniq(), "trap 'echo bye' EXIT\nexit 3\n")
	head.Chain = []contract.Step{second, failing}
	queue(t, e, head)
	steps := []contract.Step{alone, head, second, failing}
	r.awaitEnded(t, steps...)
	markedBut(t, failing, steps...)
}

// awaitEnded waits up to a minute until each of steps has its final event.
func (r *recorder) awaitEnded(t *testing.T, steps ...contract.Step) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range steps {
		for {
			if evs := r.events(s.ID); len(evs) > 0 && evs[len(evs)-1].Final {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %s never ended: %+v", s.ID, r.steps)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// markedBut checks that every one of steps left its marker on the node,
// except failed, which left none.
func markedBut(t *testing.T, failed contract.Step, steps ...contract.Step) {
	t.Helper()
	for _, s := range steps {
		b, _ := os.ReadFile(nodePath(nodefs.Marker(s.Key)))
		recorded := strings.HasPrefix(string(b), s.Hash+" ")
		if want := s.ID != failed.ID; recorded != want {
			t.Errorf("step %s: marker %q, recorded %v, want %v", s.ID, b, recorded, want)
		}
	}
}

// A bare script runs in the step's shell itself, the leader of the step's
// process group, where any other runs in a subshell of it; its exit runs
// the trap that records the step: exit 0 leaves the marker, a failure
// none, alone and in a chain.
func TestBareScriptRunsInTheStepShell(t *testing.T) {
	forTransports(t, testBareScriptRunsInTheStepShell)
}

func testBareScriptRunsInTheStepShell(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dep := "d-bare"
	r := record(t, e, dep)
	const shell = "read -r _ _ _ _ pg _ < /proc/$BASHPID/stat\nif [ \"$pg\" = \"$BASHPID\" ]; then echo 'in the step shell'; else echo 'in a subshell'; fi\n"
	bare := func(action, script string) contract.Step {
		s := chainStep(dep, action, "c."+action+"-"+uniq(), uniq(), script)
		s.Bare = true
		return s
	}
	alone := bare("alone", "exit 0\necho never\n")
	queue(t, e, alone)
	head := chainStep(dep, "head", "c.head-"+uniq(), uniq(), shell)
	inShell, early, failing := bare("bare", shell), bare("early", "exit 0\necho never\n"), bare("failing", "exit 3\n")
	head.Chain = []contract.Step{inShell, early, failing}
	queue(t, e, head)
	steps := []contract.Step{alone, head, inShell, early, failing}
	r.awaitEnded(t, steps...)
	if got := r.linesOf(head.ID); !contains(got, "in a subshell") {
		t.Errorf("a script not bare: lines %q, want it in a subshell of the step's shell", got)
	}
	if got := r.linesOf(inShell.ID); !contains(got, "in the step shell") {
		t.Errorf("a bare script: lines %q, want it in the step's shell", got)
	}
	for _, s := range []contract.Step{alone, early} {
		if contains(r.linesOf(s.ID), "never") {
			t.Errorf("step %s went on after its exit: %q", s.ID, r.linesOf(s.ID))
		}
	}
	markedBut(t, failing, steps...)
}

// A deploy's check of a node whose agent takes commands goes through the
// agent: a deploy then opens no SSH connection at all. A config's check
// (names to resolve) proves SSH itself.
func TestProbeThroughTheAgent(t *testing.T) {
	e := transport{name: "agent", agent: true}.env(t)
	e.agent.mixed = true // the config's check below goes over SSH
	storeConfig(t, e)
	e.ins.closeAll()
	conns, agentRuns := testutil.ToFloat64(e.ins.metrics.conns), testutil.ToFloat64(e.ins.metrics.agentRuns)
	probe := func(resolve ...string) contract.ProbeResult {
		t.Helper()
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(), contract.Probe{V: 1, Nodes: []string{nodeIP}, Auth: contract.Auth{Key: keyPath}, TimeoutMS: 8000, Resolve: resolve})
		var out contract.ProbeReply
		if err != nil || rep.Code != 200 || json.Unmarshal(rep.Body, &out) != nil || len(out.Nodes) != 1 || !out.Nodes[0].Reachable {
			t.Fatalf("probe: %v %+v", err, rep)
		}
		return out.Nodes[0]
	}
	if r := probe(); r.Hardware.CPU < 1 {
		t.Errorf("the check through the agent read no hardware: %+v", r)
	}
	if n := testutil.ToFloat64(e.ins.metrics.conns) - conns; n != 0 {
		t.Errorf("a deploy's check through the agent opened %v SSH connections", n)
	}
	if testutil.ToFloat64(e.ins.metrics.agentRuns) == agentRuns {
		t.Error("the deploy's check did not go through the agent")
	}
	probe("localhost")
	if n := testutil.ToFloat64(e.ins.metrics.conns) - conns; n != 1 {
		t.Errorf("a config's check opened %v SSH connections, want 1", n)
	}
}

// A step whose marker says it is done runs again when its Holds fails on
// the node (a start step whose process went), alone or in a chain; while
// Holds passes it is unchanged.
func TestMarkerCountsOnlyWhileItHolds(t *testing.T) {
	forTransports(t, testMarkerCountsOnlyWhileItHolds)
}

func testMarkerCountsOnlyWhileItHolds(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dir := t.TempDir()
	up, runs := dir+"/up", dir+"/runs"
	start := chainStep("", "start", "h.start-"+uniq(), uniq(), "echo run >> "+runs+"\ntouch "+up+"\n")
	start.Holds = "test -e " + up
	run := func(dep string, chained bool) string {
		t.Helper()
		r := record(t, e, dep)
		s := start
		s.Deployment = dep
		if chained {
			head := chainStep(dep, "before", "h.before-"+uniq(), uniq(), ":\n")
			head.Chain = []contract.Step{s}
			s = head
		}
		queue(t, e, s)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if evs := r.events(start.ID); len(evs) > 0 && evs[len(evs)-1].Final {
				return evs[len(evs)-1].State
			}
		}
		t.Fatalf("%s: no final event of the start step: %+v", dep, r.steps)
		return ""
	}
	ran := func() int {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), "run\n")
	}
	for _, c := range []struct {
		dep     string
		chained bool
		gone    bool // the process went: Holds fails
		want    string
		runs    int
	}{
		{"d-h1", false, false, contract.StateSucceeded, 1},
		{"d-h2", false, false, contract.StateUnchanged, 1},
		{"d-h3", false, true, contract.StateSucceeded, 2},
		{"d-h4", true, false, contract.StateUnchanged, 2},
		{"d-h5", true, true, contract.StateSucceeded, 3},
	} {
		if c.gone {
			if err := os.Remove(up); err != nil {
				t.Fatal(err)
			}
		}
		if got := run(c.dep, c.chained); got != c.want || ran() != c.runs {
			t.Errorf("%s (chained %v, gone %v): %s after %d runs, want %s after %d", c.dep, c.chained, c.gone, got, ran(), c.want, c.runs)
		}
	}
}

// A chain's step runs under its own lock and none of another's: a lock
// held when the chain begins is waited for at the step's turn, and when
// the chain has ended every lock is free, though a process a step started
// lives on.
// Over SSH it does so also past the steps whose locks the chain takes at
// its start (maxPreLocks), where each step takes its own.
func TestChainLocksGoWithTheirSteps(t *testing.T) {
	forTransports(t, testChainLocksGoWithTheirSteps)
	t.Run("ssh, one lock taken at the start", func(t *testing.T) {
		defer func(n int) { maxPreLocks = n }(maxPreLocks)
		maxPreLocks = 1
		testChainLocksGoWithTheirSteps(t, transports[0])
	})
}

func testChainLocksGoWithTheirSteps(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	dep := "d-locks"
	r := record(t, e, dep)
	dir := t.TempDir()
	lock := func(key string) string { return nodePath(nodefs.Run + "/" + nodefs.MarkerName(key) + ".lock") }
	if err := os.MkdirAll(nodePath(nodefs.Run), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b, c := "c.a-"+uniq(), "c.b-"+uniq(), "c.c-"+uniq()
	// Step b's lock is another run's for a second after the chain is sent.
	held, err := os.OpenFile(lock(b), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	daemon := dir + "/daemon.pid"
	head := chainStep(dep, "a", a, uniq(), "flock -n "+nodefs.Run+"/"+nodefs.MarkerName(a)+".lock true && echo 'a free' || echo 'a held'\n"+
		"setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! > "+daemon+"\n")
	head.Chain = []contract.Step{
		chainStep(dep, "b", b, uniq(), "date +%s%N > "+dir+"/b\n"),
		chainStep(dep, "c", c, uniq(), "true\n"),
	}
	queue(t, e, head)
	time.Sleep(time.Second)
	released := time.Now()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	last := head.Chain[1].ID
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if evs := r.events(last); len(evs) > 0 && evs[len(evs)-1].Final {
			if ev := evs[len(evs)-1]; ev.State != contract.StateSucceeded {
				t.Fatalf("the chain's last step ended %+v", ev)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chain did not end: %+v", r.steps)
		}
	}
	t.Cleanup(func() {
		if p, err := os.ReadFile(daemon); err == nil {
			_ = exec.Command("kill", strings.TrimSpace(string(p))).Run()
		}
	})
	if got := r.linesOf(head.ID); !contains(got, "a held") {
		t.Errorf("step a's lines %q: its lock was not held while it ran", got)
	}
	if raw, err := os.ReadFile(dir + "/b"); err != nil {
		t.Errorf("step b did not run: %v", err)
	} else if ns, _ := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); time.Unix(0, ns).Before(released) {
		t.Errorf("step b ran %v before its lock was free", released.Sub(time.Unix(0, ns)))
	}
	if _, err := os.Stat(daemon); err != nil {
		t.Fatalf("step a's process: %v", err)
	}
	for _, k := range []string{a, b, c} {
		f, err := os.OpenFile(lock(k), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Errorf("%s's lock is still held after the chain: %v", k, err)
		}
		f.Close()
	}
}

// preLock takes the locks that are free, one perl for them all, and
// leaves a lock another holds, or every lock where perl is missing, to
// the step's own flock.
func TestPreLock(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("no perl")
	}
	dir := t.TempDir()
	var runs []*stepRun
	for _, k := range []string{"free-1", "held", "free-2"} {
		runs = append(runs, &stepRun{s: contract.Step{Key: k}})
	}
	var b strings.Builder
	preLock(&b, runs)
	held, err := os.OpenFile(filepath.Join(dir, nodefs.MarkerName("held")+".lock"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	run := func(path string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", strings.ReplaceAll(b.String(), nodefs.Run+"/", dir+"/")+`printf '%s' "$de_held"`)
		cmd.Env = append(os.Environ(), "PATH="+path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(out)
	}
	if got := run(os.Getenv("PATH")); got != "101" {
		t.Errorf("de_held %q, want 101 (the second lock is another's)", got)
	}
	if got := run("/nonexistent"); got != "" {
		t.Errorf("without perl de_held %q, want none", got)
	}
}
