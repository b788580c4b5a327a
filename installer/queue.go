package installer

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

type ended struct {
	why string
	at  time.Time
}

var hashRe = regexp.MustCompile(`^[0-9a-f]{8,64}$`)

// readStep decodes a step message; what it could not read is an error
// that names the problem, with the step as far as it was read.
func readStep(m jetstream.Msg) (contract.Step, error) {
	var s contract.Step
	if err := json.Unmarshal(m.Data(), &s); err != nil {
		return s, fmt.Errorf("the step message does not decode: %v", err)
	}
	if s.V > contract.StepVersionSealed {
		return s, fmt.Errorf("the step message has version %d; this installer reads up to %d", s.V, contract.StepVersionSealed)
	}
	if err := bus.OpenStep(&s); err != nil {
		return s, fmt.Errorf("the step message's files: %v", err)
	}
	switch {
	case s.Node == "" || s.ID == "":
		return s, fmt.Errorf("the step message names no node or no step")
	case !subject.ValidToken(s.Deployment):
		return s, fmt.Errorf("the step message names no valid deployment")
	case !hashRe.MatchString(s.Hash):
		return s, fmt.Errorf("the step message has no valid hash")
	case !subject.ValidToken(s.Engine):
		return s, fmt.Errorf("the step message names no valid engine")
	}
	return s, nil
}

func (i *Installer) handle(m jetstream.Msg) {
	meta, _ := m.Metadata()
	delivered := 1
	if meta != nil {
		delivered = int(meta.NumDelivered)
	}
	s, err := readStep(m)
	if err == nil {
		err = readChain(s)
	}
	// The planner numbers a step's first try from this message; the work
	// queue's redeliveries count on from there.
	first := max(s.Attempt, 1)
	attempt := first + delivered - 1
	if err != nil {
		i.unreadable(m, s, attempt, err)
		return
	}
	if why, ok := i.endedWhy(s.Deployment); ok {
		i.log.Info("step of an ended deployment dropped", "deployment", s.Deployment, "step", s.ID, "why", why)
		_ = m.Term()
		return
	}
	i.log.Debug("step taken", "deployment", s.Deployment, "step", s.ID, "node", s.Node, "attempt", attempt, "chained", len(s.Chain))
	ctx, cancel := context.WithCancel(i.ctx)
	defer cancel()
	steps := append([]contract.Step{s}, s.Chain...)
	steps[0].Chain = nil
	runs := make([]*stepRun, len(steps))
	for k, st := range steps {
		runs[k] = &stepRun{i: i, s: st, attempt: max(st.Attempt, 1) + delivered - 1, ctx: ctx}
	}
	head := runs[0]
	i.track(head, cancel, true)
	defer i.track(head, nil, false)
	stop := make(chan struct{})
	go i.keepAlive(m, runs, stop)
	out := i.awaitBoot(runs, i.execute(runs), head)
	close(stop)
	if i.ctx.Err() != nil || out.lost {
		return // stopping, or a result the engine never stored: the steps come back
	}
	if out.err == nil {
		_ = m.Ack()
		return
	}
	// A failed step ends its chain: the steps after it did not run, and the
	// planner, told of the failure, decides again about them.
	r, code, err := runs[out.at], out.code, out.err
	switch why := head.cancelled.Load(); {
	case why != nil:
		// The deployment is over: nothing will retry this step.
		r.finish(m, contract.StateFailed, nil, "cancelled: "+*why, "failed", m.Term)
	case isPermanent(err) || delivered >= i.o.MaxAttempts:
		r.finish(m, contract.StateFailed, codePtr(code), err.Error(), "failed", m.Term)
	default:
		if r.report(contract.StateFailed, nil, fmt.Sprintf("attempt %d of %d: %v; trying again", r.attempt, max(r.s.Attempt, 1)+i.o.MaxAttempts-1, err), false) == nil {
			_ = m.NakWithDelay(time.Duration(delivered) * 2 * time.Second)
		}
	}
}

// bootRetry is how long the installer waits before it tries again a step
// whose node is not back from a reboot.
const bootRetry = 3 * time.Second

// awaitBoot runs again, from the step that stopped them, the steps of a
// run that failed to reach their node while that step awaits its node's
// boot (Step.AwaitsBoot): a reboot takes the node away for longer than a
// network error's few tries allow. It tries until the step's deadline,
// counted from the first try, then gives the last outcome; a script that
// failed, a cancel or a stop end it at once.
func (i *Installer) awaitBoot(runs []*stepRun, out outcome, head *stepRun) outcome {
	var deadline time.Time
	for out.err != nil && !out.lost && out.at < len(runs) {
		r := runs[out.at]
		if !r.s.AwaitsBoot || isPermanent(out.err) || head.cancelled.Load() != nil || i.ctx.Err() != nil {
			return out
		}
		if deadline.IsZero() {
			first := r.started
			if first.IsZero() {
				first = time.Now() // it never reached its node
			}
			deadline = first.Add(stepTimeout(r.s))
		}
		if time.Now().Add(bootRetry).After(deadline) {
			out.err = permanent{fmt.Errorf("the node was not back within the step's %s: %w", stepTimeout(r.s), out.err)}
			return out
		}
		if r.report(contract.StateRunning, nil, fmt.Sprintf("waiting for the node to come back: %v", out.err), false) != nil {
			return out
		}
		select {
		case <-i.ctx.Done():
			return out
		case <-time.After(bootRetry):
		}
		at := out.at
		out = i.execute(runs[at:])
		out.at += at
	}
	return out
}

// readChain checks the steps chained after head: the same deployment, node
// and engine, and what readStep asks of the head itself.
func readChain(head contract.Step) error {
	for _, s := range head.Chain {
		switch {
		case len(s.Chain) > 0:
			return fmt.Errorf("step %s of the chain of %s holds a chain of its own", s.ID, head.ID)
		case s.ID == "" || s.Node != head.Node || s.Deployment != head.Deployment || s.Engine != head.Engine:
			return fmt.Errorf("step %q of the chain of %s is not of the same node, deployment and engine", s.ID, head.ID)
		case !hashRe.MatchString(s.Hash):
			return fmt.Errorf("step %s of the chain of %s has no valid hash", s.ID, head.ID)
		}
	}
	return nil
}

// finish stores the step's final event and only then settles its message:
// a result the engine never stored must come back, not vanish. The node's
// marker makes the step's return harmless.
func (r *stepRun) finish(m jetstream.Msg, state string, code *int, errMsg, metric string, settle func() error) {
	if err := r.report(state, code, errMsg, true); err != nil {
		r.i.log.Error("the step's result could not be stored; leaving the step to come back", "step", r.s.ID, "err", err)
		return
	}
	r.i.metrics.steps.WithLabelValues(metric).Inc()
	_ = settle()
	r.i.log.Debug("step done", "deployment", r.s.Deployment, "step", r.s.ID, "state", state)
}

// unreadable turns a step message the installer cannot read into a failed
// step event, so that the deployment waiting for it learns why instead of
// waiting for ever. The deployment and node come from the subject when the
// body does not name them.
func (i *Installer) unreadable(m jetstream.Msg, s contract.Step, attempt int, why error) {
	i.log.Error("unreadable step", "subject", m.Subject(), "err", why)
	if ss, err := subject.ParseStep(m.Subject()); err == nil {
		s.Deployment, s.Node = ss.Deployment, ss.IP
	}
	if !subject.ValidToken(s.Deployment) {
		_ = m.Term() // no deployment to tell: nothing waits for it
		return
	}
	r := &stepRun{i: i, s: s, attempt: attempt, started: time.Now().UTC(), ctx: i.ctx}
	r.finish(m, contract.StateFailed, nil, "the installer could not read this step: "+why.Error(), "failed", m.Term)
}

// keepAlive tells the work queue and the scheduler that the steps are
// still worked on, until stop closes: every step of the chain not yet
// ended beats, so that none waiting its turn looks abandoned.
func (i *Installer) keepAlive(m jetstream.Msg, runs []*stepRun, stop <-chan struct{}) {
	every := min(max(i.o.AckWait/3, 200*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_ = m.InProgress()
			for _, r := range runs {
				if r.ended.Load() {
					continue
				}
				beat, _ := json.Marshal(contract.StepBeat{V: contract.Version, Deployment: r.s.Deployment, ID: r.s.ID, Node: r.s.Node, Attempt: r.attempt})
				_ = i.o.NC.Publish(subject.StepBeat(r.s.Deployment), beat)
			}
		}
	}
}

// track keeps the runs in flight per deployment, for cancels.
func (i *Installer) track(r *stepRun, cancel context.CancelFunc, add bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	runs := i.running[r.s.Deployment]
	if add {
		if runs == nil {
			runs = map[*stepRun]context.CancelFunc{}
			i.running[r.s.Deployment] = runs
		}
		runs[r] = cancel
		return
	}
	delete(runs, r)
	if len(runs) == 0 {
		delete(i.running, r.s.Deployment)
	}
}

// onCancel stops every step of a deployment that runs here; their
// commands are killed on the nodes.
func (i *Installer) onCancel(msg *nats.Msg) {
	var c contract.StepCancel
	if err := json.Unmarshal(msg.Data, &c); err != nil || c.Deployment == "" {
		return
	}
	why := c.Reason
	if why == "" {
		why = "the deployment was cancelled"
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	now := time.Now()
	for id, e := range i.ended {
		if now.Sub(e.at) > time.Hour {
			delete(i.ended, id)
		}
	}
	i.ended[c.Deployment] = ended{why: why, at: now}
	for r, cancel := range i.running[c.Deployment] {
		r.cancelled.Store(&why)
		cancel()
	}
}

// endedWhy tells whether deployment id was cancelled or given up, and why.
func (i *Installer) endedWhy(id string) (string, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	e, ok := i.ended[id]
	return e.why, ok
}

func codePtr(c int) *int {
	if c < 0 {
		return nil
	}
	return &c
}
