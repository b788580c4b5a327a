package sched

import (
	"context"
	"encoding/json"
	"time"

	"github.com/deployment-engine/engine/services/bus"
)

// The running deployment reaches the store at most every 100ms (flushLoop),
// on the revision this scheduler holds; its events are acknowledged once
// their effect is stored.

func (s *Scheduler) publish(ctx context.Context, subj string, v any) {
	if err := s.publishErr(ctx, subj, v); err != nil {
		s.log.Error("publish event", "subject", subj, "err", err)
	}
}

func (s *Scheduler) publishErr(ctx context.Context, subj string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.res.JS.Publish(ctx, subj, data)
	return err
}

// flushLoop stores the running deployment at most every 100ms and then
// acknowledges the events whose effect it holds.
func (s *Scheduler) flushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			ctx := context.Background()
			s.mu.Lock()
			s.watchLocked(ctx, time.Now())
			s.flushLocked(ctx)
			s.mu.Unlock()
			s.adopt(ctx)
		}
	}
}

func (s *Scheduler) flushLocked(ctx context.Context) {
	if s.cur == nil || (!s.dirty && len(s.pending) == 0) {
		return
	}
	if s.dirty {
		id := s.cur.ID
		if err := s.saveLocked(ctx); err != nil {
			if !s.storeDown(err) && s.cur != nil {
				s.log.Error("store deployment", "id", id, "err", err)
			}
			return // the events stay unacknowledged and come back
		}
		s.storeUp()
	}
	for _, m := range s.pending {
		_ = m.Ack()
	}
	s.pending = s.pending[:0]
}

// saveLocked stores the running deployment on the revision this scheduler
// read or wrote it at. A refusal means another scheduler wrote it since:
// that one took it over (this one's lock expired without it noticing), so
// this one lets go of it without writing anything more of it.
func (s *Scheduler) saveLocked(ctx context.Context) error {
	if err := storeRecord(ctx, s.res, s.cur, s.writer); err != nil {
		if bus.IsConflict(err) {
			s.staleLocked(err)
		}
		return err
	}
	s.dirty = false
	return nil
}

// staleLocked lets go of the running deployment, which another scheduler
// drives now: the events not yet stored go back to the queue for it, and
// nothing of its end (placement, mark, lock, event) is written from here.
func (s *Scheduler) staleLocked(err error) {
	id := s.cur.ID
	s.log.Error("another scheduler took the running deployment over; no longer driving it", "id", id, "err", err)
	for _, m := range s.pending {
		_ = m.Nak()
	}
	s.cur, s.pending, s.dirty = nil, nil, false
	if s.unfinished != nil && s.unfinished.event.ID == id {
		s.unfinished = nil
	}
}
