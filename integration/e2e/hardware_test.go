package e2e

import (
	"encoding/json"
	"testing"

	"github.com/deployment-engine/engine/integration/harness"
)

// Two nodes given different memory report different RAM through the
// engine's /hardware: each node's /proc shows its own cgroup's limit.
func TestHardwareFollowsNodeLimits(t *testing.T) {
	// No mirror: nothing is installed, the probe only reads the nodes.
	release(t)
	e := harness.Start(t, harness.Options{Args: []string{"--no-agents", "--catalog", catalogDir(t)}})
	comps := map[string][]string{"alpha": ips(0, 1)}
	if code, body := e.Do("POST", "/deployment-engine/config", config("e2e", comps)); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	code, body := e.Do("GET", "/deployment-engine/hardware?comp=all&ip=0.0.0.0", nil)
	var hw []struct {
		IP    string
		CPU   int
		RAM   int64
		DISK  float64
		Error string
	}
	if code != 200 || json.Unmarshal(body, &hw) != nil || len(hw) != 2 {
		t.Fatalf("hardware: %d %s", code, body)
	}
	got := map[string]int64{}
	for _, h := range hw {
		got[h.IP] = h.RAM
	}
	// RAM is MemTotal in KiB.
	for i, want := range []int64{nodeRAM[0] >> 10, nodeRAM[1] >> 10} {
		if ip := bed.Nodes[i].IP; got[ip] != want {
			t.Errorf("node %s given %d MiB reports RAM %d KiB, want %d", ip, nodeRAM[i]>>20, got[ip], want)
		}
	}
	if got[bed.Nodes[0].IP] == got[bed.Nodes[1].IP] {
		t.Errorf("two nodes of different memory report the same RAM: %s", body)
	}
}
