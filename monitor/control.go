package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/monitor/monit"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeclient"
	"github.com/deployment-engine/engine/services/subject"
)

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
				procs, err := m.processes(ctx, cfg.CatalogName(), t.Comp, ip, n.hb, hasAgent)
				switch {
				case err != nil:
					r.Error = err.Error()
				case len(procs) == 0:
					r.Error = "the catalog has no monit process for " + t.Comp + ", and no monit file on the node names one"
				}
				// Every process of the instance, one after another; the
				// first that fails ends it, named.
				for _, proc := range procs {
					if hasAgent {
						r.Via, r.Error = "agent", m.viaAgent(ctx, ip, c.Action, proc, wait)
					} else {
						r.Via, r.Error = "ssh", m.viaSSH(ctx, ip, c.Action, proc, wait)
					}
					if r.Error != "" {
						if len(procs) > 1 {
							r.Error = "process " + proc + ": " + r.Error
						}
						break
					}
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

// processes are the monit processes of comp: the catalog's one, or, for a
// BOSH job, which is in no catalog, every process its node's agent was
// told by the deployment — or, when the agent has not reported the job
// (late, or none), every process the job's monit file on the node checks.
func (m *Monitor) processes(ctx context.Context, catalog, comp, ip string, hb contract.Heartbeat, hasAgent bool) ([]string, error) {
	if proc, ok := m.o.Process(catalog, comp); ok {
		return []string{proc}, nil
	}
	if hasAgent {
		for _, s := range hb.Components {
			if s.Name == comp {
				return s.AllProcesses(), nil
			}
		}
	}
	return m.checksOverSSH(ctx, ip, comp)
}

// checksOverSSH reads the processes that comp's monit file on the node
// checks; a job with no file has none.
func (m *Monitor) checksOverSSH(ctx context.Context, ip, comp string) ([]string, error) {
	script := `f=/etc/monit/conf.d/` + kit.ShellQuote(comp) + `
[ -f "$f" ] || exit 0
awk '$1 == "check" && $2 == "process" { gsub(/"/, "", $3); print $3 }' "$f"`
	x, err := nodeclient.Exec(ctx, m.o.NC, ip, script, readTimeout)
	if err == nil && x.Error != "" {
		err = errors.New(x.Error)
	}
	if err == nil && x.ExitCode != 0 {
		err = fmt.Errorf("exit code %d: %s", x.ExitCode, firstLines(x.Output))
	}
	if err != nil {
		return nil, fmt.Errorf("read the monit file of %s over SSH (its agent has not reported it): %w", comp, err)
	}
	return strings.Fields(x.Output), nil
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
	r, err := nodeclient.Exec(ctx, m.o.NC, ip, script.String(), wait+5*time.Second)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("unreachable: no answer over SSH within %s", wait+10*time.Second)
	}
	if err != nil {
		return "reach the node over SSH: " + err.Error()
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
