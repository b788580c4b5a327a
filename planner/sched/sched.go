package sched

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Scheduler dispatches the ready steps of the running deployment and
// records their results. Step events reach it from a durable consumer, and
// an event is acknowledged only once its effect is stored, so an engine
// killed at any point resumes where it stood. mu guards the running
// deployment: the step events, the beats, the tick of flushLoop and the
// commands (Begin, Cancel, Snapshot, Running) each take it.
type Scheduler struct {
	hooks Hooks
	nc    *nats.Conn
	log   *slog.Logger
	res   *bus.Resources
	cons  jetstream.ConsumeContext
	beats *nats.Subscription

	// silent is how long a running step may go without a sign of life
	// (an event or a beat) before it is dispatched again; ttl is the deploy
	// lock's lifetime, renewed while this scheduler drives a deployment;
	// holder names this scheduler in the lock, writer this instance of it
	// in the records it stores (storeRecord).
	silent time.Duration
	ttl    time.Duration
	holder string
	writer string

	mu      sync.Mutex
	cur     *Record
	pending []jetstream.Msg // events applied but not yet stored
	dirty   bool
	done    chan struct{}
	wg      sync.WaitGroup

	// seen is the last sign of life of each active step of cur; progress
	// the last time cur moved (an event, a beat, a dispatch).
	seen     map[string]time.Time
	progress time.Time
	leaseRev uint64
	renewed  time.Time
	lastLook time.Time
	// renewTried is the last attempt at renewing the lock.
	renewTried time.Time

	// downSince is when the store began failing the running deployment
	// (zero while it answers), downErr how; requeue marks steps that could
	// not be queued meanwhile, lastTry the last attempt at them; unfinished
	// is what the end of a deployment could not write yet (storewatch.go).
	downSince  time.Time
	downErr    error
	calmSince  time.Time
	requeue    bool
	lastTry    time.Time
	unfinished *unfinished
}

// Hooks is what the scheduler tells the service that runs it.
type Hooks interface {
	// Ended is told of every deployment this scheduler ends, once its end
	// is stored: the service decides what follows (an auto-revert).
	Ended(rec *Record)
}

// Options configure a scheduler.
type Options struct {
	NC    *nats.Conn
	Res   *bus.Resources
	Log   *slog.Logger
	Hooks Hooks
	// SilentAfter is how long a running step may go without a sign of
	// life before it is dispatched again (default 1m).
	SilentAfter time.Duration
	// LeaseTTL is the deploy lock's lifetime (default 10s).
	LeaseTTL time.Duration
	// Holder names this scheduler in the deploy lock (default: random).
	Holder string
}

// New starts a scheduler: it follows step events and beats, and drives
// nothing until Begin or Resume.
func New(ctx context.Context, o Options) (*Scheduler, error) {
	s := &Scheduler{hooks: o.Hooks, nc: o.NC, log: o.Log.With("part", "scheduler"), res: o.Res, done: make(chan struct{}),
		silent: o.SilentAfter, ttl: o.LeaseTTL, holder: o.Holder, seen: map[string]time.Time{}}
	if s.silent <= 0 {
		s.silent = time.Minute
	}
	if s.ttl <= 0 {
		s.ttl = 10 * time.Second
	}
	if s.holder == "" {
		s.holder = "planner-" + bus.RandomSecret()[:8]
	}
	s.writer = s.holder + "." + bus.RandomSecret()[:8]
	// Nothing says the store was away before this start.
	s.calmSince = time.Now().Add(-s.ttl)
	if err := migrateBookkeeping(ctx, s.res, s.log); err != nil {
		return nil, err
	}
	cons, err := bus.Consumer(ctx, s.res.JS, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable:       "planner-steps",
		Description:   "the planner follows step results",
		FilterSubject: subject.AllDeploySteps,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		// Events are acknowledged within a flush (100ms) of arriving; the
		// wait only decides how soon those a killed scheduler held come
		// back to the next one. A repeated event changes nothing.
		AckWait:       5 * time.Second,
		MaxAckPending: 20000,
	})
	if err != nil {
		return nil, fmt.Errorf("planner: step event consumer: %w", err)
	}
	cc, err := cons.Consume(s.onEvent)
	if err != nil {
		return nil, fmt.Errorf("planner: consume step events: %w", err)
	}
	s.cons = cc
	if s.beats, err = s.nc.Subscribe(subject.AllStepBeats, s.onBeat); err != nil {
		cc.Stop()
		return nil, fmt.Errorf("planner: subscribe to step beats: %w", err)
	}
	s.wg.Add(1)
	go s.flushLoop()
	return s, nil
}

// Stop stops following events, stores what is left to store and hands
// the running deployment over.
func (s *Scheduler) Stop() {
	_ = s.beats.Unsubscribe()
	s.cons.Stop()
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := context.Background()
	s.flushLocked(ctx)
	if s.cur != nil && s.cur.live() {
		// Hand the running deployment over: the next scheduler need not
		// wait for the lock to expire.
		_ = s.releaseLease(ctx, s.cur.ID)
	}
}

// Resume picks up the deployment a stopped engine left running.
func (s *Scheduler) Resume(ctx context.Context) error {
	id, rev, err := currentMark(ctx, s.res)
	if err != nil || id == "" {
		return err
	}
	rec, err := loadRecord(ctx, s.res, id)
	if bus.IsNotFound(err) {
		// A mark left by a store restored without this deployment: nothing
		// runs. Only that mark is cleared, not one set since.
		s.log.Warn("the current deployment is not in the store; forgetting it", "id", id, "err", err)
		if err := s.res.Scheduler.Delete(ctx, keyCurrent, jetstream.LastRevision(rev)); err != nil && !bus.IsConflict(err) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !rec.live() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.cur.ID == rec.ID {
		return nil
	}
	if err := s.takeOverLocked(ctx, rec.ID); err != nil {
		if bus.Unavailable(err) {
			return err
		}
		// Another live scheduler drives it; its lock is watched and taken
		// over when it expires.
		s.log.Info("deployment driven elsewhere", "id", rec.ID, "why", err)
		return nil
	}
	if s.cur == nil {
		return nil // it ended meanwhile
	}
	s.log.Info("resuming deployment", "id", rec.ID)
	s.advanceLocked(ctx)
	s.flushLocked(ctx)
	return nil
}

// takeOverLocked takes the deploy lock for deployment id and drives it
// from its record as stored, read once the lock is held and written straight
// back on the revision it was read at. That write fences off the scheduler
// that drove it before (its lock expired without it noticing, or it was
// cut off): every record write of that one is made on an older revision
// and is refused from then on (saveLocked), so it cannot overwrite what
// this one stores. A write of it that lands between the read and the
// write-back is the newer state: it is read again. A record that ended
// meanwhile is not driven (s.cur stays nil) and the lock is released.
func (s *Scheduler) takeOverLocked(ctx context.Context, id string) error {
	if err := s.takeLease(ctx, id); err != nil {
		return err
	}
	for try := 1; ; try++ {
		rec, err := loadRecord(ctx, s.res, id)
		if err == nil && !rec.live() {
			return s.releaseLease(ctx, id)
		}
		if err == nil {
			if err = storeRecord(ctx, s.res, rec, s.writer); err == nil {
				s.drive(rec)
				return nil
			}
		}
		if !bus.IsConflict(err) || try == 3 {
			_ = s.releaseLease(ctx, id)
			return err
		}
	}
}

// Running reports the deployment that runs now, if any.
func (s *Scheduler) Running() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.cur.live() {
		return s.cur.ID, true
	}
	return "", false
}

// Begin stores a new deployment and starts dispatching it, unless one
// runs here already (409).
func (s *Scheduler) Begin(ctx context.Context, rec *Record) error {
	if err := storeSteps(ctx, s.res, rec); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.cur.live() {
		return &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s is still running; wait for it to finish", s.cur.ID)}
	}
	if err := s.takeLease(ctx, rec.ID); err != nil {
		return err
	}
	s.drive(rec)
	if err := s.saveLocked(ctx); err != nil {
		_ = s.releaseLease(ctx, rec.ID)
		s.cur = nil
		return err
	}
	if err := markCurrent(ctx, s.res, rec.ID); err != nil {
		// Stored but not current: a restart would never resume it, so it
		// ends here, failed, rather than run unmarked.
		s.abortLocked(ctx, err.Error())
		return err
	}
	s.publish(ctx, subject.DeployEvent(rec.ID, subject.DeployStarted), contract.DeploymentEvent{V: contract.Version, ID: rec.ID, State: rec.State, Time: time.Now().UTC()})
	s.advanceLocked(ctx)
	s.flushLocked(ctx)
	return nil
}

// Snapshot returns a copy of the deployment id, from memory when it runs.
func (s *Scheduler) Snapshot(ctx context.Context, id string) (*contract.Deployment, error) {
	s.mu.Lock()
	if s.cur != nil && s.cur.ID == id {
		d := s.cur.Deployment
		d.Steps = append([]contract.StepStatus(nil), s.cur.Steps...)
		d.Batches = append([]contract.Batch(nil), s.cur.Batches...)
		s.mu.Unlock()
		return &d, nil
	}
	s.mu.Unlock()
	e, err := s.res.Deployments.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("decode deployment %s: %w", id, err)
	}
	return &rec.Deployment, nil
}

func (s *Scheduler) onEvent(m jetstream.Msg) {
	var ev contract.StepEvent
	if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.V > contract.Version {
		s.log.Warn("dropping unreadable step event", "subject", m.Subject())
		_ = m.Term()
		return
	}
	ctx := context.Background()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.ID != ev.Deployment || s.cur.State != contract.DeployRunning {
		if s.cur == nil || s.cur.ID != ev.Deployment {
			if id, err := currentID(ctx, s.res); err == nil && id == ev.Deployment {
				// The current deployment, not (yet) driven here: keep its
				// event for whoever drives or resumes it. Planners share
				// the consumer, so the driver gets it back soon.
				_ = m.NakWithDelay(200 * time.Millisecond)
				return
			}
		}
		_ = m.Ack()
		return
	}
	if _, ok := s.cur.index[ev.ID]; !ok && ev.Final {
		// A step the installer could not read names at most its node: the
		// node runs one step at a time, so it is that node's active step.
		ev.ID = s.cur.activeOn(ev.Node)
	}
	now := time.Now()
	s.seen[ev.ID], s.progress = now, now
	if s.cur.apply(ev) {
		s.dirty = true
	}
	s.pending = append(s.pending, m)
	s.advanceLocked(ctx)
}

// advanceLocked dispatches every step that may run now, and finishes the
// deployment when nothing is left to run.
func (s *Scheduler) advanceLocked(ctx context.Context) {
	rec := s.cur
	if rec == nil || !rec.live() {
		return
	}
	if rec.State == contract.DeployPending {
		rec.State = contract.DeployRunning
		s.dirty = true
	}
	// A step that could not be queued failed: skip what comes after it and
	// give its node's next step a turn.
	for again := true; again; {
		again = false
		if rec.skipBlocked() {
			s.dirty = true
		}
		ready := rec.ready()
		errs := s.dispatchManyLocked(ctx, ready)
		down := false
		for i, id := range ready {
			st := rec.step(id)
			if err := errs[i]; err != nil {
				if s.storeDown(err) {
					// Queued once the store answers (watchStoreLocked).
					s.requeue, down = true, true
					continue
				}
				s.log.Error("dispatch step", "step", id, "err", err)
				st.State, st.Error = contract.StateFailed, "could not queue the step: "+err.Error()
				again = true
			}
			s.dirty = true
		}
		if down {
			break
		}
	}
	s.batchEventsLocked(ctx)
	if !rec.pendingWork() {
		s.concludeLocked(ctx, "")
	}
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

func (s *Scheduler) concludeLocked(ctx context.Context, reason string) {
	rec := s.cur
	now := time.Now().UTC()
	s.batchEventsLocked(ctx)
	// The record as it stands, stored before its end on the revision this
	// scheduler holds: refused, another took the deployment over and ends
	// it (saveLocked lets go of it); stored, a scheduler that takes it
	// over from now on starts from it and places what this one places (a
	// placement merged twice is merged once). An unavailable store writes
	// it later, with the end.
	if err := s.saveLocked(ctx); err != nil && s.cur != rec {
		return
	}
	if reason == "" {
		reason = rec.haltReason()
	}
	failed := rec.conclude(reason, now)
	s.dirty = true
	// The placement, the current mark, the lock and the finished event:
	// what the store refuses now is written once it answers. The placement
	// goes before the record, which a restart reads as finished.
	s.unfinished = &unfinished{placement: rec, mark: true, lock: true, event: &contract.DeploymentEvent{
		V: contract.Version, ID: rec.ID, State: rec.State, Changed: rec.Changed, Time: now, Error: rec.Error}}
	s.placeLocked(ctx, s.unfinished)
	s.flushLocked(ctx)
	if s.cur != rec {
		return // taken over while it ended: the new driver ends it
	}
	s.endLocked(ctx)
	s.log.Info("deployment finished", "id", rec.ID, "state", rec.State, "changed", rec.Changed, "failed", failed)
	s.hooks.Ended(rec)
}

// placeLocked stores where components run once u's deployment ended: the
// stored placement updated with what it placed and removed. Nothing is
// written while the stored one cannot be read, or the update would start
// from nothing and forget every instance it did not touch: an unavailable
// store is tried again on the next tick, holding the deploy lock so no
// deployment plans from the old placement meanwhile; a placement that does
// not decode is left for an operator, and the next deployment refuses to
// plan from it, saying so.
func (s *Scheduler) placeLocked(ctx context.Context, u *unfinished) {
	if u.placement == nil {
		return
	}
	// Written on the revision it was read at; a placement stored meanwhile
	// is read again and this deployment's changes merged into it.
	var err error
	for try := 1; ; try++ {
		var prev map[string][]string
		var rev uint64
		if prev, rev, err = loadPlacementRev(ctx, s.res); err == nil {
			var b []byte
			if b, err = json.Marshal(u.placement.placementAfter(prev)); err == nil {
				_, err = bus.PutAt(ctx, s.res.Scheduler, keyPlacement, b, rev)
			}
		}
		if !bus.IsConflict(err) || try == 3 {
			break
		}
	}
	if err != nil && bus.Unavailable(err) {
		return
	}
	if err != nil {
		s.log.Error("store placement: the stored one is kept as it is", "id", u.placement.ID, "err", err)
	}
	u.placement = nil
}

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
