package sched

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/subject"
)

// stepMsg is the work-queue message of step id of cur with the steps
// chained after it (record.chain), the chain's ids, its dispatch count and
// the message id that makes a repeated dispatch a no-op.
func (s *Scheduler) stepMsg(id string) (*nats.Msg, []string, int, string, error) {
	rec := s.cur
	ids := rec.chain(id)
	spec := rec.specs[id]
	n := rec.Dispatches[id] + 1
	// Its tries go on from those already reported.
	spec.Attempt = rec.step(id).Attempt + 1
	spec.Chain = nil
	for _, cid := range ids[1:] {
		c := rec.specs[cid]
		c.Attempt = rec.step(cid).Attempt + 1
		spec.Chain = append(spec.Chain, c)
	}
	// Its files travel sealed, as they rest.
	data, err := json.Marshal(bus.SealStep(spec))
	// A chain fits in half a message of the bus: the steps that do not
	// follow in the next one.
	for err == nil && len(spec.Chain) > 0 && int64(len(data)) > s.nc.MaxPayload()/2 {
		spec.Chain, ids = spec.Chain[:len(spec.Chain)-1], ids[:len(ids)-1]
		data, err = json.Marshal(bus.SealStep(spec))
	}
	if err != nil {
		return nil, nil, 0, "", err
	}
	return &nats.Msg{Subject: subject.Step(spec.Deployment, spec.Node), Data: data}, ids, n, fmt.Sprintf("%s/%s/%d", spec.Deployment, spec.ID, n), nil
}

// queuedLocked records that the chain ids went into the queue at seq as
// its head's n-th copy: each step is queued, counted dispatched once more,
// and taken out of the queue with that message if given up on.
func (s *Scheduler) queuedLocked(ids []string, n int, seq uint64) {
	rec := s.cur
	if rec.Dispatches == nil {
		rec.Dispatches, rec.Queued = map[string]int{}, map[string]uint64{}
	}
	now := time.Now()
	for k, id := range ids {
		if k > 0 {
			n = rec.Dispatches[id] + 1
		}
		rec.Dispatches[id], rec.Queued[id] = n, seq
		rec.step(id).State = stateQueued
		s.seen[id] = now
	}
	s.dirty = true
}

// dispatchManyLocked puts steps of cur in the work queue at once: their
// publishes are in flight together and acknowledged together, so a batch
// costs about one round trip to the stream (three servers' worth on a
// cluster) rather than one per step. errs[i] is ids[i]'s.
func (s *Scheduler) dispatchManyLocked(ctx context.Context, ids []string) []error {
	errs := make([]error, len(ids))
	if len(ids) == 1 {
		errs[0] = s.dispatchLocked(ctx, ids[0])
		return errs
	}
	type inflight struct {
		chain []string
		n     int
		ack   jetstream.PubAckFuture
	}
	fl := make([]inflight, len(ids))
	for i, id := range ids {
		msg, chain, n, msgID, err := s.stepMsg(id)
		if err == nil {
			fl[i].chain, fl[i].n = chain, n
			fl[i].ack, err = s.res.JS.PublishMsgAsync(msg, jetstream.WithMsgID(msgID))
		}
		errs[i] = err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i, id := range ids {
		if errs[i] != nil {
			continue
		}
		select {
		case a := <-fl[i].ack.Ok():
			s.storeUp()
			s.queuedLocked(fl[i].chain, fl[i].n, a.Sequence)
		case err := <-fl[i].ack.Err():
			errs[i] = err
		case <-ctx.Done():
			errs[i] = fmt.Errorf("queue step %s: %w", id, ctx.Err())
		}
	}
	return errs
}

// dispatchLocked puts a step of cur, with its chain, in the work queue.
func (s *Scheduler) dispatchLocked(ctx context.Context, id string) error {
	msg, chain, n, msgID, err := s.stepMsg(id)
	if err != nil {
		return err
	}
	// The message id makes a dispatch repeated after a crash a no-op.
	ack, err := s.res.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
	if err != nil {
		return err
	}
	s.storeUp()
	s.queuedLocked(chain, n, ack.Sequence)
	return nil
}
