package steps

import (
	"fmt"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
)

func TestReapplySteps(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	b := Builder{Config: starterConfig(), Catalog: cat, Engine: "e-1", ID: "d-9", MirrorURL: "http://10.9.0.1:50000/mirror/"}
	steps, err := b.ReapplySteps("haproxy", "10.9.0.2")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	ids := map[string]bool{}
	for _, s := range steps {
		got = append(got, s.Spec.Action+"<"+strings.Join(s.After, ",")+">")
		ids[s.Spec.ID] = true
		if s.Spec.Deployment != "d-9" || s.Spec.Node != "10.9.0.2" || s.Spec.Component != "haproxy" {
			t.Errorf("step %s: %+v", s.Spec.ID, s.Spec)
		}
	}
	// The install waited for every web instance's start: those ran before,
	// so here it waits for the upload only.
	want := "[reset<> upload<10.9.0.2/haproxy/reset> install<10.9.0.2/haproxy/upload> register<10.9.0.2/haproxy/install> start<10.9.0.2/haproxy/register>]"
	if fmt.Sprint(got) != want {
		t.Fatalf("steps %v\nwant %s", got, want)
	}
	if !strings.Contains(steps[0].Spec.Script, "/var/lib/deployment-engine/applied/haproxy.*") {
		t.Errorf("reset script %q", steps[0].Spec.Script)
	}
	// Another deployment's reset is a new step: it always runs.
	b.ID = "d-10"
	if again, _ := b.ReapplySteps("haproxy", "10.9.0.2"); again[0].Spec.Hash == steps[0].Spec.Hash {
		t.Error("two re-applies share the reset's hash: the second would be skipped")
	}
}
