package installer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// benchSteps is how many trivial steps a benchmark chain has.
const benchSteps = 5

// BenchmarkChain runs, per iteration, a chain of benchSteps trivial steps
// on the test node over SSH, as a deploy's component does, and reports what
// a step costs:
//   - node-cpu-ms/step: CPU time of everything the node ran for the chain
//     (its sshd and all it started), from a cpuacct cgroup the benchmark puts
//     the node's sshd in;
//   - engine-cpu-ms/step: this process's CPU (installer, bus, recorder);
//   - forks/step and execs/step: the processes the node created for one
//     more chain, counted by strace following the node's sshd.
//
// Run it alone: go test -run '^$' -bench BenchmarkChain -benchtime 20x .
func BenchmarkChain(b *testing.B) {
	e := newEnv(b)
	storeConfig(b, e)
	done := chainWaiter(b, e)
	run := func(n int) {
		b.Helper()
		dep := fmt.Sprintf("d-bench-%d-%s", n, uniq())
		head := chainStep(dep, "s0", "c.s0-"+uniq(), uniq(), "true\n")
		for k := 1; k < benchSteps; k++ {
			a := "s" + strconv.Itoa(k)
			head.Chain = append(head.Chain, chainStep(dep, a, "c."+a+"-"+uniq(), uniq(), "true\n"))
		}
		queue(b, e, head)
		select {
		case ev := <-done:
			if ev.Deployment != dep || ev.State != contract.StateSucceeded {
				b.Fatalf("chain %d ended %+v", n, ev)
			}
		case <-time.After(60 * time.Second):
			b.Fatalf("chain %d did not end within a minute", n)
		}
	}
	run(-1) // the connection, and the node's run directory, exist
	cg := nodeCPUGroup(b)
	before, self := cg.usage(b), selfCPU()
	b.ResetTimer()
	for n := range b.N {
		run(n)
	}
	b.StopTimer()
	steps := float64(b.N * benchSteps)
	b.ReportMetric(float64(cg.usage(b)-before)/1e6/steps, "node-cpu-ms/step")
	b.ReportMetric(float64(selfCPU()-self)/1e6/steps, "engine-cpu-ms/step")
	forks, execs, err := countForks(func() { run(b.N) })
	if err != nil {
		b.Logf("no process count: %v", err)
		return
	}
	b.ReportMetric(float64(forks)/benchSteps, "forks/step")
	b.ReportMetric(float64(execs)/benchSteps, "execs/step")
}

// BenchmarkAgentCommand runs, per iteration, one command through a real
// agent executor (in this process, with the installer) and reports what
// it allocates (B/op): what each command in flight through a node's agent
// costs the engine's memory, 100 at once in a deployment to 100 nodes.
func BenchmarkAgentCommand(b *testing.B) {
	e := transports[1].env(b)
	c := e.ins.agents.conn(context.Background(), nodeIP, nil)
	if c == nil {
		b.Fatal("the test node's agent takes no command")
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		out, _ := s.StdoutPipe()
		if err := s.Start("echo ok", nil); err != nil {
			b.Fatal(err)
		}
		got, _ := io.ReadAll(out)
		if err := s.Wait(); err != nil || string(got) != "ok\n" {
			b.Fatalf("the command ended %v with %q, want ok", err, got)
		}
		s.Close()
	}
}

// chainWaiter delivers each benchmark chain's last step's final event.
func chainWaiter(b *testing.B, e *testEnv) <-chan contract.StepEvent {
	nc, err := e.srv.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	out := make(chan contract.StepEvent, 1)
	last := fmt.Sprintf("/c/s%d", benchSteps-1)
	_, err = nc.Subscribe(subject.AllEvents, func(m *nats.Msg) {
		if _, err := subject.ParseLog(m.Subject); err == nil {
			return
		}
		var ev contract.StepEvent
		if json.Unmarshal(m.Data, &ev) != nil || !ev.Final {
			return
		}
		if strings.HasSuffix(ev.ID, last) || ev.State != contract.StateSucceeded {
			out <- ev
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	return out
}

// selfCPU is this process's CPU time so far, in nanoseconds.
func selfCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// cpuGroup is a cpuacct cgroup (v1) holding the node's sshd, so that all
// the node runs is counted there: a step's cgroup v2, when it joins one,
// is another hierarchy and does not take it out.
type cpuGroup struct{ dir string }

const cpuacctRoot = "/sys/fs/cgroup/cpuacct"

func nodeCPUGroup(b *testing.B) cpuGroup {
	b.Helper()
	if _, err := os.Stat(filepath.Join(cpuacctRoot, "cpuacct.usage")); err != nil {
		b.Skipf("no cgroup v1 cpuacct hierarchy at %s to count the node's CPU in", cpuacctRoot)
	}
	g := cpuGroup{dir: filepath.Join(cpuacctRoot, fmt.Sprintf("de-installer-bench-%d", os.Getpid()))}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, p := range nodeProcs() {
		// A session's process may end meanwhile; the sshd may not.
		if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(p)), 0o644); err != nil && p == sshd.Process.Pid {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		// What is left in it goes back where the node was.
		for range 50 {
			procs, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
			for _, p := range strings.Fields(string(procs)) {
				_ = os.WriteFile(filepath.Join(cpuacctRoot, "cgroup.procs"), []byte(p), 0o644)
			}
			if os.Remove(g.dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Errorf("could not remove %s", g.dir)
	})
	return g
}

// usage is the group's CPU time so far, in nanoseconds.
func (g cpuGroup) usage(b *testing.B) int64 {
	s, err := os.ReadFile(filepath.Join(g.dir, "cpuacct.usage"))
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// nodeProcs are the test node's sshd and every process under it.
func nodeProcs() []int {
	children := map[int][]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		children[parentOf(pid)] = append(children[parentOf(pid)], pid)
	}
	out := []int{sshd.Process.Pid}
	for k := 0; k < len(out); k++ {
		out = append(out, children[out[k]]...)
	}
	return out
}

// countForks runs f with strace following the node's sshd and all under
// it, and returns how many processes they created (fork, vfork, clone,
// clone3) and how many programs they executed.
func countForks(f func()) (forks, execs int, err error) {
	if _, err := exec.LookPath("strace"); err != nil {
		return 0, 0, err
	}
	out := filepath.Join(os.TempDir(), fmt.Sprintf("de-bench-strace-%d", os.Getpid()))
	defer os.Remove(out)
	args := []string{"-f", "-qq", "-c", "-o", out, "-e", "trace=fork,vfork,clone,clone3,execve"}
	for _, p := range nodeProcs() {
		args = append(args, "-p", strconv.Itoa(p))
	}
	st := exec.Command("strace", args...)
	if err := st.Start(); err != nil {
		return 0, 0, err
	}
	// Attached once the sshd has a tracer.
	deadline := time.Now().Add(10 * time.Second)
	for tracer(sshd.Process.Pid) == 0 {
		if time.Now().After(deadline) {
			_ = st.Process.Kill()
			_ = st.Wait()
			return 0, 0, fmt.Errorf("strace did not attach")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f()
	_ = st.Process.Signal(syscall.SIGINT)
	_ = st.Wait()
	file, err := os.Open(out)
	if err != nil {
		return 0, 0, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 5 {
			continue
		}
		calls, err := strconv.Atoi(fl[3])
		if err != nil {
			continue
		}
		switch fl[len(fl)-1] {
		case "fork", "vfork", "clone", "clone3":
			forks += calls
		case "execve":
			execs += calls
			if len(fl) == 6 { // a failed execve started nothing
				n, _ := strconv.Atoi(fl[4])
				execs -= n
			}
		}
	}
	return forks, execs, sc.Err()
}

// tracer is the pid tracing pid, 0 when none does.
func tracer(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
