package precheck

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// Judge's verdict on each kind of answer a node gives: what refuses the
// config, what only warns, and what is fine.
func TestJudge(t *testing.T) {
	const health = "http://10.9.0.1:50000/healthz"
	cat := &catalog.Catalog{
		Components: map[string]*catalog.Component{"web": {Min: &catalog.Hardware{CPU: 2, RAMMB: 1024, DiskMB: 2048}}},
		Nodes:      catalog.NodeSystem{OS: []catalog.OSRelease{{ID: "debian", Versions: []string{"12"}}}},
	}
	cfg := contract.Config{Components: map[string][]string{"web": {"10.9.0.2"}}}
	fine := contract.ProbeResult{IP: "10.9.0.2", Reachable: true, Monit: "5.33.0",
		Hardware: contract.NodeHardware{IP: "10.9.0.2", CPU: 2, RAM: 1024 << 10, DISK: 4096},
		OS:       contract.NodeOS{ID: "debian", VersionID: "12"},
		Fetched:  []contract.FetchResult{{URL: health}}}
	with := func(change func(r *contract.ProbeResult)) contract.ProbeResult {
		r := fine
		r.Fetched = []contract.FetchResult{{URL: health}}
		change(&r)
		return r
	}
	noEngine := func(r *contract.ProbeResult) { r.Fetched[0].Error = "connection refused" }
	for _, tc := range []struct {
		name     string
		target   func(t *Target)
		result   contract.ProbeResult
		problems []string // "path: reason" prefixes, in order
		warnings []string // substrings, in order
	}{
		{"fine", nil, fine, nil, nil},
		{"not reachable", nil, contract.ProbeResult{IP: "10.9.0.2", Error: "timeout"},
			[]string{"components: node not reachable: timeout"}, nil},
		{"short of everything", nil, with(func(r *contract.ProbeResult) { r.Hardware = contract.NodeHardware{CPU: 1, RAM: 512 << 10, DISK: 100} }),
			[]string{"components: has 1 vCPU, needs 2", "components: has 512 MB RAM, needs 1024 MB", "components: has 100 MB disk, needs 2048 MB"}, nil},
		{"RAM the kernel keeps", nil, with(func(r *contract.ProbeResult) { r.Hardware.RAM = 980 << 10 }), nil, nil},
		{"another system warns", nil, with(func(r *contract.ProbeResult) { r.OS = contract.NodeOS{ID: "ubuntu", VersionID: "24.04"} }),
			nil, []string{"node 10.9.0.2 (web) runs ubuntu 24.04"}},
		{"another system refuses", func(t *Target) { t.Catalog = refusing(cat) },
			with(func(r *contract.ProbeResult) { r.OS = contract.NodeOS{ID: "ubuntu", VersionID: "24.04"} }),
			[]string{"components: runs ubuntu 24.04"}, nil},
		{"engine unreachable, nothing fetched", nil, with(noEngine), nil, []string{"node 10.9.0.2 (web) cannot reach the engine at " + health}},
		{"engine unreachable, steps fetch", func(t *Target) { t.Fetches = true }, with(noEngine),
			[]string{"properties.home: cannot reach the engine at " + health}, nil},
		{"engine unreachable, no monit", nil, with(func(r *contract.ProbeResult) { noEngine(r); r.Monit = "" }),
			[]string{"properties.home: cannot reach the engine"}, nil},
		{"a job's minimum without a catalog", func(t *Target) { t.Catalog, t.Min = nil, &catalog.Hardware{CPU: 4} }, fine,
			[]string{"components: has 2 vCPU, needs 4"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := Target{Config: cfg, Catalog: cat, Health: health}
			if tc.target != nil {
				tc.target(&tg)
			}
			c := New(tg)
			if p := c.Probe(); len(p.Nodes) != 1 || len(p.Fetch) != 1 || p.Fetch[0] != health {
				t.Fatalf("probe %+v: want node 10.9.0.2 and a fetch of %s", p, health)
			}
			hw, warnings, problems := c.Judge([]contract.ProbeResult{tc.result})
			if len(hw) != 0 != tc.result.Reachable {
				t.Errorf("hardware %+v of a node reachable: %v", hw, tc.result.Reachable)
			}
			if len(problems) != len(tc.problems) {
				t.Fatalf("problems %+v, want %q", problems, tc.problems)
			}
			for i, p := range problems {
				if got := p.Path + ": " + p.Reason; p.IP != "10.9.0.2" || p.Component != "web" || !strings.HasPrefix(got, tc.problems[i]) {
					t.Errorf("problem %+v, want %q", p, tc.problems[i])
				}
			}
			if len(warnings) != len(tc.warnings) {
				t.Fatalf("warnings %q, want %q", warnings, tc.warnings)
			}
			for i, w := range warnings {
				if !strings.Contains(w, tc.warnings[i]) {
					t.Errorf("warning %q lacks %q", w, tc.warnings[i])
				}
			}
		})
	}
}

func refusing(c *catalog.Catalog) *catalog.Catalog {
	r := *c
	r.Nodes.Mismatch = catalog.MismatchProblem
	return &r
}
