package steps

import (
	"slices"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/services/contract"
)

// A release job a deployment reached without starting it (its apply,
// register or start failed) is removed when the config drops it, as a
// started one is: its remove step stops it through monit and deletes its
// monit file and job files. One the config still places is not removed.
func TestReleaseRemovesFailedJobs(t *testing.T) {
	cfg := contract.Config{Components: map[string][]string{"web": {"10.0.0.2"}, "api-server": {"10.0.0.3"}}}
	in := Builder{Config: cfg, Engine: "e-1", ID: "d-1", MirrorURL: "http://10.0.0.1:50000/mirror/",
		Previous: map[string][]string{"10.0.0.2": {"web"}},
		Partial:  map[string][]string{"10.0.0.2": {"multi-monit-dummy"}, "10.0.0.3": {"api-server"}}}
	same := func(s string) string { return s }
	planned, err := in.ReleaseSteps(Release{Plan: &bosh.Plan{}, CompOf: same, JobOf: same})
	if err != nil {
		t.Fatal(err)
	}
	removed := map[string]*Step{}
	for _, s := range planned {
		if s.Spec.Action == "remove" {
			removed[s.Spec.ID] = s
		}
	}
	rm := removed["10.0.0.2/multi-monit-dummy/remove"]
	if rm == nil || len(removed) != 1 {
		t.Fatalf("remove steps %v: want the failed multi-monit-dummy's alone", removed)
	}
	for _, want := range []string{"f=/etc/monit/conf.d/$job", `rm -f "$f"`, "rm -rf /var/vcap/jobs/$job /var/vcap/data/jobs/$job", "job='multi-monit-dummy'"} {
		if !strings.Contains(rm.Spec.Script, want) {
			t.Errorf("the remove script lacks %q", want)
		}
	}
	if len(rm.After) != 1 || !strings.HasPrefix(rm.After[0], "10.0.0.2/") {
		t.Errorf("remove waits for %v, want its node's base steps", rm.After)
	}
}

// A node's job named bpm is removed after the node's other jobs removed in
// the same deployment: their processes stop through bpm's bin/bpm.
func TestReleaseRemovesBPMLast(t *testing.T) {
	cfg := contract.Config{Components: map[string][]string{"web": {"10.0.0.3"}}}
	in := Builder{Config: cfg, Engine: "e-1", ID: "d-1", MirrorURL: "http://10.0.0.1:50000/mirror/",
		Previous: map[string][]string{"10.0.0.2": {"bpm", "ticker", "worker"}, "10.0.0.3": {"bpm", "web"}}}
	same := func(s string) string { return s }
	planned, err := in.ReleaseSteps(Release{Plan: &bosh.Plan{}, CompOf: same, JobOf: same})
	if err != nil {
		t.Fatal(err)
	}
	after := map[string][]string{}
	for _, s := range planned {
		if s.Spec.Action == "remove" {
			after[s.Spec.ID] = s.After
		}
	}
	bpm := after["10.0.0.2/bpm/remove"]
	for _, id := range []string{"10.0.0.2/ticker/remove", "10.0.0.2/worker/remove"} {
		if !slices.Contains(bpm, id) {
			t.Errorf("bpm's removal waits for %v, not %s", bpm, id)
		}
		if slices.Contains(after[id], "10.0.0.2/bpm/remove") {
			t.Errorf("%s waits for bpm's removal", id)
		}
	}
	if rm := after["10.0.0.3/bpm/remove"]; len(rm) != 1 {
		t.Errorf("10.0.0.3's bpm removal waits for %v, want its node's base step alone (web stays)", rm)
	}
}
