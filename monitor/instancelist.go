package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// instanceList answers de.cmd.monitor.instances: the cluster's instances
// as `bosh instances --ps` shows them, from what /status shows of each
// component and each node's last heartbeat's processes. With a deployed
// manifest an instance is a machine of an instance group; without one, a
// component on a node.
func (m *Monitor) instanceList(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, err := m.cfg.load(ctx, m.o.Res)
	if err != nil {
		return 0, nil, err
	}
	code, raw, err := m.status(ctx, nil)
	if err != nil {
		return code, nil, err
	}
	var entries []contract.StatusEntry
	if err := json.Unmarshal(raw.(kit.RawJSON), &entries); err != nil {
		return 0, nil, fmt.Errorf("read the status entries: %w", err)
	}
	byTarget := make(map[string]contract.StatusEntry, len(entries))
	for _, e := range entries {
		byTarget[e.Comp+"@"+e.Ip] = e
	}
	var rec contract.ManifestRecord
	if e, err := m.o.Res.Engine.Get(ctx, bus.KeyManifest); err == nil {
		_ = json.Unmarshal(e.Value(), &rec) // no record: no groups
	} else if !bus.IsNotFound(err) {
		return 0, nil, err
	}
	now := time.Now()
	nodes := m.snapshot()
	out := []contract.Instance{}
	for _, inst := range placeInstances(cfg, rec) {
		for _, comp := range inst.comps {
			e := byTarget[comp+"@"+inst.IP]
			j := contract.InstanceJob{Name: comp, Status: e.Status, Reason: e.Reason, Processes: []contract.ProcessState{}}
			if n, ok := nodes[inst.IP]; ok && m.fresh(&n, now) {
				j.Processes = processesOf(n.hb, comp)
			}
			inst.Jobs = append(inst.Jobs, j)
		}
		inst.State = stateOf(inst.Jobs)
		out = append(out, inst.Instance)
	}
	return 200, out, nil
}

// placed is an instance and the components it holds.
type placed struct {
	contract.Instance
	comps []string
}

// placeInstances lays out the config's instances: the manifest's groups'
// machines first, each holding every component the config puts on it,
// then every component instance on a node no group holds.
func placeInstances(cfg contract.Config, rec contract.ManifestRecord) []placed {
	az := map[string]string{}
	for _, zone := range contract.SortedKeys(cfg.Properties.AZs) {
		for _, ip := range cfg.Properties.AZs[zone] {
			az[ip] = zone
		}
	}
	onNode := map[string][]string{}
	for _, comp := range contract.SortedKeys(cfg.Components) {
		for _, ip := range cfg.Components[comp] {
			if !slices.Contains(onNode[ip], comp) {
				onNode[ip] = append(onNode[ip], comp)
			}
		}
	}
	var out []placed
	grouped := map[string]bool{}
	for _, g := range contract.SortedKeys(rec.Placement) {
		for i, ip := range rec.Placement[g] {
			if len(onNode[ip]) == 0 || grouped[ip] {
				continue // the config no longer places it
			}
			grouped[ip] = true
			out = append(out, placed{Instance: contract.Instance{Group: g, Index: i, ID: fmt.Sprintf("%s/%d", g, i), AZ: az[ip], IP: ip}, comps: onNode[ip]})
		}
	}
	for _, comp := range contract.SortedKeys(cfg.Components) {
		for i, ip := range cfg.Components[comp] {
			if !grouped[ip] {
				out = append(out, placed{Instance: contract.Instance{Group: comp, Index: i, ID: fmt.Sprintf("%s/%d", comp, i), AZ: az[ip], IP: ip}, comps: []string{comp}})
			}
		}
	}
	return out
}

// processesOf is each monit process of comp in hb; an agent older than
// the process list reports the first alone.
func processesOf(hb contract.Heartbeat, comp string) []contract.ProcessState {
	out := []contract.ProcessState{}
	for _, c := range hb.Components {
		if c.Name != comp {
			continue
		}
		if len(c.Procs) > 0 {
			return append(out, c.Procs...)
		}
		if c.Process != "" {
			out = append(out, contract.ProcessState{Name: c.Process, State: c.Monit, Running: c.Running})
		}
	}
	return out
}

// stateOf is an instance's state from its jobs' statuses.
func stateOf(jobs []contract.InstanceJob) string {
	state := contract.InstanceRunning
	for _, j := range jobs {
		switch j.Status {
		case contract.StatusRunning, contract.StatusConfigured:
		case contract.StatusMaintenance:
			return contract.InstanceMaintenance
		default:
			state = contract.InstanceFailing
		}
	}
	return state
}
