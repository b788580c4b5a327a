package monitor

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeclient"
)

// hardware answers GET /hardware for one instance or, with all + 0.0.0.0,
// every one. Nodes without an agent report are read over SSH.
func (m *Monitor) hardware(ctx context.Context, req micro.Request) (int, any, error) {
	var t contract.Target
	if err := kit.Decode(req, &t); err != nil {
		return 0, nil, err
	}
	cfg, err := m.config(ctx)
	if err != nil {
		return 0, nil, err
	}
	targets, err := selectTargets(cfg, t)
	if err != nil {
		return 0, nil, err
	}
	nodes := m.snapshot()
	known := map[string]contract.NodeHardware{}
	var ask []string
	for _, t := range targets {
		if n, ok := nodes[t.IP]; ok && n.hb.Hardware.CPU > 0 {
			known[t.IP] = n.hb.Hardware
		} else if !slices.Contains(ask, t.IP) {
			ask = append(ask, t.IP)
		}
	}
	failed := map[string]string{}
	if len(ask) > 0 {
		res, err := m.probe(ctx, cfg, ask)
		if err != nil {
			return 0, nil, err
		}
		for _, r := range res {
			if r.Reachable {
				known[r.IP] = r.Hardware
			} else {
				failed[r.IP] = "unreachable: " + r.Error
			}
		}
	}
	out := make([]contract.InstanceHardware, 0, len(targets))
	for _, t := range targets {
		h := known[t.IP]
		out = append(out, contract.InstanceHardware{Comp: t.Comp, IP: t.IP, CPU: h.CPU, RAM: h.RAM, DISK: h.DISK, Error: failed[t.IP]})
	}
	if len(out) == 1 && !(strings.EqualFold(t.Comp, "all") && t.IP == "0.0.0.0") {
		if out[0].Error != "" {
			// One node asked for and not read: the gateway's failure, with why.
			return 0, nil, kit.Errorf(502, "read the hardware of node %s (%s): %s", out[0].IP, out[0].Comp, out[0].Error)
		}
		return 200, out[0], nil
	}
	return 200, out, nil
}

func (m *Monitor) probe(ctx context.Context, cfg contract.Config, nodes []string) ([]contract.ProbeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(contract.ProbeRounds(len(nodes)))*10*time.Second+10*time.Second)
	defer cancel()
	res, err := nodeclient.Probe(ctx, m.o.NC, contract.Probe{Nodes: nodes, TimeoutMS: 10000,
		Auth: cfg.Properties.NodeAuth()})
	if err != nil {
		return nil, kit.Errorf(502, "read the hardware of %s: %v", strings.Join(nodes, ", "), err)
	}
	return res, nil
}
