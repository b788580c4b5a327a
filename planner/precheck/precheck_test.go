package precheck

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
)

// The disk a node must have: the catalog's minimum, raised to disksize
// when checkdisk is 1, and nothing at all when checkdisk is 0.
func TestNeedsDisk(t *testing.T) {
	cat, err := catalog.Load("cloudfoundry", "")
	if err != nil {
		t.Fatal(err)
	}
	comps := map[string][]string{"dea": {"10.9.0.2"}} // the manual's 35840 MB
	for _, tc := range []struct {
		name      string
		checkdisk contract.Flex
		disksize  int
		want      int
	}{
		{"catalog minimum when checkdisk is absent", contract.Flex{}, 0, 35840},
		{"disksize above the minimum", contract.F(1), 50, 50 * 1024},
		{"minimum above disksize", contract.F(1), 15, 35840},
		{"checkdisk 0 checks no disk", contract.F(0), 50, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := contract.Config{Components: comps, Properties: contract.Properties{Checkdisk: tc.checkdisk, Disksize: contract.F(tc.disksize)}}
			n := needs(cfg, cat, nil)["10.9.0.2"]
			if n.diskMB != tc.want {
				t.Errorf("disk %d MB, want %d", n.diskMB, tc.want)
			}
			if n.cpu != 2 || n.ramMB != 4096 {
				t.Errorf("cpu %d ram %d: checkdisk must not change them", n.cpu, n.ramMB)
			}
		})
	}
}

// The DNS check asks for the domain and a random name under it, and warns
// for each name a node's resolver does not send to haproxy.
func TestDNSWarnings(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := contract.Config{Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3"}},
		Properties: contract.Properties{Domain: "e2e.local"}}
	d := dnsCheckOf(cfg, cat)
	if len(d.names) != 2 || d.names[0] != "e2e.local" || !strings.HasSuffix(d.names[1], ".e2e.local") || d.names[1] == dnsCheckOf(cfg, cat).names[1] {
		t.Fatalf("names %q: want the domain and a new random name under it", d.names)
	}
	lookups := func(a, b []string) []contract.NameLookup {
		return []contract.NameLookup{{Name: d.names[0], Addrs: a}, {Name: d.names[1], Addrs: b}}
	}
	for _, tc := range []struct {
		name  string
		names []contract.NameLookup
		want  []string
	}{
		{"both to haproxy", lookups([]string{"10.9.0.2"}, []string{"10.9.0.2"}), nil},
		{"nothing resolves", lookups(nil, nil), []string{
			"DNS: on node 10.9.0.3, e2e.local does not resolve; point it at haproxy (10.9.0.2)",
			"DNS: on node 10.9.0.3, *.e2e.local (asked as " + d.names[1] + ") does not resolve; point it at haproxy (10.9.0.2)"}},
		{"the wildcard elsewhere", lookups([]string{"10.9.0.2"}, []string{"10.9.0.9", "10.9.0.2"}), []string{
			"DNS: on node 10.9.0.3, *.e2e.local (asked as " + d.names[1] + ") resolves to 10.9.0.9, 10.9.0.2, not to haproxy (10.9.0.2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := d.warnings(contract.ProbeResult{IP: "10.9.0.3", Reachable: true, Names: tc.names})
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	// No domain, or no haproxy in the config: nothing to ask.
	cfg.Properties.Domain = ""
	if n := dnsCheckOf(cfg, cat).names; n != nil {
		t.Errorf("asked %q without a domain", n)
	}
}

// A config of a catalog that is no loaded catalog (a BOSH release's) has
// no system or DNS to check, and checking it does not crash.
func TestNoCatalogChecksNothing(t *testing.T) {
	cfg := contract.Config{Components: map[string][]string{"job": {"10.9.0.2"}}, Properties: contract.Properties{Domain: "x.local", Catalog: "bosh"}}
	if d := dnsCheckOf(cfg, nil); d.names != nil {
		t.Errorf("DNS names asked without a catalog: %q", d.names)
	}
}
