package sched

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
)

// rolloutOfWeb is the rollout of web on three nodes behind haproxy, as the
// step builder makes it: the canary alone, then one at a time; each
// instance out of haproxy before its upload, back after its watch, and
// each batch after the one before is back.
func rolloutOfWeb() *Record {
	var planned []*steps.Step
	add := func(node, comp, action string, after ...string) string {
		planned = append(planned, &steps.Step{Spec: contract.Step{ID: steps.ID(node, comp, action), Node: node, Component: comp, Action: action}, After: after})
		return steps.ID(node, comp, action)
	}
	var batches []contract.Batch
	var gate []string
	for k, ip := range []string{"10.9.0.3", "10.9.0.4", "10.9.0.5"} {
		tag := "web-" + ip
		drain := add("10.9.0.2", "haproxy", "drain-"+tag, gate...)
		upload := add(ip, "web", "upload", drain)
		install := add(ip, "web", "install", upload)
		register := add(ip, "web", "register", install)
		start := add(ip, "web", "start", register)
		watch := add(ip, "web", "watch", start)
		ready := add("10.9.0.2", "haproxy", "ready-"+tag, watch)
		batches = append(batches, contract.Batch{Component: "web", Index: k, Canary: k == 0, Nodes: []string{ip}, State: contract.BatchPending,
			Steps: []string{drain, upload, install, register, start, watch, ready}})
		gate = []string{ready}
	}
	rec := NewRecord("d-1", nil, planned)
	rec.Batches = batches
	return rec
}

// The canary's install fails: its watch and ready are skipped, and so is
// every later batch; the deployment halts naming the canary.
func TestHaltedRollout(t *testing.T) {
	rec := rolloutOfWeb()
	for i := range rec.Steps {
		st := &rec.Steps[i]
		switch st.ID {
		case "10.9.0.3/web/install":
			st.State, st.Error = contract.StateFailed, "exited with status 1: nginx: configuration file test failed"
		case "10.9.0.2/haproxy/drain-web-10.9.0.3", "10.9.0.3/web/upload":
			st.State = contract.StateSucceeded
		}
	}
	rec.skipBlocked()
	rec.batchChanges()
	for _, id := range []string{"10.9.0.2/haproxy/drain-web-10.9.0.4", "10.9.0.4/web/upload", "10.9.0.5/web/start", "10.9.0.2/haproxy/ready-web-10.9.0.3"} {
		if st := rec.step(id).State; st != contract.StateSkipped {
			t.Errorf("%s is %s after the canary failed, want skipped", id, st)
		}
	}
	if rec.Batches[0].State != contract.BatchFailed || rec.Batches[1].State != contract.BatchSkipped || rec.Batches[2].State != contract.BatchSkipped {
		t.Errorf("batch states %+v", rec.Batches)
	}
	why := rec.haltReason()
	for _, want := range []string{"halted: the canary of web on 10.9.0.3 failed", "configuration file test failed", "2 instance(s) of web left as they were: 10.9.0.4, 10.9.0.5"} {
		if !strings.Contains(why, want) {
			t.Errorf("halt reason %q lacks %q", why, want)
		}
	}
}

// A patch halts as a rollout does: the first node's upgrade fails, and no
// later batch drains, upgrades or reboots its node; the failed node is
// left out of haproxy (its ready never runs), and the halt names it and
// the nodes left unpatched.
func TestHaltedPatch(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := contract.Config{
		Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3", "10.9.0.4", "10.9.0.5"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "pw", Catalog: "starter", Adduser: contract.F(0)},
	}
	previous := map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"web"}, "10.9.0.4": {"web"}, "10.9.0.5": {"web"}}
	b := steps.Builder{Config: cfg, Catalog: cat, Engine: "e-1", ID: "d-p", MirrorURL: "http://10.9.0.1:50000/mirror/", Previous: previous}
	planned, batches, err := b.PatchSteps([][]string{{"10.9.0.3"}, {"10.9.0.4"}, {"10.9.0.5"}}, contract.PatchRebootIfRequired)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecord("d-p", map[string][]string{}, planned)
	rec.Batches, rec.Kind = batches, contract.KindPatch
	for i := range rec.Steps {
		st := &rec.Steps[i]
		switch st.ID {
		case "10.9.0.2/haproxy/drain-web-10.9.0.3":
			st.State = contract.StateSucceeded
		case "10.9.0.3/_node/patch-upgrade":
			st.State, st.Error = contract.StateFailed, "exited with status 100: E: Unable to locate package"
		}
	}
	rec.skipBlocked()
	rec.batchChanges()
	for _, id := range []string{"10.9.0.3/_node/patch-reboot", "10.9.0.2/haproxy/ready-web-10.9.0.3",
		"10.9.0.2/haproxy/drain-web-10.9.0.4", "10.9.0.4/_node/patch-upgrade", "10.9.0.4/_node/patch-reboot",
		"10.9.0.5/_node/patch-upgrade", "10.9.0.5/_node/patch-reboot"} {
		if st := rec.step(id); st == nil || st.State != contract.StateSkipped {
			t.Errorf("%s after the first node's upgrade failed: %+v, want skipped", id, st)
		}
	}
	if rec.Batches[0].State != contract.BatchFailed || rec.Batches[1].State != contract.BatchSkipped || rec.Batches[2].State != contract.BatchSkipped {
		t.Errorf("batch states %+v", rec.Batches)
	}
	why := rec.haltReason()
	for _, want := range []string{"on 10.9.0.3 failed", "Unable to locate package", "10.9.0.4, 10.9.0.5"} {
		if !strings.Contains(why, want) {
			t.Errorf("halt reason %q lacks %q", why, want)
		}
	}
}
