package catalog

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestCheckNode(t *testing.T) {
	sys := NodeSystem{OS: []OSRelease{{ID: "debian", Versions: []string{"12"}}, {ID: "ubuntu"}}, Monit: "5.2"}
	deb12 := contract.NodeOS{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"}
	for _, tc := range []struct {
		name  string
		os    contract.NodeOS
		monit string
		want  []string // substrings, one per mismatch
	}{
		{"supported, monit new enough", deb12, "5.33.0", nil},
		{"supported, no monit: the deployment installs it", deb12, "", nil},
		{"any ubuntu", contract.NodeOS{ID: "ubuntu", VersionID: "10.04"}, "5.2.4", nil},
		{"monit exactly the minimum", deb12, "5.2", nil},
		{"other debian", contract.NodeOS{ID: "debian", VersionID: "11", PrettyName: "Debian GNU/Linux 11 (bullseye)"}, "5.27.2",
			[]string{"runs Debian GNU/Linux 11 (bullseye); the catalog supports debian 12, ubuntu"}},
		{"old monit", deb12, "5.1.1", []string{"has monit 5.1.1; the catalog needs monit 5.2 or later"}},
		{"no os-release, garbled monit", contract.NodeOS{}, "x",
			[]string{"runs an unknown system (no /etc/os-release)", "has monit x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sys.CheckNode(tc.os, tc.monit)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %d mismatches", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("mismatch %d: %q lacks %q", i, got[i], w)
				}
			}
		})
	}
	if (NodeSystem{}).CheckNode(contract.NodeOS{}, "") != nil {
		t.Error("a catalog that declares nothing found a mismatch")
	}
}

func TestNodeSystemRules(t *testing.T) {
	for _, tc := range []struct {
		sys  NodeSystem
		errs int
	}{
		{NodeSystem{Mismatch: "problem", Monit: "5.2", OS: []OSRelease{{ID: "debian"}}}, 0},
		{NodeSystem{Mismatch: "fatal"}, 1},
		{NodeSystem{Monit: "five"}, 1},
		{NodeSystem{OS: []OSRelease{{Versions: []string{"12"}}}}, 1},
	} {
		if got := tc.sys.check(); len(got) != tc.errs {
			t.Errorf("%+v: %q, want %d errors", tc.sys, got, tc.errs)
		}
	}
}
