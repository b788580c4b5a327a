package bosh

import (
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
)

// Summary writes a plan as text: per node its steps with what each waits
// for, in the order a node runs its ready steps.
func Summary(p *Plan) string {
	var b strings.Builder
	for _, s := range p.Steps {
		fmt.Fprintf(&b, "%s %s/%s after=[%s] prio=%d\n", s.Spec.Node, s.Spec.Component, s.Spec.Action, strings.Join(s.After, " "), s.Prio)
	}
	return b.String()
}

func TestMakePlanLinkedRelease(t *testing.T) {
	needRuby(t)
	rel := load(t, linkedRelease())
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1", "10.0.0.2"}, "app": {"10.0.0.2", "10.0.0.3"}},
		map[string]any{"app": map[string]any{"name": "shop"}}, nil)
	d, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	in := PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
		PackageURL: func(p release.Package) string { return "http://home/releases/" + p.Name + ".tgz" }}
	plan, err := MakePlan(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"10.0.0.1": {"base"},
		"10.0.0.2": {"base", "libapp", "app"},
		"10.0.0.3": {"base", "libapp", "app"},
	}
	if !reflect.DeepEqual(plan.Packages, want) {
		t.Errorf("packages per node %v, want %v", plan.Packages, want)
	}
	golden(t, "linked.plan", Summary(plan))
	// The same config plans the same hashes: a second deploy changes nothing.
	again, err := MakePlan(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plan.Steps {
		if plan.Steps[i].Spec.Hash != again.Steps[i].Spec.Hash {
			t.Errorf("%s: hash changed between two plans of one config", plan.Steps[i].Spec.ID)
		}
	}
	// A changed property changes that job's steps only.
	d2, _ := NewDeployment(rel, cfgOf(cfg.Components, map[string]any{"app": map[string]any{"name": "other"}}, nil))
	changed, err := MakePlan(context.Background(), PlanInput{Deployment: d2, NodeComponent: "_node", Base: map[string]string{}, PackageURL: in.PackageURL})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range changed.Steps {
		differs := s.Spec.Hash != plan.Steps[i].Spec.Hash
		if differs != (s.Spec.Component == "app" && s.Spec.Action != "compile") {
			t.Errorf("%s: changed=%v", s.Spec.ID, differs)
		}
	}
}

func TestProcesses(t *testing.T) {
	for _, tc := range []struct {
		monit string
		want  []string
	}{
		{"", nil},
		{"check process dummy\n  with pidfile x\ncheck process \"other\"\ncheck file f with path /x\n", []string{"dummy", "other"}},
	} {
		if got := Processes(tc.monit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v", tc.monit, got)
		}
	}
}

// Every script of a plan is valid bash.
func TestScriptsParse(t *testing.T) {
	needRuby(t)
	rel := load(t, linkedRelease())
	d, _ := NewDeployment(rel, cfgOf(map[string][]string{"db": {"10.0.0.1"}, "app": {"10.0.0.2"}}, map[string]any{"app": map[string]any{"name": "x"}}, nil))
	plan, err := MakePlan(context.Background(), PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
		PackageURL: func(p release.Package) string { return "http://h/" + p.Name }})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range plan.Steps {
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(s.Spec.Script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s\n%s", s.Spec.ID, err, out, s.Spec.Script)
		}
	}
}

func TestRemoveScriptParses(t *testing.T) {
	s := RemoveScript("multi-monit-dummy")
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(s)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(s, "/var/lib/deployment-engine/applied/bosh.job.multi-monit-dummy.*") {
		t.Errorf("markers not removed:\n%s", s)
	}
}

// A job reads each declared property from its own tree, then from the
// config's global tree (a v1 manifest's properties), then its default;
// what its spec does not declare it never sees.
func TestPropertiesFallBackToGlobal(t *testing.T) {
	rel := load(t, linkedRelease())
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1"}}, map[string]any{"db": map[string]any{"admin": map[string]any{"user": "own"}}}, nil)
	cfg.Properties.Global = map[string]any{"admin": map[string]any{"user": "global", "password": "global-pw"}, "port": 6000, "undeclared": 1}
	d, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	want := map[string]any{"admin": map[string]any{"user": "own", "password": "global-pw"}, "port": 6000}
	if got := d.Properties("db", "10.0.0.1"); !reflect.DeepEqual(got, want) {
		t.Errorf("db's properties %v, want %v", got, want)
	}
	cfg.Properties.Global = nil
	d, _ = NewDeployment(rel, cfg)
	if got := fmt.Sprint(d.Properties("db", "10.0.0.1")); got != "map[admin:map[user:own] port:5432]" {
		t.Errorf("without a global tree: %v", got)
	}
}

// A job given its own tree on a node reads that tree there, whole, and
// the job's tree on its other nodes; a node tree for a job that does not
// run there, or of a property the spec does not declare, is named.
func TestNodeProperties(t *testing.T) {
	rel := load(t, linkedRelease())
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1", "10.0.0.2"}}, map[string]any{"db": map[string]any{"port": 7000, "admin": map[string]any{"user": "own"}}}, nil)
	cfg.Properties.NodeJobs = map[string]any{"10.0.0.2": map[string]any{"db": map[string]any{"admin": map[string]any{"user": "second"}}}}
	d, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if got := fmt.Sprint(d.Properties("db", "10.0.0.1")); got != "map[admin:map[user:own] port:7000]" {
		t.Errorf("on its first node: %v", got)
	}
	if got := fmt.Sprint(d.Properties("db", "10.0.0.2")); got != "map[admin:map[user:second] port:5432]" {
		t.Errorf("on the node of its own tree: %v", got)
	}
	cfg.Properties.NodeJobs = map[string]any{"10.0.0.3": map[string]any{"db": map[string]any{}}, "10.0.0.2": map[string]any{"db": map[string]any{"nope": 1}, "ghost": map[string]any{}}}
	_, ps = NewDeployment(rel, cfg)
	var got []string
	for _, p := range ps {
		got = append(got, p.Path+": "+p.Reason)
	}
	want := []string{
		`properties.node_jobs.10.0.0.2.db.nope: job db declares no property "nope" (it declares admin.password, admin.user, port)`,
		`properties.node_jobs.10.0.0.2.ghost: release linked/3 has no job "ghost" (it has db, app)`,
		"properties.node_jobs.10.0.0.3.db: job db does not run on 10.0.0.3",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A node whose persistent disk is a device gets a store step before its
// layout, which holds while the store is mounted; a node whose disk is a
// directory, or that has none, gets none. A disk on no node of the config
// is refused by name.
func TestPersistentDiskStep(t *testing.T) {
	needRuby(t)
	rel := load(t, linkedRelease())
	cfg := cfgOf(map[string][]string{"db": {"10.0.0.1", "10.0.0.2"}, "app": {"10.0.0.3"}}, map[string]any{"app": map[string]any{"name": "shop"}}, nil)
	cfg.Properties.PersistentDisks = map[string]contract.PersistentDisk{"10.0.0.1": {SizeMB: 1024, Device: "/dev/vdb"}, "10.0.0.2": {SizeMB: 1024}}
	d, ps := NewDeployment(rel, cfg)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	plan, err := MakePlan(context.Background(), PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{"10.0.0.1": "10.0.0.1/_node/prepare"},
		PackageURL: func(p release.Package) string { return "http://home/releases/" + p.Name + ".tgz" }})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Step{}
	for _, s := range plan.Steps {
		byID[s.Spec.ID] = s
	}
	store, ok := byID["10.0.0.1/_node/store"]
	if !ok || !strings.Contains(store.Spec.Script, "dev='/dev/vdb'") || store.Spec.Holds != "mountpoint -q /var/vcap/store" ||
		!reflect.DeepEqual(store.After, []string{"10.0.0.1/_node/prepare"}) {
		t.Fatalf("the store step of the node with a device: %+v", store)
	}
	if got := byID["10.0.0.1/_node/vcap"].After; !reflect.DeepEqual(got, []string{store.Spec.ID}) {
		t.Errorf("the layout waits for %v, want the store", got)
	}
	for _, ip := range []string{"10.0.0.2", "10.0.0.3"} {
		if _, ok := byID[ip+"/_node/store"]; ok {
			t.Errorf("%s has a store step", ip)
		}
	}
	if out, err := exec.Command("bash", "-n", "-c", store.Spec.Script).CombinedOutput(); err != nil {
		t.Errorf("the store script does not parse: %v %s", err, out)
	}
	cfg.Properties.PersistentDisks["10.0.0.9"] = contract.PersistentDisk{}
	if _, ps := NewDeployment(rel, cfg); len(ps) != 1 || ps[0].Path != "properties.persistent_disks.10.0.0.9" {
		t.Errorf("a disk on no node: %+v", ps)
	}
}
