package installer

import (
	"context"
	"encoding/json"
	"errors"
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
}

// executeChain runs the steps once, in order, and reports each step's
// start and success as it happens, its result stored before the next
// step begins. It returns the index of the step that stopped the chain,
// with its exit code and error (or len(runs) and nil), and whether every
// result it reported was stored.
func (i *Installer) executeChain(runs []*stepRun) (int, int, bool, error) {
	for k := 0; k < len(runs); {
		if !chainable(runs[k].s) {
			// Files from this machine go file by file, as a step alone.
			runs[k].started = time.Now().UTC()
			state, code, err := runs[k].execute()
			if err != nil {
				return k, code, true, err
			}
			if !runs[k].succeed(state) {
				return k, 0, false, nil
			}
			k++
			continue
		}
		j := k
		for j < len(runs) && chainable(runs[j].s) {
			j++
		}
		stopped, code, stored, err := i.runSegment(runs[k:j])
		if err != nil || !stored {
			return k + stopped, code, stored, err
		}
		k = j
	}
	return len(runs), 0, true, nil
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

func codePtr(c int) *int {
	if c < 0 {
		return nil
	}
	return &c
}

// errScript is a script that ran and failed: no retry mends it.
type errScript struct {
	code int
	tail string
}

func (e errScript) Error() string {
	if e.tail == "" {
		return fmt.Sprintf("exited with status %d", e.code)
	}
	return fmt.Sprintf("exited with status %d: %s", e.code, e.tail)
}

// execute runs the step once: it returns the final state and exit code,
// or an error (permanent or not).
func (r *stepRun) execute() (string, int, error) {
	i, s := r.i, r.s
	timeout := stepTimeout(s)
	ctx, cancel := context.WithTimeout(r.ctx, timeout+time.Minute)
	defer cancel()
	cfg, err := i.config(ctx)
	if err != nil {
		return "", -1, err
	}
	auth, err := i.nodeAuth(ctx, cfg)
	if err != nil {
		return "", -1, err
	}
	c, err := i.client(ctx, s.Node, auth)
	if err != nil {
		return "", -1, err
	}
	_ = r.report(contract.StateRunning, nil, "", false)
	key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
	// An earlier attempt of this step may still run on the node (its
	// installer died, or its message came back): never run two at once.
	note, err := settle(ctx, c, key, s.Hash)
	if err != nil {
		return "", -1, fmt.Errorf("an earlier run of %s on %s: %w", s.Key, s.Node, err)
	}
	if note != "" {
		r.line("stdout", note)
	}
	have, err := output(ctx, c, "cat "+marker+" 2>/dev/null || true", nil)
	if err != nil {
		return "", -1, fmt.Errorf("read step marker on %s: %w", s.Node, err)
	}
	if f := strings.Fields(string(have)); len(f) >= 1 && f[0] == s.Hash {
		if len(f) >= 2 && f[1] == s.Deployment {
			// This deployment completed it before the engine stopped.
			return contract.StateSucceeded, 0, nil
		}
		return contract.StateUnchanged, 0, nil
	}
	if s.Claim {
		owner, _ := output(ctx, c, nodefs.ReadOwner, nil)
		if nodefs.OwnedElsewhere(string(owner), s.Engine) {
			return "", -1, permanent{fmt.Errorf("%s is owned by engine %s; remove %s on the node to hand it to this engine", s.Node, strings.TrimSpace(string(owner)), nodefs.Owner)}
		}
	}
	if len(s.Files) > 0 && strings.TrimSpace(string(have)) != "" {
		// The node is about to leave the state its marker records: a step
		// that fails from here on must not pass for the old one applied
		// (a revert to it would find nothing to do).
		if _, err := output(ctx, c, "rm -f "+marker, nil); err != nil {
			return "", -1, fmt.Errorf("clear step marker on %s: %w", s.Node, err)
		}
	}
	for _, f := range s.Files {
		sent, err := i.upload(ctx, c, f)
		if err != nil {
			return "", -1, err
		}
		if sent {
			r.line("stdout", "sent "+f.Path)
		}
	}
	pre, err := r.prelude(ctx, cfg)
	if err != nil {
		return "", -1, err
	}
	var tail []string
	red := cfg.OutputRedactor()
	deadline := time.Now().Add(timeout + 5*time.Second)
	res := runStep(ctx, c, stepJob{key: key, hash: s.Hash, deployment: s.Deployment, until: deadline}, withPrelude(pre, s.Script), timeout, func(stream, text string) {
		if stream == "stderr" {
			tail = append(tail, text)
			if len(tail) > 5 {
				tail = tail[1:]
			}
		}
		r.line(stream, red.Redact(text))
	})
	switch {
	case r.cancelled.Load() != nil:
		return "", -1, permanent{errors.New("cancelled")}
	case res.err == nil && res.code == exitLocked:
		return "", -1, errors.New("another run of this step holds its lock on the node")
	case errors.Is(res.err, context.DeadlineExceeded) || (res.err == nil && res.code == 124):
		return "", -1, permanent{fmt.Errorf("timed out after %s; the command was killed on the node", timeout)}
	case res.err != nil:
		return "", -1, res.err
	case res.code != 0:
		return "", res.code, permanent{errScript{code: res.code, tail: red.Redact(strings.Join(tail, " | "))}}
	}
	return contract.StateSucceeded, 0, nil
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
		fmt.Fprintf(&pre, "mkdir -p %s && echo %s > %s\n", nodefs.State, kit.ShellQuote(s.Engine), nodefs.Owner)
	}
	// Checked again under the step's lock on the node: a run that finished
	// while this one waited leaves nothing to do.
	fmt.Fprintf(&pre, "h=; [ ! -f %[1]s ] || read -r h _ < %[1]s; if [ \"$h\" = %[2]s ]; then echo 'applied meanwhile by an earlier run'; exit 0; fi\n", marker, s.Hash)
	// From here the node leaves what the marker records, until the
	// script succeeds and writes the new one.
	fmt.Fprintf(&pre, "[ ! -e %[1]s ] || rm -f %[1]s\n", marker)
	// The marker is written when, and only when, the script succeeds. A
	// write cut short leaves a marker that matches nothing: the step runs
	// again, which is all a marker decides. The shell does it all itself:
	// a step's bookkeeping costs the node no process.
	fmt.Fprintf(&pre, "trap 'rc=$?; : > %[1]s/%[6]s.pgid; if [ $rc -eq 0 ]; then [ -d %[5]s ] || mkdir -p %[5]s; printf \"%%s %%s\\n\" %[2]s %[3]s > %[4]s; fi' EXIT\n",
		nodefs.Run, s.Hash, s.Deployment, marker, nodefs.Applied, key)
	return pre.String(), nil
}

// withPrelude is a step's script after its prelude, in a subshell of its
// own: what the script does to its shell (a trap on EXIT, an exit) cannot
// take the place of the prelude's trap that writes the step's marker.
func withPrelude(pre, script string) string {
	return pre + "(\n" + strings.TrimSuffix(script, "\n") + "\n)\n"
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
