package sched

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/kit"
)

// The deploy lock: one scheduler drives the current deployment and renews
// the lock while it lives; one whose lock expired is taken over by the
// next scheduler that looks (adopt).

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
