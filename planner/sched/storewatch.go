package sched

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// storeDown notes that the store failed the running deployment's
// bookkeeping (a dispatch, a save, the lock's renewal) because it is
// unavailable: no quorum, no leader, the bus gone. It reports whether err
// was of that kind.
func (s *Scheduler) storeDown(err error) bool {
	if !bus.Unavailable(err) {
		return false
	}
	if s.downSince.IsZero() {
		s.downSince = time.Now()
		s.log.Warn("the store does not answer; the deployment waits for it", "err", err)
	}
	s.downErr = err
	return true
}

// storeUp notes that the store answered again.
func (s *Scheduler) storeUp() {
	if !s.downSince.IsZero() {
		s.log.Info("the store answers again", "after", time.Since(s.downSince).Round(time.Millisecond))
	}
	s.downSince, s.downErr = time.Time{}, nil
}

// watchStoreLocked runs on every tick. Steps that could not be queued while
// the store was unavailable are queued again once it answers; a deployment
// whose store has not answered for longer than a silent step may last is
// failed, saying why, rather than left running; and what its end could not
// write then (the placement, clearing the current mark, releasing the
// lock, the finished event) is written once the store is back. It reports whether it ended
// the deployment.
func (s *Scheduler) watchStoreLocked(ctx context.Context, now time.Time) bool {
	if s.unfinished != nil && now.Sub(s.lastTry) >= time.Second {
		s.lastTry = now
		ectx, cancel := context.WithTimeout(ctx, storeTry)
		s.endLocked(ectx)
		cancel()
	}
	rec := s.cur
	if rec == nil || !rec.live() {
		return false
	}
	if !s.downSince.IsZero() && now.Sub(s.downSince) > s.silent {
		ctx, cancel := context.WithTimeout(ctx, storeTry)
		defer cancel()
		s.abortLocked(ctx, fmt.Sprintf("the engine's store (NATS JetStream) has not answered for %s (%v): given up; deploy again once it is back",
			now.Sub(s.downSince).Round(time.Second), s.downErr))
		return true
	}
	if s.requeue && s.downSince.IsZero() || s.requeue && now.Sub(s.lastTry) >= time.Second {
		s.requeue, s.lastTry = false, now
		s.advanceLocked(ctx)
	}
	return false
}

// storeTry bounds one tick's writes of an ended or given-up deployment to
// a store that may not answer: the tick holds the scheduler's lock, which
// every command waits for, and a store without quorum answers each request
// only with its timeout (seen: a deploy sent as the quorum returned
// answered 504 after a minute). What a try does not write, the next one
// does.
const storeTry = 3 * time.Second

// Ending names the deployment that has ended but whose placement the store
// has not taken yet: a deployment planned meanwhile would start from the
// placement before it.
func (s *Scheduler) Ending() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.unfinished; u != nil && u.placement != nil {
		return u.event.ID, true
	}
	return "", false
}

// endLocked stores the placement, clears the current mark and the deploy
// lock of a deployment that ended, and announces its end. What the store
// refuses because it is unavailable stays for the next tick (the lock until
// the placement is stored); any other failure is logged and left, as it
// would be when the store answers.
func (s *Scheduler) endLocked(ctx context.Context) {
	u := s.unfinished
	id := u.event.ID
	s.placeLocked(ctx, u)
	done := func(what string, err error) bool {
		if err == nil || bus.IsNotFound(err) {
			return true
		}
		if bus.Unavailable(err) {
			return false
		}
		s.log.Error(what, "id", id, "err", err)
		return true
	}
	if u.mark {
		// Cleared on the revision read: a mark another deployment set
		// since is left alone, and one that cannot be read is tried again.
		cur, rev, err := currentMark(ctx, s.res)
		switch {
		case err != nil:
			u.mark = !done("read the current deployment", err)
		case cur != id:
			u.mark = false // another deployment is current already, or none
		default:
			err := s.res.Scheduler.Delete(ctx, keyCurrent, jetstream.LastRevision(rev))
			u.mark = !bus.IsConflict(err) && !done("clear current deployment", err)
		}
	}
	if u.lock && s.cur != nil && s.cur.ID != id {
		u.lock = false // this scheduler holds it for another deployment now
	}
	if u.lock && u.placement == nil {
		u.lock = !done("release the deploy lock", s.releaseLease(ctx, id))
	}
	if !u.sent {
		u.sent = done("publish event", s.publishErr(ctx, subject.DeployEvent(id, subject.DeployFinished), *u.event))
	}
	if u.compact != nil {
		u.compact = s.compactLocked(ctx, u.compact)
	}
	if u.purge {
		u.purge = !done("take the deployment's steps out of the queue", s.res.Steps.Purge(ctx, jetstream.WithPurgeSubject(subject.Steps(id))))
	}
	if u.placement == nil && u.compact == nil && !u.mark && !u.lock && u.sent && !u.purge {
		s.unfinished = nil
	}
}

// unfinished is what ending a deployment still has to write.
type unfinished struct {
	// placement is the deployment whose placement is still to be stored.
	placement *Record
	// compact is the deployment still to be compacted (compactLocked).
	compact                 *Record
	mark, lock, sent, purge bool
	event                   *contract.DeploymentEvent
}

// compactLocked writes rec, a deployment that ended, back whole once its
// end is stored (compactRecord), then purges its changes in the
// background. It returns rec while that is still to do: its end not yet
// stored, or the store unavailable.
func (s *Scheduler) compactLocked(ctx context.Context, rec *Record) *Record {
	if _, more := rec.diff(); more {
		if s.cur == rec {
			return rec // its end is stored on a next flush
		}
		return nil // another deployment runs: this one stays as its changes
	}
	if err := compactRecord(ctx, s.res, rec); err != nil {
		if bus.Unavailable(err) {
			return rec
		}
		s.log.Warn("compact the deployment's record: its changes stay", "id", rec.ID, "err", err)
		return nil
	}
	id, upto := rec.ID, rec.seq
	rec.Changes, rec.seq = false, 0
	s.purges.Add(1)
	go func() {
		defer s.purges.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := purgeChanges(ctx, s.res, id, upto); err != nil {
			s.log.Warn("purge the deployment's changes", "id", id, "err", err)
		}
	}()
	return nil
}
