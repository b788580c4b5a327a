package agent

import (
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestComponentState(t *testing.T) {
	two := contract.AgentComponent{Name: "job", Process: "main", Processes: []string{"main", "helper"}}
	one := contract.AgentComponent{Name: "web", Process: "web"}
	up := func(n string) procState { return procState{name: n, monit: "OK", running: true} }
	for _, tc := range []struct {
		name    string
		c       contract.AgentComponent
		procs   []procState
		running bool
		monit   string
		reason  string
	}{
		{"no process", contract.AgentComponent{Name: "cfg"}, nil, true, "configured (no process)", ""},
		{"one up", one, []procState{up("web")}, true, "OK", ""},
		{"one down", one, []procState{{name: "web", monit: "Not monitored"}}, false, "Not monitored", ""},
		{"both up", two, []procState{up("main"), up("helper")}, true, "OK", ""},
		{"second down", two, []procState{up("main"), {name: "helper", monit: "Not monitored"}}, false, "helper: Not monitored", ""},
		{"second unsupervised", two, []procState{up("main"), {name: "helper", monit: "Not monitored", running: true, reason: "stop failed"}}, true, "OK", "helper: stop failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := componentState(tc.c, tc.procs)
			if st.Running != tc.running || st.Monit != tc.monit || st.Reason != tc.reason {
				t.Errorf("got %+v", st)
			}
			if len(tc.c.Processes) > 1 && len(st.AllProcesses()) != len(tc.c.Processes) {
				t.Errorf("processes %v", st.AllProcesses())
			}
			if len(st.Procs) != len(tc.procs) {
				t.Fatalf("procs %+v, want one per process read", st.Procs)
			}
			for i, p := range tc.procs {
				if g := st.Procs[i]; g.Name != p.name || g.State != p.monit || g.Running != p.running {
					t.Errorf("proc %d: %+v, want %+v", i, g, p)
				}
			}
		})
	}
}
