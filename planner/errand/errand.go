// Package errand plans the run of a release's errand: a job whose
// templates include bin/run (bosh.IsErrand). A deployment places an
// errand's instances as the config places them and never starts them; a
// run is a deployment of kind errand, one step an instance, all at once,
// each running the instance's rendered bin/run and keeping its exit code,
// stdout and stderr (contract.StepStatus).
//
// Whether a run is needed is the node's to say, as for any step: a run
// step's key is the instance's errand marker and its hash the instance's
// inputs (its rendered templates and its packages' fingerprints,
// bosh.Instance.Hash), written only when bin/run exits 0. A run asked
// with when_changed is found unchanged where its inputs are those of the
// last successful run; any other run first forgets the marker, so it
// always runs and a later when_changed run compares with it.
package errand

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// ForgetAction is the action of the step that makes a run's step run
// whatever the node's marker says.
const ForgetAction = "forget"

// NotPlaced is the exit code of a run step whose node does not hold the
// errand as the config renders it now: the config was changed and not
// deployed since, or never deployed.
const NotPlaced = 125

// List is the errands d places, by name.
func List(d *bosh.Deployment) []contract.Errand {
	out := []contract.Errand{}
	for _, job := range contract.SortedKeys(d.Jobs) {
		if !bosh.IsErrand(d.Release.Specs[job]) || len(d.Jobs[job]) == 0 {
			continue
		}
		out = append(out, contract.Errand{Name: job, Component: d.CompOf(job),
			Release: d.Release.JobFrom(job).Ref(), Nodes: append([]string(nil), d.Jobs[job]...)})
	}
	return out
}

// Find is the job of errand name in d, or a 404 that names the errands d
// has.
func Find(d *bosh.Deployment, name string) (string, error) {
	var have []string
	for _, e := range List(d) {
		if e.Name == name || e.Component == name {
			return e.Name, nil
		}
		have = append(have, e.Name)
	}
	msg := fmt.Sprintf("no errand %q in the config", name)
	if _, placed := d.Jobs[name]; placed {
		msg = fmt.Sprintf("job %q is no errand: its templates have no bin/run", name)
	}
	if len(have) == 0 {
		return "", &kit.Error{Code: 404, Msg: contract.Clip(msg + ": the config places no errand")}
	}
	return "", &kit.Error{Code: 404, Msg: contract.Clip(msg + ": it has " + strings.Join(have, ", "))}
}

// Run renders d and is the record of a run of errand in.Name, deployment
// id, and what its start answers. An unknown errand is a 404 naming the
// ones there are.
func Run(ctx context.Context, d *bosh.Deployment, in contract.ErrandRun, id, engine string) (*sched.Record, contract.ErrandStarted, error) {
	if ps := in.Problems(); len(ps) > 0 {
		return nil, contract.ErrandStarted{}, refused(ps)
	}
	job, err := Find(d, in.Name)
	if err != nil {
		return nil, contract.ErrandStarted{}, err
	}
	insts, ps, err := bosh.RenderAll(ctx, d)
	if err != nil {
		return nil, contract.ErrandStarted{}, fmt.Errorf("render errand %s: %w", job, err)
	}
	for _, p := range ps {
		if p.Component == job {
			return nil, contract.ErrandStarted{}, &kit.Error{Code: 409, Msg: contract.Clip("errand " + job + " does not render: " + p.Reason)}
		}
	}
	var mine []bosh.Instance
	for _, inst := range insts {
		if inst.Job == job {
			mine = append(mine, inst)
		}
	}
	planned, err := Steps(steps.Builder{ID: id, Engine: engine}, d.CompOf(job), mine, in.WhenChanged, in.TimeoutS())
	if err != nil {
		return nil, contract.ErrandStarted{}, err
	}
	rec := sched.NewRecord(id, map[string][]string{}, planned)
	// Every instance runs, whatever another's exit code.
	rec.Kind, rec.Through = contract.KindErrand, true
	started := contract.ErrandStarted{ID: id, Name: job}
	for _, inst := range mine {
		started.Nodes = append(started.Nodes, inst.Node)
	}
	return rec, started, nil
}

// Steps are the steps of a run of an errand's instances insts, of
// component comp: per instance its run (after a forget, unless
// whenChanged), all instances at once.
func Steps(b steps.Builder, comp string, insts []bosh.Instance, whenChanged bool, timeoutS int) ([]*steps.Step, error) {
	if len(insts) == 0 {
		return nil, errors.New("the errand has no instance")
	}
	var out []*steps.Step
	seen := map[string]bool{}
	for _, inst := range insts {
		if !inst.Errand {
			return nil, fmt.Errorf("job %s is no errand", inst.Job)
		}
		if seen[inst.Node] {
			// Two instances of one job on a node share its files.
			continue
		}
		seen[inst.Node] = true
		key := MarkerKey(inst.Job)
		run := &steps.Step{Spec: contract.Step{Node: inst.Node, Component: comp, Action: contract.ErrandAction, Key: key,
			Hash: inst.Hash, Script: RunScript(inst.Job, inst.Hash), TimeoutS: timeoutS, KeepStreams: StreamBytes(len(insts))}}
		if !whenChanged {
			forget := b.Stamped(&steps.Step{Spec: contract.Step{Node: inst.Node, Component: comp, Action: ForgetAction,
				Key: key + "-forget", Hash: steps.Hash(ForgetAction, b.ID, inst.Node), Script: "rm -f " + nodefs.Marker(key) + "\n"}})
			out = append(out, forget)
			run.After = []string{forget.Spec.ID}
		}
		out = append(out, b.Stamped(run))
	}
	return out, nil
}

// StreamsBudget bounds the streams a run keeps, all instances together:
// the deployment's record holds them, and is stored whole.
const StreamsBudget = 4 << 20

// StreamBytes is how much of each stream every instance of a run of n
// keeps: contract.MaxStreamBytes, less when StreamsBudget would not hold
// that much of both streams of every instance, and never under 256 bytes.
func StreamBytes(n int) int {
	return max(256, min(contract.MaxStreamBytes, StreamsBudget/(2*max(n, 1))))
}

// MarkerKey is the key of an errand's run steps on a node: under the
// job's prefix, so that the job's removal forgets it too.
func MarkerKey(job string) string { return "bosh.job." + job + ".errand" }

// RunScript runs an errand's bin/run as root from its job's directory,
// once the node holds the version hash of the job (else it exits
// NotPlaced, saying so on stderr); its exit code is the step's.
func RunScript(job, hash string) string {
	return fmt.Sprintf(`job=%[1]s
want=%[2]s/data/jobs/$job/%[3]s
if [ "$(readlink %[4]s/$job 2>/dev/null)" != "$want" ] || [ ! -x "$want/bin/run" ]; then
  echo "errand $job is not placed on this node as the config renders it now: deploy the config, then run the errand" >&2
  exit %[5]d
fi
cd "$want"
exec "$want/bin/run"
`, kit.ShellQuote(job), bosh.VcapDir, hash, bosh.JobsDir, NotPlaced)
}

// refused is a run's 400, naming each field at fault.
func refused(ps []contract.Problem) *kit.Error {
	var why []string
	for _, p := range ps {
		why = append(why, p.Path+": "+p.Reason)
	}
	return &kit.Error{Code: 400, Msg: contract.Clip("errand refused: " + strings.Join(why, "; ")), Problems: ps}
}
