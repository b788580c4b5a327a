package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/monitor/monit"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// instances lists the config's component instances in a stable order.
func instances(cfg contract.Config) []contract.Target {
	var out []contract.Target
	for _, comp := range contract.SortedKeys(cfg.Components) {
		for _, ip := range cfg.Components[comp] {
			out = append(out, contract.Target{Comp: comp, IP: ip})
		}
	}
	return out
}

// selectTargets resolves a target against the config: 400 when it names no
// instance.
func selectTargets(cfg contract.Config, t contract.Target) ([]contract.Target, error) {
	if strings.EqualFold(t.Comp, "all") && t.IP == "0.0.0.0" {
		return instances(cfg), nil
	}
	if t.Comp == "" || t.IP == "" {
		return nil, kit.Errorf(400, "name the component and its IP, or all and 0.0.0.0 for the whole cluster")
	}
	ips, ok := cfg.Components[t.Comp]
	if !ok {
		return nil, kit.Errorf(400, "the config has no component %q", t.Comp)
	}
	if !slices.Contains(ips, t.IP) {
		return nil, kit.Errorf(400, "component %s does not run on %s (it runs on %s)", t.Comp, t.IP, strings.Join(ips, ", "))
	}
	return []contract.Target{t}, nil
}

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
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	rep, err := kit.Request(ctx, m.o.NC, subject.InstallerProbe(), contract.Probe{
		V: contract.Version, Nodes: nodes, TimeoutMS: 10000,
		Auth: contract.Auth{Password: cfg.Properties.Root, Key: cfg.Properties.Key},
	})
	if err != nil {
		return nil, kit.Errorf(502, "read the hardware of %s: %v", strings.Join(nodes, ", "), err)
	}
	var out contract.ProbeReply
	if rep.Code != 200 || json.Unmarshal(rep.Body, &out) != nil {
		return nil, kit.Errorf(502, "read the hardware of %s: the installer answered %d", strings.Join(nodes, ", "), rep.Code)
	}
	return out.Nodes, nil
}

// control runs monit restart or stop on the targets and waits for the
// outcome on each node: through the node's agent when it reports, over SSH
// otherwise. Nodes run in parallel, each within its own deadline; one
// node's instances one after another, as monit runs them.
func (m *Monitor) control(ctx context.Context, req micro.Request) (int, any, error) {
	var c contract.ControlRequest
	if err := kit.Decode(req, &c); err != nil {
		return 0, nil, err
	}
	if c.Action != "restart" && c.Action != "stop" {
		return 0, nil, kit.Errorf(400, "unknown action %q: restart or stop", c.Action)
	}
	cfg, err := m.config(ctx)
	if err != nil {
		return 0, nil, err
	}
	targets, err := selectTargets(cfg, c.Target)
	if err != nil {
		return 0, nil, err
	}
	byNode := map[string][]int{}
	for i, t := range targets {
		byNode[t.IP] = append(byNode[t.IP], i)
	}
	wait := m.o.ControlWait
	if wait <= 0 {
		wait = monit.Wait(c.Action)
	}
	out := make([]contract.ControlResult, len(targets))
	nodes := m.snapshot()
	var wg sync.WaitGroup
	for ip, idx := range byNode {
		n, hasAgent := nodes[ip]
		hasAgent = hasAgent && m.fresh(&n, time.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, i := range idx {
				t := targets[i]
				r := contract.ControlResult{Comp: t.Comp, Ip: t.IP}
				proc, ok := m.o.Process(cfg.CatalogName(), t.Comp)
				if !ok && hasAgent {
					// A BOSH job's processes are in no catalog: its node's
					// agent was told them by the deployment.
					for _, s := range n.hb.Components {
						if s.Name == t.Comp && s.Process != "" {
							proc, ok = s.Process, true
						}
					}
				}
				if !ok {
					r.Error = "the catalog has no monit process for " + t.Comp
				} else if hasAgent {
					r.Via, r.Error = "agent", m.viaAgent(ctx, ip, c.Action, proc, wait)
				} else {
					r.Via, r.Error = "ssh", m.viaSSH(ctx, ip, c.Action, proc, wait)
				}
				r.OK = r.Error == ""
				out[i] = r
			}
		}()
	}
	wg.Wait()
	var problems []contract.Problem
	for _, r := range out {
		msg := fmt.Sprintf("%s %s on %s: ok (via %s)", c.Action, r.Comp, r.Ip, r.Via)
		if !r.OK {
			problems = append(problems, contract.Problem{Component: r.Comp, IP: r.Ip, Reason: r.Error})
			msg = fmt.Sprintf("%s %s on %s failed: %s", c.Action, r.Comp, r.Ip, r.Error)
		}
		m.engineEvent(c.Action, msg)
	}
	if len(problems) > 0 {
		// The API's error body, with every instance's outcome beside it.
		e := fmt.Sprintf("%s failed on %d of %d: %s %s on %s: %s", c.Action, len(problems), len(out), c.Action, problems[0].Component, problems[0].IP, problems[0].Reason)
		return 502, contract.ControlOutcome{Error: e, Problems: problems, Results: out}, nil
	}
	return 200, contract.ControlOutcome{Status: "ok", Results: out}, nil
}

// viaAgent asks the node's agent to run the action and wait for it.
func (m *Monitor) viaAgent(ctx context.Context, ip, action, proc string, wait time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, wait+5*time.Second)
	defer cancel()
	b, _ := json.Marshal(contract.Control{V: contract.Version, Action: action, Process: proc, TimeoutS: int(wait / time.Second)})
	msg, err := m.o.NC.RequestWithContext(ctx, subject.Node(ip, subject.VerbControl), b)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return "the node's agent is not connected"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return fmt.Sprintf("unreachable: the node's agent did not answer within %s", wait+5*time.Second)
	case err != nil:
		return "ask the node's agent: " + err.Error()
	}
	var r contract.ControlReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return "unreadable answer from the node's agent"
	}
	if !r.OK && r.Error == "" {
		return "the node's agent answered without an outcome"
	}
	return r.Error
}

// viaSSH runs the same control script over the installer's SSH connection.
func (m *Monitor) viaSSH(ctx context.Context, ip, action, proc string, wait time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
	defer cancel()
	var script strings.Builder
	script.WriteString("set --")
	for _, a := range monit.ControlArgs(action, proc, wait, monit.MarkDir) {
		script.WriteString(" " + kit.ShellQuote(a))
	}
	script.WriteString("\n" + monit.ControlScript)
	rep, err := kit.Request(ctx, m.o.NC, subject.InstallerExec(), contract.Exec{V: contract.Version, Node: ip, Script: script.String(), TimeoutS: int(wait/time.Second) + 5})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("unreachable: no answer over SSH within %s", wait+10*time.Second)
	}
	if err != nil {
		return "reach the node over SSH: " + err.Error()
	}
	var r contract.ExecReply
	if err := json.Unmarshal(rep.Body, &r); err != nil || rep.Code != 200 {
		return fmt.Sprintf("reach the node over SSH: the installer answered %d", rep.Code)
	}
	if r.Error != "" {
		return "unreachable over SSH: " + r.Error
	}
	return monit.Outcome(r.Output, r.ExitCode)
}

func (m *Monitor) engineEvent(kind, msg string) {
	if err := bus.PublishEngineEvent(context.Background(), m.o.Res.JS, kind, msg); err != nil {
		m.log.Warn("engine event", "err", err)
	}
}

// collector exports the latest state of every node.
type collector struct{ m *Monitor }

var (
	descNodeUp   = prometheus.NewDesc("de_node_up", "Whether the node's agent reported within its allowed silence (1) or not (0).", []string{"node"}, nil)
	descNodeSeen = prometheus.NewDesc("de_node_last_report_timestamp_seconds", "When the node's agent last reported.", []string{"node"}, nil)
	descNodeCPU  = prometheus.NewDesc("de_node_cpu_usage_percent", "The node's CPU use at its last report, in percent.", []string{"node"}, nil)
	descNodeMem  = prometheus.NewDesc("de_node_memory_usage_percent", "The node's memory use at its last report, in percent.", []string{"node"}, nil)
	descNodeDisk = prometheus.NewDesc("de_node_disk_usage_percent", "The node's root filesystem use at its last report, in percent.", []string{"node"}, nil)
	descCompUp   = prometheus.NewDesc("de_component_instance_up", "Whether the component instance runs (1) or not (0), as its node last reported.", []string{"component", "node"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodeUp, descNodeSeen, descNodeCPU, descNodeMem, descNodeDisk, descCompUp} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for ip, n := range c.m.snapshot() {
		up := 0.0
		if c.m.fresh(&n, now) {
			up = 1
		}
		g(descNodeUp, up, ip)
		g(descNodeSeen, float64(n.seen.Unix()), ip)
		g(descNodeCPU, n.hb.CPUPct, ip)
		g(descNodeMem, n.hb.MemPct, ip)
		g(descNodeDisk, n.hb.DiskPct, ip)
		for _, comp := range n.hb.Components {
			v := 0.0
			if comp.Running && up == 1 && n.hb.MonitError == "" {
				v = 1
			}
			g(descCompUp, v, comp.Name, ip)
		}
	}
}

// AgentPort is where every node agent serves /metrics.
const AgentPort = "9280"

// targets answers Prometheus' HTTP service discovery with every node of
// the config, so that a static scrape config follows scale-out and in.
func (m *Monitor) targets(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, err := m.config(ctx)
	if err != nil {
		return 0, nil, err
	}
	out := []contract.SDTarget{}
	for _, ip := range cfg.Nodes() {
		// node names each series by its IP, as the engine's own series do.
		out = append(out, contract.SDTarget{Targets: []string{net.JoinHostPort(ip, AgentPort)}, Labels: map[string]string{"node": ip}})
	}
	return 200, out, nil
}
