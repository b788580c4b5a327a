package installer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// rebootNode stands in for a node's reboot while a step runs on it: once
// the step's first run has begun (flag written), every process of the
// node (of the test sshd's mount namespace: sshd, its sessions and all
// they started, detached or not) is killed, and sshd comes back down
// seconds later.
func rebootNode(t *testing.T, flag string, down time.Duration) {
	t.Helper()
	waitContains(t, flag, "ran", 20*time.Second)
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", sshd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // what forks while the first round is killed
		procs, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
		for _, p := range procs {
			if l, err := os.Readlink(p); err == nil && l == ns {
				pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = sshd.Wait()
	time.Sleep(down)
	if err := startSSHD(); err != nil {
		t.Fatalf("restart sshd: %v", err)
	}
}

// A step that awaits its node's boot outlasts a reboot under it: its
// connection drops, and the node does not answer for longer than a
// network error's tries allow; the step is tried again until its node is
// back, and then runs to its end. Past its deadline it fails, saying so.
func TestStepAwaitsBoot(t *testing.T) {
	e := newEnv(t, fastTries, func(o *Options) { o.MaxAttempts = 2 })
	storeConfig(t, e)
	for _, tc := range []struct {
		name    string
		timeout int
		down    time.Duration
		want    string
	}{
		{"back within the deadline", 60, 6 * time.Second, contract.StateSucceeded},
		{"not back within the deadline", 5, 8 * time.Second, contract.StateFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dep := "d-boot-" + uniq()
			flag := filepath.Join(t.TempDir(), "flag")
			r := record(t, e, dep)
			script := `if [ ! -e ` + flag + ` ]; then echo ran > ` + flag + `; sleep 60; fi; echo "back after the reboot"`
			queue(t, e, contract.Step{Deployment: dep, Action: "back", Key: "x.back-" + uniq(), Hash: "0123456789abcdef",
				Script: script, TimeoutS: tc.timeout, AwaitsBoot: true})
			rebootNode(t, flag, tc.down)
			ev := r.final(t, 90*time.Second)
			if ev.State != tc.want {
				t.Fatalf("final state %s (%s), want %s", ev.State, ev.Error, tc.want)
			}
			waited := false
			r.mu.Lock()
			for _, s := range r.steps {
				waited = waited || strings.Contains(s.Error, "waiting for the node to come back")
			}
			lines := r.lines
			r.mu.Unlock()
			if !waited {
				t.Error("no event said the step waits for its node")
			}
			if tc.want == contract.StateFailed {
				if !strings.Contains(ev.Error, "was not back within the step's 5s") {
					t.Errorf("error %q does not say the node was not back in time", ev.Error)
				}
				return
			}
			said := false
			for _, l := range lines {
				said = said || strings.Contains(l.Line, "back after the reboot")
			}
			if !said {
				t.Errorf("the step's second run never printed its line: %+v", lines)
			}
		})
	}
}
