package installer

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

// stepRun is one attempt at a step.
type stepRun struct {
	i *Installer
	s contract.Step
	// attempt numbers this try among all the step's tries: the message's
	// delivery counted on from the step's Attempt.
	attempt int
	started time.Time
	seq     atomic.Int64
	ctx     context.Context
	// cancelled holds why the run was cancelled, if it was.
	cancelled atomic.Pointer[string]
	// ended is set once the step's final event is stored.
	ended atomic.Bool
	// tail is its script's last lines of stderr; output writes it.
	tail stderrTail
	// kept is the last of its output, both streams, redacted, when the
	// step keeps it (Step.KeepOutput); output writes it, report reads it.
	kept outputTail
	// stdout and stderr are its streams kept apart, redacted, when the
	// step keeps them (Step.KeepStreams).
	stdout, stderr streamTail
}

// stepTimeout is a step's deadline on the node.
func stepTimeout(s contract.Step) time.Duration {
	if s.TimeoutS <= 0 {
		return 15 * time.Minute
	}
	return time.Duration(s.TimeoutS) * time.Second
}

// succeed reports a step done; false when its event was not stored.
func (r *stepRun) succeed(state string) bool {
	zero := 0
	if err := r.report(state, &zero, "", true); err != nil {
		r.i.log.Error("the step's result could not be stored; leaving the step to come back", "step", r.s.ID, "err", err)
		return false
	}
	r.i.metrics.steps.WithLabelValues(state).Inc()
	return true
}

// ownedBy is the error of a claim whose node another engine owns.
func (r *stepRun) ownedBy(owner string) error {
	return permanent{fmt.Errorf("%s is owned by engine %s; remove %s on the node to hand it to this engine", r.s.Node, owner, nodefs.Owner)}
}

// prelude is what runs before a step's own script, under its lock: its
// secrets, the node's owner for a claim, the check that an earlier run did
// not apply it meanwhile, and the trap that writes its marker on success.
func (r *stepRun) prelude(ctx context.Context, cfg contract.Config) (string, error) {
	s := r.s
	key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
	var pre strings.Builder
	for _, name := range s.SecretEnv {
		val, err := r.i.secretFor(ctx, cfg, name, s.Node)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&pre, "export DE_SECRET_%s=%s\n", strings.ToUpper(name), kit.ShellQuote(val))
	}
	if s.Claim {
		cluster := cmp.Or(r.i.o.Cluster, contract.DefaultCluster)
		fmt.Fprintf(&pre, "{ [ -d %[1]s ] || mkdir -p %[1]s; } && echo %[2]s > %[3]s && echo %[4]s > %[5]s\n", nodefs.State, kit.ShellQuote(s.Engine), nodefs.Owner, kit.ShellQuote(cluster), nodefs.Cluster)
	}
	// Checked again under the step's lock on the node: a run that finished
	// while this one waited leaves nothing to do.
	fmt.Fprintf(&pre, "h=; [ ! -f %[1]s ] || read -r h _ < %[1]s; if [ \"$h\" = %[2]s ]; then echo 'applied meanwhile by an earlier run'; exit 0; fi\n", marker, s.Hash)
	// From here the node leaves what the marker records, until the
	// script succeeds and writes the new one.
	pre.WriteString(nodefs.Unmark(s.Key) + "\n")
	// The marker is written when, and only when, the script succeeds. A
	// write cut short leaves a marker that matches nothing: the step runs
	// again, which is all a marker decides. The shell does it all itself:
	// a step's bookkeeping costs the node no process.
	fmt.Fprintf(&pre, "trap 'rc=$?; : > %[1]s/%[6]s.pgid; if [ $rc -eq 0 ]; then [ -d %[5]s ] || mkdir -p %[5]s; printf \"%%s %%s\\n\" %[2]s %[3]s > %[4]s; fi' EXIT\n",
		nodefs.Run, s.Hash, s.Deployment, marker, nodefs.Applied, key)
	return pre.String(), nil
}

// withPrelude is a step's script after its prelude, in a subshell of its
// own: what the script does to its shell (a trap on EXIT, an exec) cannot
// take the place of the prelude's trap that writes the step's marker, and
// the subshell holds neither the step's lock (fd 9) nor, in a chain, the
// pipe that tells the chain's shell the step's shell is alive (fd 7), for
// a process the script leaves running to keep. A bare script (the engine's
// own, which does none of that) runs in the step's shell: an exit runs the
// prelude's trap, and what it starts ends before it does.
func withPrelude(pre string, s contract.Step) string {
	if s.Bare {
		return pre + s.Script
	}
	return pre + "(exec 7>&- 9>&-\n" + strings.TrimSuffix(s.Script, "\n") + "\n)\n"
}

// output publishes a line of the step's script, redacted, and keeps the
// last of stderr for its error. Its caller makes the calls one at a time.
func (r *stepRun) output(red contract.OutputRedactor, stream, text string) {
	r.tail.add(stream, text)
	text = red.Redact(text)
	if r.s.KeepOutput {
		r.kept.add(text)
	}
	if r.s.KeepStreams > 0 {
		t := &r.stdout
		if stream == "stderr" {
			t = &r.stderr
		}
		t.max = min(r.s.KeepStreams, contract.MaxStreamBytes)
		t.add(text)
	}
	r.line(stream, text)
}

func (r *stepRun) line(stream, text string) {
	s := r.s
	l := contract.LogLine{V: contract.Version, Deployment: s.Deployment, Node: s.Node, Component: s.Component, Step: s.ID,
		Stream: stream, Seq: r.seq.Add(1), Time: time.Now().UTC(), Line: text}
	b, _ := json.Marshal(l)
	// Core publish keeps the lines of one step in order and fast; the
	// event stream stores them.
	if err := r.i.o.NC.Publish(subject.Log(s.Deployment, s.Node, s.Component), b); err != nil {
		r.i.log.Warn("publish log line", "err", err)
	}
}

// report publishes a step event and returns once the event stream has
// stored it, retrying for a while when the bus does not answer.
func (r *stepRun) report(state string, code *int, errMsg string, final bool) error {
	s := r.s
	ev := contract.StepEvent{V: contract.Version, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Component: s.Component,
		Action: s.Action, State: state, Attempt: r.attempt, ExitCode: code, Error: errMsg, Final: final}
	if !r.started.IsZero() {
		ev.Started = &r.started
	}
	if final || state == contract.StateFailed {
		now := time.Now().UTC()
		ev.Finished = &now
	}
	if final && s.KeepOutput {
		ev.Output = r.kept.String()
	}
	if final && s.KeepStreams > 0 {
		ev.Stdout, ev.Stderr = r.stdout.String(), r.stderr.String()
	}
	b, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Log lines went out on the same connection first; flush them so the
	// result never overtakes them.
	_ = r.i.o.NC.FlushWithContext(ctx)
	var err error
	for {
		if _, err = r.i.o.Res.JS.Publish(ctx, subject.DeployEvent(s.Deployment, subject.DeployStep), b); err == nil {
			if final {
				r.ended.Store(true)
			}
			return nil
		}
		r.i.log.Warn("publish step event", "step", s.ID, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish step event: %w", err)
		case <-r.i.ctx.Done():
			return fmt.Errorf("publish step event: %w", err)
		case <-time.After(time.Second):
		}
	}
}
