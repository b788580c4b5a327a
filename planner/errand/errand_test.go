package errand

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// deployment places a release with a db job and a smoke errand that exits
// with its instance's index.
func deployment(t *testing.T, smoke ...string) *bosh.Deployment {
	t.Helper()
	if _, err := exec.LookPath(bosh.Ruby); err != nil {
		t.Fatalf("ruby is needed to render templates: %v", err)
	}
	r := releasetest.Release{Name: "errands", Version: "1",
		Jobs: []releasetest.Job{
			{Name: "db", Spec: "---\nname: db\ntemplates:\n  ctl: bin/ctl\npackages: []\nproperties: {}\n",
				Monit:     "check process db\n  with pidfile /var/vcap/sys/run/db/db.pid\n  start program \"/var/vcap/jobs/db/bin/ctl start\"\n",
				Templates: map[string]string{"ctl": "#!/bin/bash\n"}},
			{Name: "smoke", Spec: "---\nname: smoke\ntemplates:\n  run.erb: bin/run\npackages: []\nproperties:\n  word: {default: hi}\n",
				Templates: map[string]string{"run.erb": "#!/bin/bash\necho <%= p('word') %> from <%= spec.index %>\nexit <%= spec.index %>\n"}},
		}}
	s, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rel, _, err := s.Import(context.Background(), bytes.NewReader(releasetest.Build(r)))
	if err != nil {
		t.Fatal(err)
	}
	comps := map[string][]string{"db": {"10.0.0.1"}}
	if len(smoke) > 0 {
		comps["smoke"] = smoke
	}
	d, ps := bosh.NewDeployment(rel, contract.Config{Components: comps})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	return d
}

func TestRunPlansEachInstance(t *testing.T) {
	d := deployment(t, "10.0.0.1", "10.0.0.2")
	for _, tc := range []struct {
		name        string
		whenChanged bool
		want        []string
	}{
		{"always", false, []string{"10.0.0.1/smoke/forget", "10.0.0.1/smoke/run", "10.0.0.2/smoke/forget", "10.0.0.2/smoke/run"}},
		{"when changed", true, []string{"10.0.0.1/smoke/run", "10.0.0.2/smoke/run"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, started, err := Run(context.Background(), d, contract.ErrandRun{Name: "smoke", WhenChanged: tc.whenChanged}, "d-1", "e-1")
			if err != nil {
				t.Fatal(err)
			}
			if started.ID != "d-1" || started.Name != "smoke" || !slices.Equal(started.Nodes, []string{"10.0.0.1", "10.0.0.2"}) {
				t.Errorf("started %+v", started)
			}
			if rec.Kind != contract.KindErrand || !rec.Through {
				t.Errorf("kind %q through %v: want an errand's, every instance run", rec.Kind, rec.Through)
			}
			var ids []string
			hashes := map[string]string{}
			for _, st := range rec.Steps {
				ids = append(ids, st.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("steps %v, want %v", ids, tc.want)
			}
			// Each run keeps its streams, and is keyed by its instance's inputs.
			insts, _, err := bosh.RenderAll(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			insts = slices.DeleteFunc(insts, func(in bosh.Instance) bool { return in.Job != "smoke" })
			planned, err := Steps(steps.Builder{ID: "d-1"}, "smoke", insts, tc.whenChanged, contract.DefaultErrandTimeout)
			if err != nil {
				t.Fatal(err)
			}
			for _, ps := range planned {
				spec := ps.Spec
				if spec.Action != contract.ErrandAction {
					continue
				}
				if spec.KeepStreams != contract.MaxStreamBytes || spec.Key != "bosh.job.smoke.errand" || spec.TimeoutS != contract.DefaultErrandTimeout {
					t.Errorf("%s: keep_streams %v key %q timeout %d", spec.ID, spec.KeepStreams, spec.Key, spec.TimeoutS)
				}
				hashes[spec.Node] = spec.Hash
			}
			if hashes["10.0.0.1"] == hashes["10.0.0.2"] || len(hashes["10.0.0.1"]) != 32 {
				t.Errorf("hashes %v: want each instance's own inputs (its index is rendered in)", hashes)
			}
		})
	}
}

func TestRunUnknownErrandNamesThem(t *testing.T) {
	for _, tc := range []struct {
		name  string
		smoke []string
		ask   string
		want  string
	}{
		{"unknown", []string{"10.0.0.1"}, "nope", `no errand "nope" in the config: it has smoke`},
		{"no errand placed", nil, "smoke", "the config places no errand"},
		{"a job that is no errand", []string{"10.0.0.1"}, "db", `job "db" is no errand: its templates have no bin/run: it has smoke`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Run(context.Background(), deployment(t, tc.smoke...), contract.ErrandRun{Name: tc.ask}, "d-1", "e-1")
			var ke *kit.Error
			if !errors.As(err, &ke) || ke.Code != 404 || !strings.Contains(ke.Msg, tc.want) {
				t.Fatalf("err %v, want a 404 saying %q", err, tc.want)
			}
		})
	}
	_, _, err := Run(context.Background(), deployment(t, "10.0.0.1"), contract.ErrandRun{Name: "$(x)"}, "d-1", "e-1")
	var ke *kit.Error
	if !errors.As(err, &ke) || ke.Code != 400 {
		t.Fatalf("err %v, want a 400 for a name that is no job's", err)
	}
}

func TestListErrands(t *testing.T) {
	got := List(deployment(t, "10.0.0.2", "10.0.0.3"))
	want := []contract.Errand{{Name: "smoke", Component: "smoke", Release: "errands/1", Nodes: []string{"10.0.0.2", "10.0.0.3"}}}
	if !slices.EqualFunc(got, want, func(a, b contract.Errand) bool {
		return a.Name == b.Name && a.Component == b.Component && a.Release == b.Release && slices.Equal(a.Nodes, b.Nodes)
	}) {
		t.Errorf("List = %+v, want %+v", got, want)
	}
}

// TestRunScript runs a run step's script against a node's layout in a
// temporary root: the errand's exit code and output are bin/run's, and a
// node that does not hold the rendered version says so.
func TestRunScript(t *testing.T) {
	root := t.TempDir()
	script := func(hash string) string {
		return strings.ReplaceAll(RunScript("smoke", hash), bosh.VcapDir, root)
	}
	dir := filepath.Join(root, "data/jobs/smoke/abc")
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/run"), []byte("#!/bin/sh\necho out; echo err >&2; exit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "jobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "jobs/smoke")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hash        string
		code        int
		out, errOut string
	}{
		{"abc", 3, "out\n", "err\n"},
		{"def", NotPlaced, "", "not placed on this node as the config renders it now"},
	} {
		cmd := exec.Command("bash", "-c", script(tc.hash))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
			t.Errorf("hash %s: %v, want exit %d", tc.hash, err, tc.code)
		}
		if out.String() != tc.out || !strings.Contains(errOut.String(), tc.errOut) {
			t.Errorf("hash %s: stdout %q stderr %q", tc.hash, out.String(), errOut.String())
		}
	}
}

func TestStreamBytes(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, contract.MaxStreamBytes}, {1, contract.MaxStreamBytes}, {32, contract.MaxStreamBytes},
		{64, 32 << 10}, {1000, 2097}, {100000, 256},
	} {
		if got := StreamBytes(tc.n); got != tc.want {
			t.Errorf("StreamBytes(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}
