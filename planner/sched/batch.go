package sched

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// A rollout's batches are steps of the deployment's DAG like any other;
// what the scheduler keeps of them is each batch's state, which its steps
// decide, and the events that tell it.

// batchChanges brings each batch's state up to date with its steps and
// returns the batches whose state changed.
func (r *Record) batchChanges() []contract.Batch {
	var out []contract.Batch
	for i := range r.Batches {
		b := &r.Batches[i]
		st, why := r.batchState(*b)
		if st != b.State || why != b.Error {
			b.State, b.Error = st, why
			out = append(out, *b)
		}
	}
	return out
}

func (r *Record) batchState(b contract.Batch) (string, string) {
	var pending, done, skipped, held int
	for _, id := range b.Steps {
		i, ok := r.index[id]
		if !ok {
			continue
		}
		st := r.Steps[i]
		switch {
		case st.State == contract.StateFailed:
			return contract.BatchFailed, st.ID + ": " + st.Error
		case stepDone(st.State):
			done++
		case st.State == contract.StateSkipped:
			skipped++
		case st.State == contract.StateHeld:
			held++
		case st.State == contract.StatePending:
			pending++
		}
	}
	switch {
	case held == len(b.Steps):
		return contract.BatchSkipped, "held: its nodes are in maintenance"
	case done+held == len(b.Steps):
		return contract.BatchHealthy, ""
	case skipped > 0 && pending == 0 && done == 0:
		return contract.BatchSkipped, ""
	case pending+held == len(b.Steps):
		return contract.BatchPending, ""
	}
	return contract.BatchRunning, ""
}

// haltReason says why a rollout halted, when one of its batches failed.
func (r *Record) haltReason() string {
	if r.Through {
		return "" // nothing halts it
	}
	for _, b := range r.Batches {
		if b.State != contract.BatchFailed {
			continue
		}
		var left []string
		for _, o := range r.Batches {
			if o.Component == b.Component && o.Index > b.Index && o.State == contract.BatchSkipped {
				left = append(left, o.Nodes...)
			}
		}
		what := fmt.Sprintf("batch %d", b.Index)
		if b.Canary {
			what = "the canary"
		}
		msg := fmt.Sprintf("halted: %s of %s on %s failed (%s)", what, b.Component, strings.Join(b.Nodes, ", "), b.Error)
		if len(left) > 0 {
			msg += fmt.Sprintf("; %d instance(s) of %s left as they were: %s", len(left), b.Component, strings.Join(left, ", "))
		}
		return msg
	}
	return ""
}

// batchEventsLocked publishes each batch whose state changed: a batch
// started, a canary's verdict, a batch healthy or failed.
func (s *Scheduler) batchEventsLocked(ctx context.Context) {
	rec := s.cur
	for _, b := range rec.batchChanges() {
		s.dirty = true
		s.publish(ctx, subject.DeployEvent(rec.ID, subject.DeployBatch), contract.BatchEvent{
			V: contract.Version, ID: rec.ID, Time: time.Now().UTC().Format(time.RFC3339Nano), Batch: b})
		if b.Canary && (b.State == contract.BatchHealthy || b.State == contract.BatchFailed) {
			s.note(ctx, "rollout", fmt.Sprintf("deployment %s: canary of %s on %s %s", rec.ID, b.Component, strings.Join(b.Nodes, ", "), b.State))
		}
	}
}

// note records one of the engine's operations for the operations log.
func (s *Scheduler) note(ctx context.Context, kind, msg string) {
	if err := bus.PublishEngineEvent(ctx, s.res.JS, kind, msg); err != nil {
		s.log.Warn("engine event", "err", err)
	}
}
