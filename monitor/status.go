package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// status answers GET /status: one entry per instance, never a stale RUNNING.
//
// With a thousand instances, formatting and encoding every entry on every
// request cost milliseconds: an instance its node's latest heartbeat shows
// up is therefore encoded once, when the heartbeat arrives (node.entries),
// and copied from there while that heartbeat is fresh. Every other entry
// (down, stale, read over SSH) is made per request, as its reason depends
// on the time or on auto-heal.
func (m *Monitor) status(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, err := m.cfg.load(ctx, m.o.Res)
	if err != nil {
		return 0, nil, err
	}
	held, _, err := bus.LoadMaintenance(ctx, m.o.Res.Engine)
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
	targets := instances(cfg)
	preFailed := m.pre.snapshot()
	pieces := make([][]byte, len(targets))
	var made []contract.StatusEntry // entries made for this request
	var madeAt []int                // and their places
	for i, t := range targets {
		n, ok := nodes[t.IP]
		why, failed := preFailed[t.Comp+"@"+t.IP]
		if ok && m.fresh(&n, now) && !failed && !held.Holds(t.IP) {
			if raw, ok := n.entries[t.Comp]; ok {
				pieces[i] = raw
				continue
			}
		}
		e := contract.StatusEntry{Comp: t.Comp, Ip: t.IP, Cpu: "N/A", Mem: "N/A", Disk: "N/A", Status: "DOWN"}
		switch {
		case !ok:
			proc, _ := m.o.Process(cfg.CatalogName(), t.Comp)
			entryFromSSH(&e, reads[t.IP], proc, t.Comp)
		case !m.fresh(&n, now):
			e.Reason = fmt.Sprintf("unreachable: no report for %s (last at %s)", now.Sub(n.seen).Round(time.Second), n.seen.UTC().Format(time.RFC3339))
		default:
			entryFromAgent(&e, n.hb)
		}
		if failed {
			if e.Status != "DOWN" {
				e.Status, e.Reason = "DOWN", ""
			}
			e.Reason = join(why, e.Reason)
		}
		made = append(made, e)
		madeAt = append(madeAt, i)
	}
	for i := range made {
		if mn, ok := held.Nodes[made[i].Ip]; ok {
			maintained(&made[i], mn)
		}
	}
	m.healNotes(ctx, made)
	size := 2
	for k, e := range made {
		raw, err := json.Marshal(e)
		if err != nil {
			return 0, nil, fmt.Errorf("encode status entry: %w", err)
		}
		pieces[madeAt[k]] = raw
	}
	for _, p := range pieces {
		size += len(p) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, p := range pieces {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	out = append(out, ']')
	return 200, kit.RawJSON(out), nil
}

// maintained makes e, an instance of a node in maintenance, MAINTENANCE:
// its reason says who held the node out, why and since when, then what
// the instance does.
func maintained(e *contract.StatusEntry, mn contract.NodeMaintenance) {
	now := "instance " + e.Status
	if e.Reason != "" {
		now += ": " + e.Reason
	}
	e.Status, e.Reason = contract.StatusMaintenance, join(mn.Describe(), now)
}

// entryFromAgent fills a status entry from its node's fresh heartbeat.
func entryFromAgent(e *contract.StatusEntry, hb contract.Heartbeat) {
	e.Cpu, e.Mem, e.Disk = pct(hb.CPUPct), pct(hb.MemPct), pct(hb.DiskPct)
	e.Reason = "not deployed on this node yet"
	if hb.MonitError != "" {
		e.Reason = hb.MonitError
		return
	}
	for _, c := range hb.Components {
		if c.Name == e.Comp {
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

// renderEntries encodes, once per heartbeat, the status entry of each
// component the heartbeat shows up (RUNNING or CONFIGURED), as status
// would make it while the heartbeat is fresh. Down ones are left out:
// status makes those per request, with auto-heal's notes.
func renderEntries(hb contract.Heartbeat) map[string][]byte {
	if hb.MonitError != "" {
		return nil
	}
	out := make(map[string][]byte, len(hb.Components))
	for _, c := range hb.Components {
		if _, done := out[c.Name]; done {
			continue
		}
		e := contract.StatusEntry{Comp: c.Name, Ip: hb.IP, Cpu: "N/A", Mem: "N/A", Disk: "N/A", Status: "DOWN"}
		entryFromAgent(&e, hb)
		if e.Status == "DOWN" {
			out[c.Name] = nil
			continue
		}
		raw, err := json.Marshal(e)
		if err != nil {
			continue
		}
		out[c.Name] = raw
	}
	for name, raw := range out {
		if raw == nil {
			delete(out, name)
		}
	}
	return out
}

// configCache keeps the decoded config of the bucket's latest revision:
// status reads the config on every request, and decoding it (a thousand
// instances, sealed secrets) is only worth doing when it changed.
type configCache struct {
	mu  sync.Mutex
	rev uint64
	cfg contract.Config
}

// load reads the stored config; a missing one is the clients' 403. The
// config it returns is shared: callers only read it.
func (c *configCache) load(ctx context.Context, res *bus.Resources) (contract.Config, error) {
	e, err := res.Config.Get(ctx, bus.KeyConfig)
	if bus.IsNotFound(err) {
		return contract.Config{}, kit.Errorf(403, "no config was submitted: POST /deployment-engine/config first")
	}
	if err != nil {
		return contract.Config{}, fmt.Errorf("read the config: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rev != 0 && c.rev == e.Revision() {
		return c.cfg, nil
	}
	cfg, err := bus.DecodeConfig(e.Value())
	if err != nil {
		return contract.Config{}, err
	}
	c.rev, c.cfg = e.Revision(), cfg
	return cfg, nil
}

// healNotes adds auto-heal's verdict to the DOWN entries it concerns: an
// instance it gave up on says so, and while the meltdown guard holds,
// every DOWN entry says that nothing is being healed. When no heal service
// answers at once, status is what the nodes report, nothing more.
func (m *Monitor) healNotes(ctx context.Context, out []contract.StatusEntry) {
	down := false
	for _, e := range out {
		down = down || e.Status == "DOWN"
	}
	if !down {
		return // nothing for auto-heal to add to
	}
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
