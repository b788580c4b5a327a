package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// An errand on two instances: the deployment places it and starts
// nothing of it under monit; a run returns both instances' exit codes
// (0 and 7, from the instance's index) with their stdout and stderr; a
// run with when_changed skips the instance whose last run succeeded and
// runs the other again; an unknown errand is a 404 naming it.
func TestBoshErrand(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer resetBosh(t, "smoke")
	upload(t, e, errandRelease(), 201)
	// A secret the errand prints is redacted in its result.
	cfg := boshConfig("errands/1", map[string][]string{"smoke": ips(0, 1)}, map[string]any{"smoke": map[string]any{"admin_password": "pw-s3cret-42"}})
	if code, body := e.Do("POST", "/deployment-engine/config", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	if d := wait(t, e, deploy(t, e), 8*time.Minute); d.State != "succeeded" {
		t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	for i := range 2 {
		got := inNode(t, i, "ls /etc/monit/conf.d/; monit summary 2>&1; ls -l /var/vcap/jobs/smoke/bin/run")
		if strings.Contains(strings.SplitN(got, "-rwx", 2)[0], "smoke") {
			t.Errorf("node %d: the errand is known to monit:\n%s", i, got)
		}
		if !strings.Contains(got, "-rwx") {
			t.Errorf("node %d: the errand's bin/run is not placed:\n%s", i, got)
		}
	}
	if code, body := e.Do("GET", "/deployment-engine/errands", nil); code != 200 || !strings.Contains(string(body), `"name":"smoke"`) && !strings.Contains(string(body), `"name": "smoke"`) {
		t.Errorf("errands: %d %s", code, body)
	}
	if code, body := e.Do("POST", "/deployment-engine/errands/nope/run", nil); code != 404 || !strings.Contains(string(body), "it has smoke") {
		t.Errorf("unknown errand: %d %s", code, body)
	}

	run := func(query string) map[string]contract.StepStatus {
		t.Helper()
		code, body := e.Do("POST", "/deployment-engine/errands/smoke/run"+query, nil)
		var started contract.ErrandStarted
		if code != 202 || json.Unmarshal(body, &started) != nil || len(started.Nodes) != 2 {
			t.Fatalf("run%s: %d %s", query, code, body)
		}
		d := wait(t, e, started.ID, 3*time.Minute)
		if d.Kind != contract.KindErrand || d.State != contract.DeployFailed {
			t.Errorf("run%s: kind %q state %q, want a failed errand (one instance exits 7)", query, d.Kind, d.State)
		}
		out := map[string]contract.StepStatus{}
		for _, st := range d.Steps {
			if st.Action == contract.ErrandAction {
				out[st.Node] = st
			}
		}
		return out
	}
	code := func(st contract.StepStatus) int {
		if st.ExitCode == nil {
			return -1
		}
		return *st.ExitCode
	}
	got := run("")
	a, b := got[ips(0)[0]], got[ips(1)[0]]
	if a.State != contract.StateSucceeded || code(a) != 0 || a.Stdout != "index 0 word <redacted>\n" || a.Stderr != "to stderr 0\n" {
		t.Errorf("instance 0: %+v", a)
	}
	if b.State != contract.StateFailed || code(b) != 7 || b.Stdout != "index 1 word <redacted>\n" || b.Stderr != "to stderr 1\n" {
		t.Errorf("instance 1: %+v", b)
	}
	got = run("?when_changed=1")
	if a, b := got[ips(0)[0]], got[ips(1)[0]]; a.State != contract.StateUnchanged || b.State != contract.StateFailed || code(b) != 7 {
		t.Errorf("when changed: instance 0 %s, instance 1 %s exit %d; want unchanged, and failed with 7 again", a.State, b.State, code(b))
	}
	for i := range 2 {
		if got := inNode(t, i, "ls /etc/monit/conf.d/; pgrep -fa '[j]obs/smoke' || true"); strings.Contains(got, "smoke") {
			t.Errorf("node %d after the runs: %s", i, got)
		}
	}
}

// errandRelease is a release of one errand, whose bin/run prints its
// instance's index and a property, and exits 7 times its index.
func errandRelease() []byte {
	job := targz(map[string][]byte{
		"job.MF": []byte("---\nname: smoke\ntemplates: {run.erb: bin/run}\npackages: []\nproperties:\n  admin_password: {description: printed}\n"),
		"monit":  []byte(""),
		"templates/run.erb": []byte("#!/bin/bash\necho \"index <%= spec.index %> word <%= p('admin_password') %>\"\n" +
			"echo \"to stderr <%= spec.index %>\" >&2\nexit <%= spec.index * 7 %>\n"),
	})
	mf := fmt.Sprintf("---\nname: errands\nversion: '1'\npackages: []\njobs:\n- name: smoke\n  version: '1'\n  fingerprint: %s\n  sha1: %s\n", sha1hex(job), sha1hex(job))
	return targz(map[string][]byte{"jobs/smoke.tgz": job, "release.MF": []byte(mf)})
}
