package steps

import (
	"time"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/services/contract"
)

// Release is a BOSH release's rendered plan (bosh.MakePlan) with how its
// jobs and the config's components name each other.
type Release struct {
	Plan *bosh.Plan
	// CompOf is the component of the config a job stands for.
	CompOf func(job string) string
	// JobOf is the job a component of the config runs, the one its
	// removal stops.
	JobOf func(comp string) string
}

// ReleaseSteps are the steps of a release deployment: the node's own
// steps, then the release's, with the node agent told every process of
// each job.
func (in Builder) ReleaseSteps(r Release) ([]*Step, error) {
	in.Catalog = nil
	in.agentComps = map[string][]contract.AgentComponent{}
	for _, inst := range r.Plan.Instances {
		if inst.Errand {
			// Nothing of an errand runs for the agent to watch.
			continue
		}
		// The job's own logs, as BOSH keeps them, followed into the
		// engine's instance log (the agent follows files made later too).
		c := contract.AgentComponent{Name: r.CompOf(inst.Job), Logs: []string{"/var/vcap/sys/log/" + inst.Job + "/*.log"}}
		if len(inst.Processes) > 0 {
			c.Process = inst.Processes[0]
		}
		if len(inst.Processes) > 1 {
			// Every process is watched and controlled, not the first alone.
			c.Processes = inst.Processes
		}
		in.agentComps[inst.Node] = append(in.agentComps[inst.Node], c)
	}
	body := func(base map[string]string) ([]*Step, error) {
		var out []*Step
		for _, s := range r.Plan.Steps {
			ps := &Step{Spec: s.Spec, After: s.After, Prio: s.Prio}
			if s.Spec.Action == "vcap" && base[s.Spec.Node] != "" {
				ps.After = append(ps.After, base[s.Spec.Node])
			}
			out = append(out, ps)
		}
		return out, nil
	}
	removal := func(ip, comp string) *Step {
		return &Step{Spec: contract.Step{Node: ip, Component: comp, Action: "remove", Script: bosh.RemoveScript(r.JobOf(comp)),
			Hash: Hash("remove", comp, time.Now().String())}, Prio: -200}
	}
	out, err := in.frame(body, removal)
	if err != nil {
		return nil, err
	}
	bpmLast(out, r.JobOf)
	return out, nil
}

// bpmLast makes the removal of a node's job named bpm wait for the other
// removals on that node: a job whose processes bpm runs is stopped by
// monit through bpm's bin/bpm, which goes with the bpm job.
func bpmLast(out []*Step, jobOf func(comp string) string) {
	removals := map[string][]*Step{}
	for _, s := range out {
		if s.Spec.Action == "remove" {
			removals[s.Spec.Node] = append(removals[s.Spec.Node], s)
		}
	}
	for _, rms := range removals {
		for _, s := range rms {
			if jobOf(s.Spec.Component) != bosh.BPMJob {
				continue
			}
			for _, other := range rms {
				if other != s {
					s.After = append(s.After, other.Spec.ID)
				}
			}
		}
	}
}
