package installer

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// detachedScript leaves the step's process group and session three ways —
// setsid in the background, setsid -f, and a double fork into a session of
// its own — each a sleep named by its own argument, then hangs.
func detachedScript(n string) string {
	return "setsid sleep 300." + n + "1 >/dev/null 2>&1 &\n" +
		"setsid -f sleep 300." + n + "2 >/dev/null 2>&1\n" +
		"( ( setsid sleep 300." + n + "3 >/dev/null 2>&1 & ) & )\n" +
		"sleep 3600\n"
}

// detached lists the pids of the sleeps detachedScript started with n.
func detached(n string) []int {
	out, _ := exec.Command("pgrep", "-f", `^sleep 300\.`+n+`[123]$`).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// waitDetached waits until the three sleeps run and returns their pids; the
// test kills what is left of them when it ends.
func waitDetached(t *testing.T, n string) []int {
	t.Helper()
	t.Cleanup(func() {
		for _, p := range detached(n) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if pids := detached(n); len(pids) == 3 {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("the step's detached sleeps never all ran: %v", detached(n))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noCgroupV2 hides cgroup v2 from the node (the sshd's mount namespace)
// until the test ends: its steps fall back to their process tree.
func noCgroupV2(t *testing.T) {
	t.Helper()
	ns := strconv.Itoa(sshd.Process.Pid)
	if out, err := exec.Command("nsenter", "-t", ns, "-m", "mount", "-t", "tmpfs", "-o", "size=1m", "de-no-cgroup", "/sys/fs/cgroup").CombinedOutput(); err != nil {
		t.Fatalf("hide the node's cgroups: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("nsenter", "-t", ns, "-m", "umount", "/sys/fs/cgroup").CombinedOutput(); err != nil {
			t.Errorf("unhide the node's cgroups: %v %s", err, out)
		}
	})
}

// hasCgroupV2 tells whether this machine, the tests' node, has a writable
// cgroup v2 hierarchy where a step's shell would put itself.
func hasCgroupV2() bool {
	for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(r + "/cgroup.controllers"); err == nil {
			return true
		}
	}
	return false
}

// inStepCgroup tells whether pid is in a step's cgroup.
func inStepCgroup(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return strings.Contains(string(b), "/deployment-engine/")
}

// A step's deadline and its cancel kill everything the step started, also
// what left its process group and session: in the step's own cgroup when
// the node has cgroup v2, by the step's mark in their environment when not;
// for a step alone and for one at the head of a chain.
func TestDetachedChildrenDieWithTheirStep(t *testing.T) {
	forTransports(t, testDetachedChildrenDieWithTheirStep)
}

func testDetachedChildrenDieWithTheirStep(t *testing.T, tr transport) {
	e := tr.env(t)
	storeConfig(t, e)
	t.Cleanup(func() {
		// The steps' cgroups went with them; their parent, once empty, goes too.
		for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
			_ = os.Remove(r + "/deployment-engine")
		}
	})
	modes := []string{"process tree"}
	if hasCgroupV2() {
		modes = append(modes, "cgroup")
	}
	for _, mode := range modes {
		for _, end := range []string{"deadline", "cancel"} {
			for _, how := range []string{"alone", "chain"} {
				t.Run(mode+"/"+end+"/"+how, func(t *testing.T) {
					if mode == "process tree" {
						noCgroupV2(t)
					}
					n := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
					dep := "d-detached-" + n
					timeout := 600
					if end == "deadline" {
						timeout = 2
					}
					r := record(t, e, dep)
					step := contract.Step{Deployment: dep, Action: "install", Key: "x.detached-" + n, Hash: uniq(), TimeoutS: timeout,
						Script: detachedScript(n)}
					if how == "chain" {
						step = chainStep(dep, "install", "c.detached-"+n, uniq(), detachedScript(n))
						step.TimeoutS = timeout
						step.Chain = []contract.Step{chainStep(dep, "next", "c.next-"+n, uniq(), "true\n")}
					}
					queue(t, e, step)
					pids := waitDetached(t, n)
					for _, p := range pids {
						if got := inStepCgroup(p); got != (mode == "cgroup") {
							t.Errorf("pid %d in a step's cgroup: %v, in mode %s", p, got, mode)
						}
					}
					if end == "cancel" {
						b, _ := json.Marshal(contract.StepCancel{V: 1, Deployment: dep, Reason: "test"})
						if err := e.ins.o.NC.Publish(subject.InstallerCancel(), b); err != nil {
							t.Fatal(err)
						}
					}
					ev := r.final(t, 30*time.Second)
					want := map[string]string{"deadline": "timed out", "cancel": "cancelled"}[end]
					if ev.State != contract.StateFailed || !strings.Contains(ev.Error, want) {
						t.Fatalf("step: %+v", ev)
					}
					deadline := time.Now().Add(3 * time.Second)
					for len(detached(n)) > 0 && time.Now().Before(deadline) {
						time.Sleep(50 * time.Millisecond)
					}
					if left := detached(n); len(left) > 0 {
						t.Fatalf("after the step's %s, %d of its detached sleeps still run: %v", end, len(left), left)
					}
					waitEmpty(t, e)
				})
			}
		}
	}
}
