package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// e2eManifest deploys the dummy release's job with a property the engine
// generates, on two zones' machines.
const e2eManifest = `
name: e2e-simple
releases: [{name: dummy, version: 0.2-dev}]
stemcells: [{alias: default, os: ubuntu-noble, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: props
  instances: 2
  azs: [z1, z2]
  networks: [{name: default}]
  jobs:
  - name: dummy_with_properties
    release: dummy
    properties: {dummy_with_properties: {echo_value: ((echo_pw))}}
variables:
- {name: echo_pw, type: password}
`

// A v2 manifest of a real release, through a cloud config, onto two of
// the bed's machines: each instance in its zone, the generated password
// rendered on both nodes and in no answer, and a second deploy of the
// same manifest changes nothing.
func TestManifestDeployOnCloudConfig(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer resetBosh(t, "dummy_with_properties")
	dummy, err := os.ReadFile(filepath.Join(sharedReleases, "dummy-release.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	upload(t, e, dummy, 201)
	body := map[string]any{"manifest": e2eManifest}
	if code, out := e.Do("POST", "/deployment-engine/manifest", body); code != 403 || !strings.Contains(string(out), "cloud-config update") {
		t.Fatalf("before a cloud config: %d %s", code, out)
	}
	cc := fmt.Sprintf("home: %s\nssh: {user: root, key: %s}\nazs:\n- {name: z1, machines: [%s, %s]}\n- {name: z2, machines: [%s]}\n",
		bed.Home, bed.KeyPath, ips(0)[0], ips(1)[0], ips(2)[0])
	if code, out := e.Do("PUT", "/deployment-engine/cloud-config", cc); code != 200 {
		t.Fatalf("cloud config: %d %s", code, out)
	}
	var answers []string
	deployed := func() contract.Deployment {
		t.Helper()
		code, out := e.Do("POST", "/deployment-engine/manifest", body)
		var started contract.ManifestDeployed
		if code != 202 || json.Unmarshal(out, &started) != nil {
			t.Fatalf("manifest deploy: %d %s", code, out)
		}
		if got := strings.Join(started.Placement["props"], ","); got != ips(0)[0]+","+ips(2)[0] || started.Name != "e2e-simple" {
			t.Fatalf("placement: %s", out)
		}
		answers = append(answers, string(out))
		return wait(t, e, started.ID, 10*time.Minute)
	}
	d := deployed()
	if d.State != "succeeded" {
		t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	echo := regexp.MustCompile(`echo '([a-z0-9]{20})'`)
	ctl := "cat /var/vcap/jobs/dummy_with_properties/bin/dummy_with_properties_ctl"
	m0, m2 := echo.FindStringSubmatch(inNode(t, 0, ctl)), echo.FindStringSubmatch(inNode(t, 2, ctl))
	if m0 == nil || m2 == nil || m0[1] != m2[1] {
		t.Fatalf("the generated password is not rendered alike on both nodes: %v %v", m0, m2)
	}
	if got := inNode(t, 1, "ls /var/vcap/jobs 2>/dev/null || true"); strings.TrimSpace(got) != "" {
		t.Errorf("z1's second machine got a job: %s", got)
	}

	// Deployed again: the same value, the same machines, nothing to do.
	d = deployed()
	if d.State != "succeeded" || d.Changed != 0 {
		t.Errorf("second deployment: %s, changed %d:\n%s", d.State, d.Changed, failures(d))
	}
	if got := echo.FindStringSubmatch(inNode(t, 0, ctl)); got == nil || got[1] != m0[1] {
		t.Errorf("the second deploy changed the password")
	}
	// The instances, by group and index in their zones, their processes
	// as the agents read them.
	var insts []contract.Instance
	for deadline := time.Now().Add(reportWithin); ; time.Sleep(time.Second) {
		code, out := e.Do("GET", "/deployment-engine/instances", nil)
		if code != 200 || json.Unmarshal(out, &insts) != nil {
			t.Fatalf("instances: %d %s", code, out)
		}
		if len(insts) == 2 && insts[0].State == contract.InstanceRunning && insts[1].State == contract.InstanceRunning &&
			len(insts[0].Jobs) == 1 && len(insts[0].Jobs[0].Processes) > 0 && insts[0].Jobs[0].Processes[0].Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances within 60 s: %s", out)
		}
	}
	if a, b := insts[0], insts[1]; a.ID != "props/0" || a.AZ != "z1" || a.IP != ips(0)[0] || b.ID != "props/1" || b.AZ != "z2" || b.IP != ips(2)[0] ||
		a.Jobs[0].Name != "dummy_with_properties" {
		t.Errorf("instances %+v", insts)
	}

	// Marked, the password is generated anew by the next deploy, alike on
	// both nodes.
	if code, out := e.Do("POST", "/deployment-engine/manifest/variables/echo_pw/regenerate", nil); code != 200 {
		t.Fatalf("regenerate echo_pw: %d %s", code, out)
	}
	if d := deployed(); d.State != "succeeded" {
		t.Fatalf("deployment after regenerate: %s\n%s", d.State, failures(d))
	}
	n0, n2 := echo.FindStringSubmatch(inNode(t, 0, ctl)), echo.FindStringSubmatch(inNode(t, 2, ctl))
	if n0 == nil || n2 == nil || n0[1] != n2[1] || n0[1] == m0[1] {
		t.Fatalf("after regenerate: %v %v, the old value %s", n0, n2, m0[1])
	}
	// The job's own log (its ctl echoes the password there), followed by
	// the node's agent into the instance's log, the password redacted.
	jobLog := "/deployment-engine/logs/dummy_with_properties_0.log"
	for deadline := time.Now().Add(reportWithin); ; time.Sleep(time.Second) {
		if code, out := e.Do("GET", jobLog, nil); code == 200 && strings.Contains(string(out), "release_name=dummy") && strings.Count(string(out), "<redacted>") >= 2 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the job's log in %s within 60 s: %d %s", jobLog, code, tail(string(out), 20))
		}
	}
	for _, q := range []struct{ method, path string }{
		{"GET", jobLog}, {"GET", "/deployment-engine/manifest/variables"}, {"GET", "/deployment-engine/instances"},
		{"GET", "/deployment-engine/config"}, {"GET", "/deployment-engine/config/history"}, {"GET", "/deployment-engine/deployments/" + d.ID},
		{"GET", "/deployment-engine/audit"}, {"POST", "/deployment-engine/plan"}, {"GET", "/deployment-engine/download"},
		{"GET", "/deployment-engine/logs/local.log"},
	} {
		_, out := e.Do(q.method, q.path, nil)
		answers = append(answers, string(out))
	}
	for i, a := range answers {
		if strings.Contains(a, m0[1]) || strings.Contains(a, n0[1]) {
			t.Errorf("answer %d shows a generated password: %s", i, tail(a, 20))
		}
	}
	if strings.Contains(e.Log(), m0[1]) || strings.Contains(e.Log(), n0[1]) {
		t.Errorf("the engine's log shows a generated password")
	}
}
