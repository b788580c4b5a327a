package sched

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
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
				s.log.Error("the deploy lock was taken by another scheduler; no longer driving the deployment", "id", rec.ID, "err", err)
				s.cur, s.pending = nil, nil
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

// Cancel ends a running deployment at a user's request.
func (s *Scheduler) Cancel(ctx context.Context, id, reason string) (*contract.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.ID != id {
		// Not driven here: a deployment left running in the store with no
		// live scheduler (its lock expired) is ended all the same.
		rec, err := loadRecord(ctx, s.res, id)
		if err != nil {
			if bus.IsNotFound(err) {
				return nil, &kit.Error{Code: 404, Msg: fmt.Sprintf("no deployment %q", id)}
			}
			return nil, err
		}
		if !rec.live() {
			return nil, &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s has already ended: %s", id, rec.State)}
		}
		if s.cur != nil && s.cur.live() {
			// Another deployment runs here: this one is a leftover record.
			// Written on the revision read: one that changed meanwhile is
			// driven after all.
			now := time.Now().UTC()
			rec.State, rec.Error, rec.Finished = contract.DeployFailed, reason, &now
			if err := storeRecord(ctx, s.res, rec, s.writer); err != nil {
				if bus.IsConflict(err) {
					return nil, &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s changed while it was being cancelled: try again", id)}
				}
				return nil, err
			}
			return &rec.Deployment, nil
		}
		if err := s.takeOverLocked(ctx, id); err != nil {
			return nil, err
		}
		if s.cur == nil {
			return nil, &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s ended while it was being cancelled", id)}
		}
	}
	if !s.cur.live() {
		return nil, &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s has already ended: %s", id, s.cur.State)}
	}
	s.abortLocked(ctx, reason)
	d := s.cur.Deployment
	d.Steps = append([]contract.StepStatus(nil), s.cur.Steps...)
	return &d, nil
}

// lease is the deploy lock's value: one scheduler drives the current
// deployment and renews the lock while it lives; an expired lock is taken
// over by the next scheduler that looks.
type lease struct {
	Deployment string    `json:"deployment"`
	Holder     string    `json:"holder"`
	Expires    time.Time `json:"expires"`
}

var errLeaseLost = errors.New("the deploy lock belongs to another scheduler")

// takeLease takes the deploy lock for deployment id, unless another
// scheduler holds it and it has not expired (409).
func (s *Scheduler) takeLease(ctx context.Context, id string) error {
	val, _ := json.Marshal(lease{Deployment: id, Holder: s.holder, Expires: time.Now().Add(s.ttl).UTC()})
	e, err := s.res.Scheduler.Get(ctx, keyLease)
	var rev uint64
	switch {
	case bus.IsNotFound(err):
		rev, err = s.res.Scheduler.Create(ctx, keyLease, val)
	case err != nil:
		return fmt.Errorf("read the deploy lock: %w", err)
	default:
		var l lease
		if json.Unmarshal(e.Value(), &l) == nil && l.Holder != s.holder && time.Now().Before(l.Expires) {
			return &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s is driven by %s (its lock runs until %s); wait for it to finish",
				l.Deployment, l.Holder, l.Expires.Format(time.RFC3339))}
		}
		rev, err = s.res.Scheduler.Update(ctx, keyLease, val, e.Revision())
	}
	if err != nil {
		if bus.IsConflict(err) {
			return &kit.Error{Code: 409, Msg: "another scheduler took the deploy lock just now; try again"}
		}
		return fmt.Errorf("take the deploy lock: %w", err)
	}
	s.leaseRev, s.renewed = rev, time.Now()
	return nil
}

// renewLease extends the lock this scheduler holds.
func (s *Scheduler) renewLease(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	val, _ := json.Marshal(lease{Deployment: s.cur.ID, Holder: s.holder, Expires: time.Now().Add(s.ttl).UTC()})
	rev, err := s.res.Scheduler.Update(ctx, keyLease, val, s.leaseRev)
	if bus.IsConflict(err) {
		// A renewal that timed out may have been stored all the same (a
		// cluster electing a leader): the lock is still ours if it says so.
		own, ownRev, rerr := s.ownLease(ctx, s.cur.ID)
		if rerr != nil {
			return rerr // not known lost: tried again
		}
		if !own {
			return errLeaseLost
		}
		rev, err = s.res.Scheduler.Update(ctx, keyLease, val, ownRev)
		if bus.IsConflict(err) {
			// Read from a replica behind the stream's leader: ours as
			// far as it knows, lost or not as far as the leader does.
			// Tried again; a lock another took reads so in time.
			return fmt.Errorf("renew the deploy lock: read one revision behind its last write: %w", bus.ErrUnsure)
		}
	}
	if err != nil {
		return err
	}
	s.leaseRev, s.renewed = rev, time.Now()
	return nil
}

// ownLease tells whether the stored lock is this scheduler's for
// deployment id, and its revision. A lock that cannot be read is an
// error, not one lost.
func (s *Scheduler) ownLease(ctx context.Context, id string) (bool, uint64, error) {
	e, err := s.res.Scheduler.Get(ctx, keyLease)
	if bus.IsNotFound(err) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("read the deploy lock: %w", err)
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) != nil || l.Holder != s.holder || l.Deployment != id {
		return false, 0, nil
	}
	return true, e.Revision(), nil
}

// releaseLease deletes the lock this scheduler holds for deployment id.
func (s *Scheduler) releaseLease(ctx context.Context, id string) error {
	err := s.res.Scheduler.Delete(ctx, keyLease, jetstream.LastRevision(s.leaseRev))
	if bus.IsConflict(err) {
		// A renewal stored after it timed out, or another scheduler's
		// lock by now: only ours is released.
		own, rev, err := s.ownLease(ctx, id)
		if err != nil || !own {
			return err
		}
		err = s.res.Scheduler.Delete(ctx, keyLease, jetstream.LastRevision(rev))
		if bus.IsConflict(err) {
			return nil
		}
	}
	if err != nil && !bus.IsNotFound(err) {
		s.log.Warn("release the deploy lock", "err", err)
		return err
	}
	return nil
}

// adopt looks, once a second while this scheduler drives nothing, for a
// current deployment whose lock has expired, and resumes it.
func (s *Scheduler) adopt(ctx context.Context) {
	s.mu.Lock()
	idle := s.cur == nil || !s.cur.live()
	look := time.Since(s.lastLook) >= time.Second
	if idle && look {
		s.lastLook = time.Now()
	}
	s.mu.Unlock()
	if !idle || !look {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !s.calm(ctx) {
		return
	}
	if err := s.Resume(ctx); err != nil {
		if bus.Unavailable(err) {
			s.calmSince = time.Time{}
		}
		s.log.Warn("look for a deployment to resume", "err", err)
	}
}

// calm tells whether the store has answered for a whole lock's lifetime.
// A lock that expired while the store was unavailable says nothing about
// its holder: every holder could not renew it. Waiting a lifetime once the
// store answers lets a live holder renew it (or end its deployment) before
// anyone takes over.
func (s *Scheduler) calm(ctx context.Context) bool {
	if _, err := s.res.JS.AccountInfo(ctx); err != nil {
		if bus.Unavailable(err) {
			s.calmSince = time.Time{}
		}
		return false
	}
	if s.calmSince.IsZero() {
		s.calmSince = time.Now()
	}
	return time.Since(s.calmSince) >= s.ttl
}
