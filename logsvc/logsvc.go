// Package logsvc is the engine's log store. It appends every log line on
// the bus to one file per component instance (<component>_<n>.log, n the
// instance's position in the config) and the engine's operations to
// local.log, appends the runtime log lines node agents read from their log
// files to the same instance files, rotates files past a size, and lists
// and serves them over the bus without ever leaving its directory.
//
// Names: a log is `^[a-z][a-z0-9_-]{0,80}\.log$`; its rotated
// predecessors are name.log.1 (newest) to name.log.<Keep>. Both kinds are
// listed and served. Anything else in the directory (the ingest position
// file .ingest-seq, symlinks, directories, FIFOs) is neither listed nor
// served.
package logsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Consumer is the durable consumer of DE_EVENTS the service reads from.
const Consumer = "logsvc"

// Options configure the log service.
type Options struct {
	NC     *nats.Conn
	Res    *bus.Resources
	Dir    string
	Logger *slog.Logger
	// MaxBytes a file may reach before it is rotated; default 64 MiB.
	MaxBytes int64
	// Keep is how many rotated files of each log are kept; default 3, at most 99.
	Keep int
	// LogPaths names a component's runtime log files in a catalog. With
	// it, the logs of nodes whose agent does not report are fetched over
	// SSH every FetchEvery (default 10s).
	LogPaths   func(catalog, component string) []string
	FetchEvery time.Duration
}

// Service is the running log service.
type Service struct {
	o     Options
	log   *slog.Logger
	st    *store
	seq   *seqFile
	cache *instances

	svc   *kit.Service // its endpoints, ended by Stop
	rtSub *nats.Subscription

	mu      sync.Mutex // guards cc and closing: the writer may replace cc
	cc      jetstream.ConsumeContext
	closing bool

	jsCh     chan delivery
	rtCh     chan *nats.Msg
	stopping chan struct{} // closed once no more messages will arrive
	done     chan struct{} // closed when the writer has returned
	stopOnce sync.Once

	fetchCancel context.CancelFunc
	fetchDone   chan struct{} // closed when the fetcher has returned
	watchCancel context.CancelFunc

	// Writer only.
	lastSeq    uint64 // highest DE_EVENTS sequence written
	batchStart uint64 // lastSeq when the batch began
	failed     bool   // the batch hit an I/O error: roll it back
	gen        uint64 // generation of the current consumer
	scratch    []byte
	batch      uint64

	written atomic.Int64 // lines written, for tests
	metrics metrics
}

type metrics struct {
	lines, bytes, rotations, skipped prometheus.Counter
}

// batchMax bounds the lines written between two flushes.
const batchMax = 4096

// Start opens the store, registers the list and read endpoints and starts
// ingesting from where the last run stopped.
func Start(ctx context.Context, o Options) (*Service, error) {
	o = o.withDefaults()
	if o.NC == nil || o.Res == nil || o.Dir == "" {
		return nil, errors.New("logsvc: NC, Res and Dir are required")
	}
	s := newService(o)
	ok := false
	defer func() {
		if !ok {
			s.abort()
		}
	}()
	cons, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.addEndpoints(); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.watchCancel = cancel
	if err := bus.Retry(ctx, func(context.Context) error { return s.cache.watchConfig(wctx) }); err != nil {
		return nil, fmt.Errorf("logsvc: watch the config: %w", err)
	}
	if err := s.startIngest(cons); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// withDefaults fills the options Start leaves unset.
func (o Options) withDefaults() Options {
	kit.Default(&o.MaxBytes, 64<<20)
	kit.Default(&o.Keep, 3)
	o.Keep = min(o.Keep, 99)
	if o.LogPaths != nil && o.FetchEvery <= 0 {
		o.FetchEvery = 10 * time.Second
	}
	return o
}

func newService(o Options) *Service {
	svc := kit.NewService(o.Logger, "logsvc")
	return &Service{
		o:        o,
		log:      svc.Log(),
		svc:      svc,
		cache:    &instances{kv: o.Res.Config},
		jsCh:     make(chan delivery, 2*batchMax),
		rtCh:     make(chan *nats.Msg, batchMax),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		metrics: metrics{
			lines:     prometheus.NewCounter(prometheus.CounterOpts{Name: "de_logsvc_lines_total", Help: "Lines the log service wrote to its store."}),
			bytes:     prometheus.NewCounter(prometheus.CounterOpts{Name: "de_logsvc_bytes_total", Help: "Bytes the log service wrote to its store."}),
			rotations: prometheus.NewCounter(prometheus.CounterOpts{Name: "de_logsvc_rotations_total", Help: "Log files the log service rotated."}),
			skipped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "de_logsvc_skipped_total", Help: "Messages the log service skipped: unreadable, or an agent's line for an instance its node does not run."}),
		},
	}
}

// open opens the store and its ingest position, then the consumer that
// resumes after it.
func (s *Service) open(ctx context.Context) (jetstream.Consumer, error) {
	st, err := openStore(s.o.Dir, s.o.MaxBytes, s.o.Keep)
	if err != nil {
		return nil, err
	}
	s.st = st
	st.onRotate = s.metrics.rotations.Inc
	// local.log always exists, even before the engine did anything.
	if _, err := st.file(LocalLog); err != nil {
		return nil, err
	}
	if s.seq, err = openSeqFile(st); err != nil {
		return nil, err
	}
	// A cluster still electing leaders is waited out, not fatal.
	var cons jetstream.Consumer
	err = bus.Retry(ctx, func(ctx context.Context) (err error) {
		cons, err = s.consumer(ctx)
		return err
	})
	return cons, err
}

// addEndpoints serves the list and read endpoints.
func (s *Service) addEndpoints() error {
	return s.svc.Serve(s.o.NC, "the log store: lists and serves logs", map[string]kit.Handler{subject.LogsList(): s.list, subject.LogsRead(): s.read})
}

// startIngest starts the writer on the agents' log lines and cons's events,
// and, with LogPaths, the fetcher of silent nodes' logs.
func (s *Service) startIngest(cons jetstream.Consumer) error {
	// Handlers block when the writer lags (back pressure), but never
	// once it has gone.
	var err error
	s.rtSub, err = s.o.NC.Subscribe(subject.AllNodeLogs, func(m *nats.Msg) {
		select {
		case s.rtCh <- m:
		case <-s.stopping:
		}
	})
	if err != nil {
		return fmt.Errorf("logsvc: subscribe %s: %w", subject.AllNodeLogs, err)
	}
	// Pending limits off: the writer, not the client library, sets the pace.
	_ = s.rtSub.SetPendingLimits(-1, -1)
	cc, err := s.consume(cons)
	s.mu.Lock()
	s.cc = cc
	s.mu.Unlock()
	if err != nil {
		return err
	}
	go s.writer()
	if s.o.LogPaths != nil {
		var fctx context.Context
		fctx, s.fetchCancel = context.WithCancel(context.Background())
		s.fetchDone = make(chan struct{})
		go s.fetcher(fctx)
	}
	return nil
}

// abort undoes a Start that failed part way; the writer never started.
func (s *Service) abort() {
	s.stopInputs()
	if s.cc != nil {
		s.cc.Stop()
	}
	close(s.stopping) // unblocks handlers waiting for a writer
	s.teardown()
}

// delivery is a stream message and the generation of the consumer that
// delivered it: after a consumer restart, late messages of the old one are
// dropped rather than written out of order.
type delivery struct {
	m   jetstream.Msg
	gen uint64
}

// consume starts delivering the consumer's messages to the writer.
func (s *Service) consume(cons jetstream.Consumer) (jetstream.ConsumeContext, error) {
	s.gen++
	gen := s.gen
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case s.jsCh <- delivery{m, gen}:
		case <-s.stopping:
		}
	}, jetstream.PullMaxMessages(batchMax), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.log.Warn("consume events", "err", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("logsvc: consume %s: %w", bus.StreamEvents, err)
	}
	return cc, nil
}

// restartConsumer replaces the consumer after a failed batch, so that
// delivery starts again right after the last line on disk: the failed
// batch and whatever the old consumer had already delivered are dropped
// and come again, in order. It retries until it works or the service stops.
func (s *Service) restartConsumer() {
	s.mu.Lock()
	old := s.cc
	s.mu.Unlock()
	if old != nil {
		old.Stop()
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case <-old.Closed():
				break wait
			case <-s.jsCh: // unblock its handler
			case <-timeout:
				break wait
			}
		}
	}
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		select {
		case <-s.stopping:
			return
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cons, err := s.consumer(ctx)
		cancel()
		var cc jetstream.ConsumeContext
		if err == nil {
			cc, err = s.consume(cons)
		}
		if err != nil {
			s.log.Error("restart the event consumer", "err", err, "retry_in", 2*wait)
			continue
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closing {
			cc.Stop()
			return
		}
		s.cc = cc
		s.log.Info("event consumer restarted", "from_seq", s.lastSeq+1)
		return
	}
}

// consumer opens the durable consumer so that delivery resumes right after
// the last message on disk. When the consumer's ack floor says otherwise
// (the engine died between writing and acking, or the store is new) it is
// recreated at the right sequence rather than waiting for redeliveries,
// which would arrive after newer messages and break the files' order.
func (s *Service) consumer(ctx context.Context) (jetstream.Consumer, error) {
	js := s.o.Res.JS
	info, err := s.o.Res.Events.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("logsvc: stream %s: %w", bus.StreamEvents, err)
	}
	last, known := s.seq.last, s.seq.known
	if last > info.State.LastSeq {
		// The stream was recreated: its sequences start over.
		s.log.Warn("event stream is behind the store; reading it from the start", "store_seq", last, "stream_seq", info.State.LastSeq)
		last, known = 0, false
	}
	cons, err := js.Consumer(ctx, bus.StreamEvents, Consumer)
	switch {
	case err == nil:
		ci, err := cons.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("logsvc: consumer info: %w", err)
		}
		if !known {
			last = ci.AckFloor.Stream
		}
		if ci.AckFloor.Stream == last && ci.NumAckPending == 0 {
			s.lastSeq = last
			return cons, nil
		}
		if err := js.DeleteConsumer(ctx, bus.StreamEvents, Consumer); err != nil {
			return nil, fmt.Errorf("logsvc: reset consumer: %w", err)
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("logsvc: consumer: %w", err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       Consumer,
		Description:   "the log store writes every event to its files",
		FilterSubject: subject.AllEvents,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * batchMax,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
	}
	s.lastSeq = last
	cons, err = js.CreateConsumer(ctx, bus.StreamEvents, cfg)
	if err != nil {
		return nil, fmt.Errorf("logsvc: create consumer: %w", err)
	}
	return cons, nil
}

// Collectors are the service's metrics.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.lines, s.metrics.bytes, s.metrics.rotations, s.metrics.skipped}
}

// stopInputs ends what comes in apart from the events: the requests, the
// agents' lines and the fetcher. It comes first: nothing reads or writes
// once the store is about to close.
func (s *Service) stopInputs() {
	if s.watchCancel != nil {
		s.watchCancel()
	}
	s.svc.Stop(stopWait)
	if s.rtSub != nil {
		_ = s.rtSub.Unsubscribe()
	}
	if s.fetchCancel != nil {
		s.fetchCancel()
		<-s.fetchDone
	}
}

// stopWait bounds how long Stop waits for the list and read requests in
// flight once their ctx ended.
const stopWait = 10 * time.Second

// Stop stops ingesting: messages already fetched are written, flushed and
// acknowledged first, so a restart neither loses nor repeats a line.
func (s *Service) Stop() {
	s.stopOnce.Do(func() {
		s.stopInputs()
		s.mu.Lock()
		s.closing = true
		cc := s.cc
		s.mu.Unlock()
		if cc != nil {
			cc.Drain()
			select {
			case <-cc.Closed():
			case <-time.After(10 * time.Second):
				s.log.Warn("event consumer did not drain in time")
				cc.Stop()
			}
		}
		close(s.stopping)
		<-s.done
		if err := s.o.NC.Flush(); err != nil {
			s.log.Warn("flush acks", "err", err)
		}
		s.teardown()
	})
}

// teardown releases what Start acquired; the writer must not be running.
func (s *Service) teardown() {
	if s.seq != nil {
		_ = s.seq.close()
	}
	if s.st != nil {
		if err := s.st.close(); err != nil {
			s.log.Error("close store", "err", err)
		}
	}
}
