package steps

import (
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// A patch goes node by node: a web node is taken out of the running
// haproxy before its upgrade, awaited back after its reboot, watched
// healthy and put back before the next batch's drain; the haproxy node,
// which nothing balances, has its upgrade, reboot and wait alone, after
// the batch before.
func TestPatchSteps(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	previous := map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"web", "redis"}, "10.9.0.4": {"web"}}
	in := Builder{Config: starterConfig(), Catalog: cat, Engine: "e-1", ID: "d-p", MirrorURL: "http://10.9.0.1:50000/mirror/", Previous: previous}
	planned, batches, err := in.PatchSteps([][]string{{"10.9.0.3"}, {"10.9.0.4"}, {"10.9.0.2"}}, contract.PatchRebootIfRequired)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Step{}
	for _, s := range planned {
		if byID[s.Spec.ID] != nil {
			t.Fatalf("step %s twice", s.Spec.ID)
		}
		byID[s.Spec.ID] = s
	}
	after := func(id string) []string {
		t.Helper()
		s := byID[id]
		if s == nil {
			t.Fatalf("no step %s in %v", id, slices.Sorted(func(yield func(string) bool) {
				for k := range byID {
					if !yield(k) {
						return
					}
				}
			}))
		}
		return slices.Sorted(slices.Values(s.After))
	}
	want := map[string][]string{
		"10.9.0.2/haproxy/drain-web-10.9.0.3": nil,
		"10.9.0.3/_node/patch-upgrade":        {"10.9.0.2/haproxy/drain-web-10.9.0.3"},
		"10.9.0.3/_node/patch-reboot":         {"10.9.0.3/_node/patch-upgrade"},
		"10.9.0.3/_node/patch-back":           {"10.9.0.3/_node/patch-reboot"},
		"10.9.0.3/web/watch":                  {"10.9.0.3/_node/patch-back"},
		"10.9.0.2/haproxy/ready-web-10.9.0.3": {"10.9.0.3/web/watch"},
		// The next batch begins once the one before is back in haproxy.
		"10.9.0.2/haproxy/drain-web-10.9.0.4": {"10.9.0.2/haproxy/ready-web-10.9.0.3"},
		"10.9.0.4/_node/patch-upgrade":        {"10.9.0.2/haproxy/drain-web-10.9.0.4"},
		"10.9.0.2/haproxy/ready-web-10.9.0.4": {"10.9.0.4/web/watch"},
		"10.9.0.2/_node/patch-upgrade":        {"10.9.0.2/haproxy/ready-web-10.9.0.4"},
		"10.9.0.2/_node/patch-back":           {"10.9.0.2/_node/patch-reboot"},
	}
	for id, w := range want {
		if got := after(id); !reflect.DeepEqual(got, w) && !(len(got) == 0 && len(w) == 0) {
			t.Errorf("%s after %v, want %v", id, got, w)
		}
	}
	if len(planned) != 3*3+2*3 {
		t.Errorf("%d steps, want 15 (3 a node, a drain, a watch and a ready for each balanced web)", len(planned))
	}
	for _, s := range planned {
		if s.Spec.Action == "patch-back" != s.Spec.AwaitsBoot {
			t.Errorf("%s: awaits its node's boot %v", s.Spec.ID, s.Spec.AwaitsBoot)
		}
	}
	if len(batches) != 3 || !reflect.DeepEqual(batches[2].Steps, []string{"10.9.0.2/_node/patch-upgrade", "10.9.0.2/_node/patch-reboot", "10.9.0.2/_node/patch-back"}) ||
		batches[0].Component != NodeComponent || !reflect.DeepEqual(batches[1].Nodes, []string{"10.9.0.4"}) || len(batches[0].Steps) != 6 {
		t.Errorf("batches %+v", batches)
	}
	if s := byID["10.9.0.3/_node/patch-reboot"].Spec.Script; !strings.Contains(s, "policy='if-required'") {
		t.Errorf("reboot script without its policy:\n%s", s)
	}
	if s := byID["10.9.0.3/_node/patch-upgrade"].Spec.Script; !strings.Contains(s, "deb [trusted=yes] http://10.9.0.1:50000/mirror/ ./") {
		t.Errorf("upgrade script without the mirror as its source:\n%s", s)
	}

	// A release's nodes (no catalog): no balancer, the node's steps alone.
	in.Catalog = nil
	planned, batches, err = in.PatchSteps([][]string{{"10.9.0.3", "10.9.0.4"}}, contract.PatchRebootNever)
	if err != nil || len(planned) != 6 || len(batches) != 1 || len(batches[0].Steps) != 6 {
		t.Fatalf("without a catalog: %d steps, %+v, %v", len(planned), batches, err)
	}
}

// notRunning reads monit status as monit prints it: what does not run is
// named, with its status; running, unmonitored and non-process checks
// are not.
func TestNotRunning(t *testing.T) {
	status := `Monit 5.33.0 uptime: 1m

Process 'web'
  status                       OK
  monitoring status            Monitored
  pid                          412

Process 'redis'
  status                       Does not exist
  monitoring status            Monitored

Process 'stopped'
  status                       Not monitored
  monitoring status            Not monitored

Process 'slow'
  status                       Initializing

Filesystem 'root'
  status                       Space limit matched

System 'node0'
  status                       Resource limit matched
`
	cmd := exec.Command("awk", notRunning)
	cmd.Stdin = strings.NewReader(status)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "'redis': Does not exist\n'slow': Initializing\n"; got != want {
		t.Errorf("not running:\n%s\nwant:\n%s", got, want)
	}
}

// processPIDs reads each process's pid from monit status.
func TestProcessPIDs(t *testing.T) {
	status := "Process 'web'\n  status                       OK\n  pid                          412\n\nProcess 'redis'\n  status                       Does not exist\n\nSystem 'n'\n  pid   9\n"
	cmd := exec.Command("awk", processPIDs)
	cmd.Stdin = strings.NewReader(status)
	out, err := cmd.Output()
	if err != nil || string(out) != "web:412\n" {
		t.Errorf("pids: %q %v", out, err)
	}
}
