package planner

import (
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
			n := needs(cfg, cat)["10.9.0.2"]
			if n.diskMB != tc.want {
				t.Errorf("disk %d MB, want %d", n.diskMB, tc.want)
			}
			if n.cpu != 2 || n.ramMB != 4096 {
				t.Errorf("cpu %d ram %d: checkdisk must not change them", n.cpu, n.ramMB)
			}
		})
	}
}
