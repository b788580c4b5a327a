package sched

import (
	"context"
	"fmt"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

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
