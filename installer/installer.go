// Package installer runs deployment steps on nodes over SSH: it takes them
// from the JetStream work queue, uploads their files verified by checksum,
// runs their scripts with deadlines, and reports every output line and
// result as events. It knows nothing about components.
package installer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

// Options configure the installer.
type Options struct {
	NC     *nats.Conn
	Res    *bus.Resources
	Logger *slog.Logger
	// Parallel bounds the steps in flight (one per node at most, by the
	// planner's schedule); default 64.
	Parallel int
	// MaxAttempts bounds the tries of a step that fails for network
	// reasons; default 3.
	MaxAttempts int
	// An SSH connection is made in three phases, each with a deadline of
	// its own (see dial): ConnectTimeout for the TCP connect (default 2s),
	// HandshakeTimeout for the key exchange and host key check (default
	// 4s), LoginTimeout for the node to accept the credentials (default
	// 8s; PAM takes seconds on a loaded node). A try that fails for a
	// reason that may pass is made again, up to DialTries (default 3),
	// after DialBackoff (default 500ms), doubled each time.
	ConnectTimeout   time.Duration
	HandshakeTimeout time.Duration
	LoginTimeout     time.Duration
	DialTries        int
	DialBackoff      time.Duration
	Keepalive        time.Duration // default 5s
	// AckWait is how long the work queue waits for a sign of life from the
	// installer holding a step before it hands the step to another; the
	// installer signals every AckWait/3 while a step runs. Default 30s;
	// tests shorten it to exercise redelivery.
	AckWait time.Duration
	// Port is the nodes' SSH port; default 22.
	Port string
	// AgentPassword is the NATS password of the agent on a node, for the
	// step that installs it (secret "agent"); nil when this installer
	// holds no agent secret.
	AgentPassword func(ip string) string
}

// Installer is the running installer service.
type Installer struct {
	o       Options
	log     *slog.Logger
	port    string
	pool    pool
	svc     micro.Service
	hs      *kit.Handlers // its endpoints' handlers, ended by Stop
	cc      jetstream.ConsumeContext
	cancels *nats.Subscription
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	metrics metrics

	mu      sync.Mutex
	running map[string]map[*stepRun]context.CancelFunc // deployment → its steps in flight here
	// ended holds the deployments cancelled or given up lately, and why: a
	// step of one still in the queue (its purge failed while the store was
	// unavailable) is dropped, not run after its deployment ended.
	ended map[string]ended
}

type ended struct {
	why string
	at  time.Time
}

type metrics struct {
	steps *prometheus.CounterVec
	conns prometheus.Counter
	bytes prometheus.Counter
}

// Start registers the probe endpoint and starts taking steps.
func Start(ctx context.Context, o Options) (*Installer, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 2 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 4 * time.Second
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = 8 * time.Second
	}
	if o.DialTries <= 0 {
		o.DialTries = 3
	}
	if o.DialBackoff <= 0 {
		o.DialBackoff = 500 * time.Millisecond
	}
	if o.Keepalive <= 0 {
		o.Keepalive = 5 * time.Second
	}
	if o.Port == "" {
		o.Port = "22"
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	i := &Installer{o: o, log: o.Logger.With("service", "installer"), port: o.Port, pool: pool{conns: map[string]*pooled{}},
		running: map[string]map[*stepRun]context.CancelFunc{}, ended: map[string]ended{}}
	i.ctx, i.cancel = context.WithCancel(context.Background())
	i.metrics = metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_installer_steps_total", Help: "Steps the installer finished, by result."}, []string{"result"}),
		conns: prometheus.NewCounter(prometheus.CounterOpts{Name: "de_installer_ssh_connections_total", Help: "SSH connections the installer opened."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "de_installer_transfer_bytes_total", Help: "Bytes of files the installer sent to nodes."}),
	}
	svc, err := micro.AddService(o.NC, micro.Config{Name: "installer", Version: "1.0.0", Description: "runs steps on nodes over SSH"})
	if err != nil {
		return nil, fmt.Errorf("installer: add service: %w", err)
	}
	i.svc, i.hs = svc, kit.NewHandlers(i.log)
	for subj, h := range map[string]kit.Handler{subject.InstallerProbe(): i.probe, subject.InstallerExec(): i.exec} {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Concurrent(64, i.hs.Endpoint(h)), micro.WithEndpointSubject(subj)); err != nil {
			return nil, fmt.Errorf("installer: endpoint %s: %w", subj, err)
		}
	}
	cons, err := bus.Consumer(ctx, o.Res.JS, bus.StreamSteps, jetstream.ConsumerConfig{
		Durable:       "installer",
		Description:   "installers take steps from here",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxAckPending: o.Parallel,
		MaxDeliver:    o.MaxAttempts + 5,
	})
	if err != nil {
		return nil, fmt.Errorf("installer: step consumer: %w", err)
	}
	// Every installer hears a cancel: whichever runs the deployment's steps
	// stops them.
	i.cancels, err = o.NC.Subscribe(subject.InstallerCancel(), i.onCancel)
	if err != nil {
		return nil, fmt.Errorf("installer: subscribe to cancels: %w", err)
	}
	i.cc, err = cons.Consume(func(m jetstream.Msg) {
		i.wg.Add(1)
		go func() { defer i.wg.Done(); i.handle(m) }()
	})
	if err != nil {
		return nil, fmt.Errorf("installer: consume steps: %w", err)
	}
	return i, nil
}

// Collectors are the installer's metrics.
func (i *Installer) Collectors() []prometheus.Collector {
	return []prometheus.Collector{i.metrics.steps, i.metrics.conns, i.metrics.bytes}
}

// Stop stops taking steps; steps in flight are abandoned unacknowledged
// and come back to the next installer.
func (i *Installer) Stop() {
	_ = i.cancels.Unsubscribe()
	i.cc.Stop()
	_ = i.svc.Stop()
	if !i.hs.Stop(10 * time.Second) {
		i.log.Warn("a probe or exec was still running 10 s after stop")
	}
	i.cancel()
	i.wg.Wait()
	i.closeAll()
}

var hashRe = regexp.MustCompile(`^[0-9a-f]{8,64}$`)

// stepRun is one attempt at a step.
type stepRun struct {
	i *Installer
	s contract.Step
	// attempt numbers this try among all the step's tries: the message's
	// delivery counted on from the step's Attempt.
	attempt int
	started time.Time
	seq     atomic.Int64
	ctx     context.Context
	// cancelled holds why the run was cancelled, if it was.
	cancelled atomic.Pointer[string]
	// ended is set once the step's final event is stored.
	ended atomic.Bool
}

// readStep decodes a step message; what it could not read is an error
// that names the problem, with the step as far as it was read.
func readStep(m jetstream.Msg) (contract.Step, error) {
	var s contract.Step
	if err := json.Unmarshal(m.Data(), &s); err != nil {
		return s, fmt.Errorf("the step message does not decode: %v", err)
	}
	if s.V > contract.StepVersionSealed {
		return s, fmt.Errorf("the step message has version %d; this installer reads up to %d", s.V, contract.StepVersionSealed)
	}
	if err := bus.OpenStep(&s); err != nil {
		return s, fmt.Errorf("the step message's files: %v", err)
	}
	switch {
	case s.Node == "" || s.ID == "":
		return s, fmt.Errorf("the step message names no node or no step")
	case !subject.ValidToken(s.Deployment):
		return s, fmt.Errorf("the step message names no valid deployment")
	case !hashRe.MatchString(s.Hash):
		return s, fmt.Errorf("the step message has no valid hash")
	case !subject.ValidToken(s.Engine):
		return s, fmt.Errorf("the step message names no valid engine")
	}
	return s, nil
}

func (i *Installer) handle(m jetstream.Msg) {
	meta, _ := m.Metadata()
	delivered := 1
	if meta != nil {
		delivered = int(meta.NumDelivered)
	}
	s, err := readStep(m)
	if err == nil {
		err = readChain(s)
	}
	// The planner numbers a step's first try from this message; the work
	// queue's redeliveries count on from there.
	first := max(s.Attempt, 1)
	attempt := first + delivered - 1
	if err != nil {
		i.unreadable(m, s, attempt, err)
		return
	}
	if why, ok := i.endedWhy(s.Deployment); ok {
		i.log.Info("step of an ended deployment dropped", "deployment", s.Deployment, "step", s.ID, "why", why)
		_ = m.Term()
		return
	}
	i.log.Debug("step taken", "deployment", s.Deployment, "step", s.ID, "node", s.Node, "attempt", attempt, "chained", len(s.Chain))
	ctx, cancel := context.WithCancel(i.ctx)
	defer cancel()
	steps := append([]contract.Step{s}, s.Chain...)
	steps[0].Chain = nil
	runs := make([]*stepRun, len(steps))
	for k, st := range steps {
		runs[k] = &stepRun{i: i, s: st, attempt: max(st.Attempt, 1) + delivered - 1, ctx: ctx}
	}
	head := runs[0]
	i.track(head, cancel, true)
	defer i.track(head, nil, false)
	stop := make(chan struct{})
	go i.keepAlive(m, runs, stop)
	k, code, stored, err := i.executeChain(runs)
	close(stop)
	if i.ctx.Err() != nil || !stored {
		return // stopping, or a result the engine never stored: the steps come back
	}
	if err == nil {
		_ = m.Ack()
		return
	}
	// A failed step ends its chain: the steps after it did not run, and the
	// planner, told of the failure, decides again about them.
	r := runs[k]
	switch why := head.cancelled.Load(); {
	case why != nil:
		// The deployment is over: nothing will retry this step.
		r.finish(m, contract.StateFailed, nil, "cancelled: "+*why, "failed", m.Term)
	case isPermanent(err) || delivered >= i.o.MaxAttempts:
		r.finish(m, contract.StateFailed, codePtr(code), err.Error(), "failed", m.Term)
	default:
		if r.report(contract.StateFailed, nil, fmt.Sprintf("attempt %d of %d: %v; trying again", r.attempt, max(r.s.Attempt, 1)+i.o.MaxAttempts-1, err), false) == nil {
			_ = m.NakWithDelay(time.Duration(delivered) * 2 * time.Second)
		}
	}
}

// readChain checks the steps chained after head: the same deployment, node
// and engine, and what a step alone must have.
func readChain(head contract.Step) error {
	for _, s := range head.Chain {
		switch {
		case len(s.Chain) > 0:
			return fmt.Errorf("step %s of the chain of %s holds a chain of its own", s.ID, head.ID)
		case s.ID == "" || s.Node != head.Node || s.Deployment != head.Deployment || s.Engine != head.Engine:
			return fmt.Errorf("step %q of the chain of %s is not of the same node, deployment and engine", s.ID, head.ID)
		case !hashRe.MatchString(s.Hash):
			return fmt.Errorf("step %s of the chain of %s has no valid hash", s.ID, head.ID)
		}
	}
	return nil
}

// executeChain runs the steps once, in order, and reports each step's
// start and success as it happens, its result stored before the next
// step begins. It returns the index of the step that stopped the chain,
// with its exit code and error (or len(runs) and nil), and whether every
// result it reported was stored.
func (i *Installer) executeChain(runs []*stepRun) (int, int, bool, error) {
	for k := 0; k < len(runs); {
		if !chainable(runs[k].s) {
			// Files from this machine go file by file, as a step alone.
			runs[k].started = time.Now().UTC()
			state, code, err := runs[k].execute()
			if err != nil {
				return k, code, true, err
			}
			if !runs[k].succeed(state) {
				return k, 0, false, nil
			}
			k++
			continue
		}
		j := k
		for j < len(runs) && chainable(runs[j].s) {
			j++
		}
		stopped, code, stored, err := i.runSegment(runs[k:j])
		if err != nil || !stored {
			return k + stopped, code, stored, err
		}
		k = j
	}
	return len(runs), 0, true, nil
}

// succeed reports a step done; false when its event was not stored.
func (r *stepRun) succeed(state string) bool {
	zero := 0
	if err := r.report(state, &zero, "", true); err != nil {
		r.i.log.Error("the step's result could not be stored; leaving the step to come back", "step", r.s.ID, "err", err)
		return false
	}
	r.i.metrics.steps.WithLabelValues(state).Inc()
	return true
}

// finish stores the step's final event and only then settles its message:
// a result the engine never stored must come back, not vanish. The node's
// marker makes the step's return harmless.
func (r *stepRun) finish(m jetstream.Msg, state string, code *int, errMsg, metric string, settle func() error) {
	if err := r.report(state, code, errMsg, true); err != nil {
		r.i.log.Error("the step's result could not be stored; leaving the step to come back", "step", r.s.ID, "err", err)
		return
	}
	r.i.metrics.steps.WithLabelValues(metric).Inc()
	_ = settle()
	r.i.log.Debug("step done", "deployment", r.s.Deployment, "step", r.s.ID, "state", state)
}

// unreadable turns a step message the installer cannot read into a failed
// step event, so that the deployment waiting for it learns why instead of
// waiting for ever. The deployment and node come from the subject when the
// body does not name them.
func (i *Installer) unreadable(m jetstream.Msg, s contract.Step, attempt int, why error) {
	i.log.Error("unreadable step", "subject", m.Subject(), "err", why)
	if ss, err := subject.ParseStep(m.Subject()); err == nil {
		s.Deployment, s.Node = ss.Deployment, ss.IP
	}
	if !subject.ValidToken(s.Deployment) {
		_ = m.Term() // no deployment to tell: nothing waits for it
		return
	}
	r := &stepRun{i: i, s: s, attempt: attempt, started: time.Now().UTC(), ctx: i.ctx}
	r.finish(m, contract.StateFailed, nil, "the installer could not read this step: "+why.Error(), "failed", m.Term)
}

// keepAlive tells the work queue and the scheduler that the steps are
// still worked on, until stop closes: every step of the chain not yet
// ended beats, so that none waiting its turn looks abandoned.
func (i *Installer) keepAlive(m jetstream.Msg, runs []*stepRun, stop <-chan struct{}) {
	every := min(max(i.o.AckWait/3, 200*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_ = m.InProgress()
			for _, r := range runs {
				if r.ended.Load() {
					continue
				}
				beat, _ := json.Marshal(contract.StepBeat{V: contract.Version, Deployment: r.s.Deployment, ID: r.s.ID, Node: r.s.Node, Attempt: r.attempt})
				_ = i.o.NC.Publish(subject.StepBeat(r.s.Deployment), beat)
			}
		}
	}
}

// track keeps the runs in flight per deployment, for cancels.
func (i *Installer) track(r *stepRun, cancel context.CancelFunc, add bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	runs := i.running[r.s.Deployment]
	if add {
		if runs == nil {
			runs = map[*stepRun]context.CancelFunc{}
			i.running[r.s.Deployment] = runs
		}
		runs[r] = cancel
		return
	}
	delete(runs, r)
	if len(runs) == 0 {
		delete(i.running, r.s.Deployment)
	}
}

// onCancel stops every step of a deployment that runs here; their
// commands are killed on the nodes.
func (i *Installer) onCancel(msg *nats.Msg) {
	var c contract.StepCancel
	if err := json.Unmarshal(msg.Data, &c); err != nil || c.Deployment == "" {
		return
	}
	why := c.Reason
	if why == "" {
		why = "the deployment was cancelled"
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	now := time.Now()
	for id, e := range i.ended {
		if now.Sub(e.at) > time.Hour {
			delete(i.ended, id)
		}
	}
	i.ended[c.Deployment] = ended{why: why, at: now}
	for r, cancel := range i.running[c.Deployment] {
		r.cancelled.Store(&why)
		cancel()
	}
}

// endedWhy tells whether deployment id was cancelled or given up, and why.
func (i *Installer) endedWhy(id string) (string, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	e, ok := i.ended[id]
	return e.why, ok
}

func codePtr(c int) *int {
	if c < 0 {
		return nil
	}
	return &c
}

// errScript is a script that ran and failed: no retry mends it.
type errScript struct {
	code int
	tail string
}

func (e errScript) Error() string {
	if e.tail == "" {
		return fmt.Sprintf("exited with status %d", e.code)
	}
	return fmt.Sprintf("exited with status %d: %s", e.code, e.tail)
}

// execute runs the step once: it returns the final state and exit code,
// or an error (permanent or not).
func (r *stepRun) execute() (string, int, error) {
	i, s := r.i, r.s
	timeout := stepTimeout(s)
	ctx, cancel := context.WithTimeout(r.ctx, timeout+time.Minute)
	defer cancel()
	cfg, err := i.config(ctx)
	if err != nil {
		return "", -1, err
	}
	auth, err := i.nodeAuth(ctx, cfg)
	if err != nil {
		return "", -1, err
	}
	c, err := i.client(ctx, s.Node, auth)
	if err != nil {
		return "", -1, err
	}
	_ = r.report(contract.StateRunning, nil, "", false)
	key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
	// An earlier attempt of this step may still run on the node (its
	// installer died, or its message came back): never run two at once.
	note, err := settle(ctx, c, key, s.Hash)
	if err != nil {
		return "", -1, fmt.Errorf("an earlier run of %s on %s: %w", s.Key, s.Node, err)
	}
	if note != "" {
		r.line("stdout", note)
	}
	have, err := output(ctx, c, "cat "+marker+" 2>/dev/null || true", nil)
	if err != nil {
		return "", -1, fmt.Errorf("read step marker on %s: %w", s.Node, err)
	}
	if f := strings.Fields(string(have)); len(f) >= 1 && f[0] == s.Hash {
		if len(f) >= 2 && f[1] == s.Deployment {
			// This deployment completed it before the engine stopped.
			return contract.StateSucceeded, 0, nil
		}
		return contract.StateUnchanged, 0, nil
	}
	if s.Claim {
		owner, _ := output(ctx, c, nodefs.ReadOwner, nil)
		if nodefs.OwnedElsewhere(string(owner), s.Engine) {
			return "", -1, permanent{fmt.Errorf("%s is owned by engine %s; remove %s on the node to hand it to this engine", s.Node, strings.TrimSpace(string(owner)), nodefs.Owner)}
		}
	}
	if len(s.Files) > 0 && strings.TrimSpace(string(have)) != "" {
		// The node is about to leave the state its marker records: a step
		// that fails from here on must not pass for the old one applied
		// (a revert to it would find nothing to do).
		if _, err := output(ctx, c, "rm -f "+marker, nil); err != nil {
			return "", -1, fmt.Errorf("clear step marker on %s: %w", s.Node, err)
		}
	}
	for _, f := range s.Files {
		sent, err := i.upload(ctx, c, f)
		if err != nil {
			return "", -1, err
		}
		if sent {
			r.line("stdout", "sent "+f.Path)
		}
	}
	pre, err := r.prelude(ctx, cfg)
	if err != nil {
		return "", -1, err
	}
	var tail []string
	red := cfg.OutputRedactor()
	deadline := time.Now().Add(timeout + 5*time.Second)
	res := runStep(ctx, c, stepJob{key: key, hash: s.Hash, deployment: s.Deployment, until: deadline}, withPrelude(pre, s.Script), timeout, func(stream, text string) {
		if stream == "stderr" {
			tail = append(tail, text)
			if len(tail) > 5 {
				tail = tail[1:]
			}
		}
		r.line(stream, red.Redact(text))
	})
	switch {
	case r.cancelled.Load() != nil:
		return "", -1, permanent{errors.New("cancelled")}
	case res.err == nil && res.code == exitLocked:
		return "", -1, errors.New("another run of this step holds its lock on the node")
	case errors.Is(res.err, context.DeadlineExceeded) || (res.err == nil && res.code == 124):
		return "", -1, permanent{fmt.Errorf("timed out after %s; the command was killed on the node", timeout)}
	case res.err != nil:
		return "", -1, res.err
	case res.code != 0:
		return "", res.code, permanent{errScript{code: res.code, tail: red.Redact(strings.Join(tail, " | "))}}
	}
	return contract.StateSucceeded, 0, nil
}

// prelude is what runs before a step's own script, under its lock: its
// secrets, the node's owner for a claim, the check that an earlier run did
// not apply it meanwhile, and the trap that writes its marker on success.
func (r *stepRun) prelude(ctx context.Context, cfg contract.Config) (string, error) {
	s := r.s
	key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
	var pre strings.Builder
	for _, name := range s.SecretEnv {
		val, err := r.i.secretFor(ctx, cfg, name, s.Node)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&pre, "export DE_SECRET_%s=%s\n", strings.ToUpper(name), kit.ShellQuote(val))
	}
	if s.Claim {
		fmt.Fprintf(&pre, "mkdir -p %s && echo %s > %s\n", nodefs.State, kit.ShellQuote(s.Engine), nodefs.Owner)
	}
	// Checked again under the step's lock on the node: a run that finished
	// while this one waited leaves nothing to do.
	fmt.Fprintf(&pre, "h=; [ ! -f %[1]s ] || read -r h _ < %[1]s; if [ \"$h\" = %[2]s ]; then echo 'applied meanwhile by an earlier run'; exit 0; fi\n", marker, s.Hash)
	// From here the node leaves what the marker records, until the
	// script succeeds and writes the new one.
	fmt.Fprintf(&pre, "[ ! -e %[1]s ] || rm -f %[1]s\n", marker)
	// The marker is written when, and only when, the script succeeds. A
	// write cut short leaves a marker that matches nothing: the step runs
	// again, which is all a marker decides. The shell does it all itself:
	// a step's bookkeeping costs the node no process.
	fmt.Fprintf(&pre, "trap 'rc=$?; : > %[1]s/%[6]s.pgid; if [ $rc -eq 0 ]; then [ -d %[5]s ] || mkdir -p %[5]s; printf \"%%s %%s\\n\" %[2]s %[3]s > %[4]s; fi' EXIT\n",
		nodefs.Run, s.Hash, s.Deployment, marker, nodefs.Applied, key)
	return pre.String(), nil
}

// withPrelude is a step's script after its prelude, in a subshell of its
// own: what the script does to its shell (a trap on EXIT, an exit) cannot
// take the place of the prelude's trap that writes the step's marker.
func withPrelude(pre, script string) string {
	return pre + "(\n" + strings.TrimSuffix(script, "\n") + "\n)\n"
}

// config reads the stored config for the nodes' credentials.
func (i *Installer) config(ctx context.Context) (contract.Config, error) {
	cfg, err := bus.LoadConfig(ctx, i.o.Res.Config)
	if errors.Is(err, bus.ErrBadConfig) {
		return cfg, permanent{err}
	}
	if err != nil {
		return cfg, fmt.Errorf("the nodes' credentials: %w", err)
	}
	return cfg, nil
}

func (r *stepRun) line(stream, text string) {
	s := r.s
	l := contract.LogLine{V: contract.Version, Deployment: s.Deployment, Node: s.Node, Component: s.Component, Step: s.ID,
		Stream: stream, Seq: r.seq.Add(1), Time: time.Now().UTC(), Line: text}
	b, _ := json.Marshal(l)
	// Core publish keeps the lines of one step in order and fast; the
	// event stream stores them.
	if err := r.i.o.NC.Publish(subject.Log(s.Deployment, s.Node, s.Component), b); err != nil {
		r.i.log.Warn("publish log line", "err", err)
	}
}

// report publishes a step event and returns once the event stream has
// stored it, retrying for a while when the bus does not answer.
func (r *stepRun) report(state string, code *int, errMsg string, final bool) error {
	s := r.s
	ev := contract.StepEvent{V: contract.Version, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Component: s.Component,
		Action: s.Action, State: state, Attempt: r.attempt, ExitCode: code, Error: errMsg, Final: final}
	if !r.started.IsZero() {
		ev.Started = &r.started
	}
	if final || state == contract.StateFailed {
		now := time.Now().UTC()
		ev.Finished = &now
	}
	b, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Log lines went out on the same connection first; flush them so the
	// result never overtakes them.
	_ = r.i.o.NC.FlushWithContext(ctx)
	var err error
	for {
		if _, err = r.i.o.Res.JS.Publish(ctx, subject.DeployEvent(s.Deployment, subject.DeployStep), b); err == nil {
			if final {
				r.ended.Store(true)
			}
			return nil
		}
		r.i.log.Warn("publish step event", "step", s.ID, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish step event: %w", err)
		case <-r.i.ctx.Done():
			return fmt.Errorf("publish step event: %w", err)
		case <-time.After(time.Second):
		}
	}
}
