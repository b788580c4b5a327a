package sched

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// maxRedispatch bounds how often a silent step is put in the queue again
// before it is failed.
const maxRedispatch = 2

// defaultStepDeadline is the installer's bound on a step without one.
const defaultStepDeadline = 15 * time.Minute

// drive makes rec the deployment this scheduler runs; every active step
// counts as just seen.
func (s *Scheduler) drive(rec *Record) {
	s.log.Info("driving deployment", "id", rec.ID, "holder", s.holder)
	s.cur = rec
	// What the store did to an earlier deployment says nothing of it.
	s.downSince, s.downErr, s.requeue = time.Time{}, nil, false
	now := time.Now()
	s.seen = map[string]time.Time{}
	for _, st := range rec.Steps {
		if active(st.State) {
			s.seen[st.ID] = now
		}
	}
	s.progress = now
}

func stepDeadline(spec contract.Step) time.Duration {
	if spec.TimeoutS > 0 {
		return time.Duration(spec.TimeoutS) * time.Second
	}
	return defaultStepDeadline
}

// onBeat notes that an installer still works on a step.
func (s *Scheduler) onBeat(m *nats.Msg) {
	var b contract.StepBeat
	if err := json.Unmarshal(m.Data, &b); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.ID != b.Deployment {
		return
	}
	if i, ok := s.cur.index[b.ID]; ok && active(s.cur.Steps[i].State) {
		now := time.Now()
		s.seen[b.ID], s.progress = now, now
	}
}

// watchLocked keeps the running deployment honest: a step silent past its
// bound is dispatched again (the node's markers and the installer's
// per-step lock make that safe) and failed after maxRedispatch more tries;
// a deployment that has not moved for longer than its longest step's
// deadline fails as a whole. It also renews the deploy lock.
func (s *Scheduler) watchLocked(ctx context.Context, now time.Time) {
	if s.watchStoreLocked(ctx, now) {
		return
	}
	rec := s.cur
	if rec == nil || rec.State != contract.DeployRunning {
		return
	}
	// Renewed every third of its life; tried no more often while the store
	// refuses.
	if now.Sub(s.renewed) >= s.ttl/3 && now.Sub(s.renewTried) >= s.ttl/3 {
		s.renewTried = now
		if err := s.renewLease(ctx); err != nil {
			if errors.Is(err, errLeaseLost) {
				s.staleLocked(err)
				return
			}
			s.storeDown(err)
			s.log.Warn("renew the deploy lock", "id", rec.ID, "err", err)
		}
	}
	var longest time.Duration
	changed := false
	for i := range rec.Steps {
		st := &rec.Steps[i]
		spec := rec.specs[st.ID]
		longest = max(longest, stepDeadline(spec))
		if !active(st.State) {
			continue
		}
		if rec.behind(st) {
			// Its fate is the step before it in its chain: the watchdog
			// sends that one again with it, or gives it up and unchains it.
			continue
		}
		last, ok := s.seen[st.ID]
		if !ok {
			s.seen[st.ID] = now
			continue
		}
		// A queued step may wait for a free installer as long as the
		// deployment moves; one that runs beats.
		bound := s.silent
		if st.State == stateQueued {
			bound = max(stepDeadline(spec), s.silent)
			if s.progress.After(last) {
				last = s.progress
			}
		}
		if now.Sub(last) <= bound {
			continue
		}
		what := "no installer reported on it"
		if st.State == stateQueued {
			what = "no installer took it"
		}
		if rec.Dispatches[st.ID] <= maxRedispatch {
			s.log.Warn("step silent; dispatching it again", "id", rec.ID, "step", st.ID, "silent", now.Sub(last).Round(time.Second))
			if seq := rec.Queued[st.ID]; seq != 0 {
				_ = s.res.Steps.DeleteMsg(ctx, seq) // the copy given up on, if still queued
			}
			if err := s.dispatchLocked(ctx, st.ID); err == nil {
				st.Error = fmt.Sprintf("%s for %s: dispatched again", what, bound.Round(time.Second))
				changed = true
				continue
			}
		}
		now := now.UTC()
		st.State, st.Finished = contract.StateFailed, &now
		st.Error = fmt.Sprintf("%s for %s after %d dispatches: given up", what, bound.Round(time.Second), rec.Dispatches[st.ID])
		rec.unchain(st.Node)
		s.log.Error("step given up", "id", rec.ID, "step", st.ID, "why", st.Error)
		changed = true
	}
	if changed {
		s.dirty = true
		s.advanceLocked(ctx)
		return
	}
	if limit := longest + s.silent; now.Sub(s.progress) > limit {
		s.abortLocked(ctx, fmt.Sprintf("no progress for %s (longer than its longest step's deadline): given up; deploy again to finish it", limit.Round(time.Second)))
	}
}

// abortLocked ends cur as failed for reason: what was queued leaves the
// queue, what runs is stopped on the nodes, the lock is released.
func (s *Scheduler) abortLocked(ctx context.Context, reason string) {
	rec := s.cur
	// Stored first on this scheduler's revision: a scheduler that lost the
	// deployment to another (saveLocked) takes nothing out of its queue.
	if err := s.saveLocked(ctx); err != nil && s.cur != rec {
		return
	}
	rec.abort(reason, time.Now().UTC())
	s.dirty = true
	purged := true
	if err := s.res.Steps.Purge(ctx, jetstream.WithPurgeSubject(subject.Steps(rec.ID))); err != nil {
		s.log.Warn("take the deployment's steps out of the queue", "id", rec.ID, "err", err)
		purged = false
	}
	if b, err := json.Marshal(contract.StepCancel{V: contract.Version, Deployment: rec.ID, Reason: reason}); err == nil {
		_ = s.nc.Publish(subject.InstallerCancel(), b)
	}
	s.log.Warn("deployment given up", "id", rec.ID, "reason", reason)
	s.concludeLocked(ctx, reason)
	if !purged && s.unfinished != nil {
		s.unfinished.purge = true // once the store answers again
	}
}
