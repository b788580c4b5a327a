package sched

import (
	"context"
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
	// purges are the purges of finished deployments' changes under way.
	purges sync.WaitGroup

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
	s.purges.Wait()
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
	// Every kind of deployment holds the steps of the nodes in maintenance.
	m, _, err := bus.LoadMaintenance(ctx, s.res.Engine)
	if err != nil {
		return fmt.Errorf("read the nodes in maintenance: %w", err)
	}
	rec.hold(m)
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
	rec, err := readRecord(ctx, s.res, id)
	if err != nil {
		return nil, err
	}
	return &rec.Deployment, nil
}
