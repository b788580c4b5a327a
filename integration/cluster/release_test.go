package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
)

// A release uploaded through one api+planner process of the split deploys
// through either, ten times in a row: the config stored through one (it is
// checked against the release), the deploy started through the other. In
// the first four rounds the job moves to another node, whose deployment
// fetches the job's package from the engine (the release lives in the bus,
// not in one process's data dir); the last six change nothing.
func TestReleaseThroughEitherAPI(t *testing.T) {
	s := up(t)
	reset(t)
	t.Cleanup(func() { removeJob(t, "dummy_with_package") })
	tgz, err := os.ReadFile("../../planner/release/testdata/dummy-release.tgz")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := s.apis[0].Do("POST", "/deployment-engine/releases", tgz); code != 201 {
		t.Fatalf("upload through the first process: %d %s\nits log ends:\n%s", code, body, harness.Tail(s.apis[0].Log(), 30))
	}
	for i := range 10 {
		via, by := s.apis[i%2], s.apis[(i+1)%2]
		n := bed.Nodes[min(i, len(bed.Nodes)-1)]
		cfg := map[string]any{"components": map[string][]string{"dummy_with_package": {n.IP}}, "properties": map[string]any{
			"catalog": "bosh", "release": "dummy", "domain": "cluster.local", "home": bed.Home, "key": bed.KeyPath, "checkdisk": 0, "adduser": 0}}
		if code, body := via.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
			t.Fatalf("round %d: config through process %d: %d %s", i+1, i%2+1, code, body)
		}
		id, _, err := by.Client().Deploy(context.Background())
		if err != nil {
			t.Fatalf("round %d: deploy through process %d: %v", i+1, (i+1)%2+1, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		d, err := harness.Wait(ctx, via.Client(), id, 200*time.Millisecond)
		cancel()
		if err != nil || d.State != contract.DeploySucceeded {
			t.Fatalf("round %d: deployment %s on %s: %v %s", i+1, id, n.IP, err, harness.Failures(d))
		}
		if i >= len(bed.Nodes) && d.Changed != 0 {
			t.Errorf("round %d: the same config again changed %d steps", i+1, d.Changed)
		}
		out, err := n.Exec(context.Background(), "cat /var/vcap/packages/dummy_package/dummy_package_file")
		if err != nil || !strings.Contains(string(out), "dummy contents") {
			t.Fatalf("round %d: the package on %s: %q %v", i+1, n.IP, out, err)
		}
	}
}

// removeJob takes a release's job and everything of it off the nodes.
func removeJob(t *testing.T, job string) {
	script := fmt.Sprintf(`f=/etc/monit/conf.d/%[1]s
if [ -e $f ]; then for p in $(awk '$1=="check" && $2=="process" {print $3}' $f); do monit stop $p >/dev/null 2>&1 || true; done; rm -f $f; monit reload >/dev/null 2>&1 || true; fi
rm -rf /var/vcap`, job)
	for _, n := range bed.Nodes {
		if _, err := n.Exec(context.Background(), script); err != nil {
			t.Errorf("clean %s: %v", n.Name, err)
		}
	}
}
