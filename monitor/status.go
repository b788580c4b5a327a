package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// status answers GET /status: one entry per instance, never a stale RUNNING.
func (m *Monitor) status(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, err := m.config(ctx)
	if err != nil {
		return 0, nil, err
	}
	nodes := m.snapshot()
	now := time.Now()
	var agentless []string
	for _, ip := range cfg.Nodes() {
		if _, ok := nodes[ip]; !ok {
			agentless = append(agentless, ip)
		}
	}
	var reads map[string]sshRead
	if len(agentless) > 0 {
		reads = m.readOverSSH(agentless, m.o.StatusWait)
	}
	out := []contract.StatusEntry{}
	for _, t := range instances(cfg) {
		e := contract.StatusEntry{Comp: t.Comp, Ip: t.IP, Cpu: "N/A", Mem: "N/A", Disk: "N/A", Status: "DOWN"}
		n, ok := nodes[t.IP]
		switch {
		case !ok:
			proc, _ := m.o.Process(cfg.CatalogName(), t.Comp)
			entryFromSSH(&e, reads[t.IP], proc)
		case !m.fresh(&n, now):
			e.Reason = fmt.Sprintf("unreachable: no report for %s (last at %s)", now.Sub(n.seen).Round(time.Second), n.seen.UTC().Format(time.RFC3339))
		default:
			e.Cpu, e.Mem, e.Disk = pct(n.hb.CPUPct), pct(n.hb.MemPct), pct(n.hb.DiskPct)
			e.Reason = "not deployed on this node yet"
			if n.hb.MonitError != "" {
				e.Reason = n.hb.MonitError
				break
			}
			for _, c := range n.hb.Components {
				if c.Name == t.Comp {
					if c.Running && c.Process == "" {
						e.Status, e.Reason = "CONFIGURED", ""
					} else if c.Running {
						// Reason stays when the process runs unsupervised.
						e.Status, e.Reason = "RUNNING", c.Reason
					} else {
						e.Reason = "monit: " + c.Monit
					}
				}
			}
		}
		out = append(out, e)
	}
	m.healNotes(ctx, out)
	return 200, out, nil
}

// healNotes adds auto-heal's verdict to the DOWN entries it concerns: an
// instance it gave up on says so, and while the meltdown guard holds,
// every DOWN entry says that nothing is being healed. When no heal service
// answers at once, status is what the nodes report, nothing more.
func (m *Monitor) healNotes(ctx context.Context, out []contract.StatusEntry) {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	rep, err := kit.Request(ctx, m.o.NC, subject.HealGet(), nil)
	var hs contract.HealState
	if err != nil || rep.Code != 200 || json.Unmarshal(rep.Body, &hs) != nil {
		return
	}
	failing := map[string]string{}
	for _, in := range hs.Instances {
		if in.State == contract.HealFailing {
			failing[in.Component+"@"+in.IP] = in.Reason
		}
	}
	for i := range out {
		e := &out[i]
		if e.Status != "DOWN" {
			continue
		}
		if why, ok := failing[e.Comp+"@"+e.Ip]; ok {
			e.Reason = join("failing: auto-heal gave up: "+why, e.Reason)
		}
		if hs.Meltdown.Active {
			e.Reason = join(e.Reason, "auto-heal held by the meltdown guard: "+hs.Meltdown.Reason)
		}
	}
}

// join puts two reasons in one, either of which may be empty.
func join(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}
