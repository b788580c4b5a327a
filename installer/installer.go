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
	DialTimeout time.Duration // default 5s
	Keepalive   time.Duration // default 5s
	// Port is the nodes' SSH port; default 22.
	Port string
}

// Installer is the running installer service.
type Installer struct {
	o       Options
	log     *slog.Logger
	port    string
	pool    pool
	svc     micro.Service
	cc      jetstream.ConsumeContext
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	metrics metrics
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
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Keepalive <= 0 {
		o.Keepalive = 5 * time.Second
	}
	if o.Port == "" {
		o.Port = "22"
	}
	i := &Installer{o: o, log: o.Logger.With("service", "installer"), port: o.Port, pool: pool{conns: map[string]*pooled{}}}
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
	i.svc = svc
	for verb, h := range map[string]kit.Handler{"probe": i.probe, "exec": i.exec} {
		subj := subject.Cmd("installer", verb)
		if err := svc.AddEndpoint(kit.EndpointName(subj), kit.Concurrent(64, kit.Endpoint(i.log, h)), micro.WithEndpointSubject(subj)); err != nil {
			return nil, fmt.Errorf("installer: endpoint %s: %w", verb, err)
		}
	}
	cons, err := o.Res.JS.CreateOrUpdateConsumer(ctx, bus.StreamSteps, jetstream.ConsumerConfig{
		Durable:       "installer",
		Description:   "installers take steps from here",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: o.Parallel,
		MaxDeliver:    o.MaxAttempts + 5,
	})
	if err != nil {
		return nil, fmt.Errorf("installer: step consumer: %w", err)
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
	i.cc.Stop()
	_ = i.svc.Stop()
	i.cancel()
	i.wg.Wait()
	i.closeAll()
}

var (
	keyRe  = regexp.MustCompile(`[^A-Za-z0-9_.-]`)
	hashRe = regexp.MustCompile(`^[0-9a-f]{8,64}$`)
)

func fileKey(s string) string { return keyRe.ReplaceAllString(s, "_") }

// stepRun is one attempt at a step.
type stepRun struct {
	i       *Installer
	s       contract.Step
	attempt int
	started time.Time
	seq     atomic.Int64
}

func (i *Installer) handle(m jetstream.Msg) {
	var s contract.Step
	if err := json.Unmarshal(m.Data(), &s); err != nil || s.V > contract.Version || s.Node == "" || s.ID == "" ||
		!subject.ValidToken(s.Deployment) || !hashRe.MatchString(s.Hash) || !subject.ValidToken(s.Engine) {
		i.log.Error("dropping unreadable step", "subject", m.Subject())
		_ = m.Term()
		return
	}
	meta, _ := m.Metadata()
	attempt := 1
	if meta != nil {
		attempt = int(meta.NumDelivered)
	}
	r := &stepRun{i: i, s: s, attempt: attempt, started: time.Now().UTC()}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	state, code, err := r.execute()
	close(stop)
	if i.ctx.Err() != nil {
		return // stopping: the step comes back to the next installer
	}
	switch {
	case err == nil:
		r.report(state, &code, "", true)
		i.metrics.steps.WithLabelValues(state).Inc()
		_ = m.Ack()
	case isPermanent(err) || attempt >= i.o.MaxAttempts:
		r.report(contract.StateFailed, codePtr(code), err.Error(), true)
		i.metrics.steps.WithLabelValues("failed").Inc()
		_ = m.Term()
	default:
		r.report(contract.StateFailed, nil, fmt.Sprintf("attempt %d of %d: %v; trying again", attempt, i.o.MaxAttempts, err), false)
		_ = m.NakWithDelay(time.Duration(attempt) * 2 * time.Second)
	}
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
	timeout := time.Duration(s.TimeoutS) * time.Second
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(i.ctx, timeout+time.Minute)
	defer cancel()
	cfg, err := i.config(ctx)
	if err != nil {
		return "", -1, err
	}
	auth := contract.Auth{Password: cfg.Properties.Root, Key: cfg.Properties.Key}
	c, err := i.client(ctx, s.Node, auth)
	if err != nil {
		return "", -1, err
	}
	r.report(contract.StateRunning, nil, "", false)
	key := fileKey(s.Key)
	marker := stateDir + "/applied/" + key
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
	if s.Action == "prepare" {
		owner, _ := output(ctx, c, "cat "+stateDir+"/owner 2>/dev/null || true", nil)
		if o := strings.TrimSpace(string(owner)); o != "" && o != s.Engine {
			return "", -1, permanent{fmt.Errorf("%s is owned by engine %s; remove %s/owner on the node to hand it to this engine", s.Node, o, stateDir)}
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
	var pre strings.Builder
	for _, name := range s.SecretEnv {
		val, ok := cfg.Properties.Secrets()[name]
		if !ok {
			return "", -1, permanent{fmt.Errorf("step asks for unknown secret %q", name)}
		}
		fmt.Fprintf(&pre, "export DE_SECRET_%s=%s\n", strings.ToUpper(name), kit.ShellQuote(*val))
	}
	if s.Action == "prepare" {
		fmt.Fprintf(&pre, "mkdir -p %s && echo %s > %s/owner\n", stateDir, kit.ShellQuote(s.Engine), stateDir)
	}
	// The marker is written when, and only when, the script succeeds.
	fmt.Fprintf(&pre, "trap 'rc=$?; rm -f %[1]s/run/%[5]s.pgid; if [ $rc -eq 0 ]; then mkdir -p %[1]s/applied && printf \"%%s %%s\\n\" %[2]s %[3]s > %[4]s.tmp && mv %[4]s.tmp %[4]s; fi' EXIT\n",
		stateDir, s.Hash, s.Deployment, marker, key)
	var tail []string
	res := run(ctx, c, key, pre.String()+s.Script, timeout, func(stream, text string) {
		if stream == "stderr" {
			tail = append(tail, text)
			if len(tail) > 5 {
				tail = tail[1:]
			}
		}
		r.line(stream, redact(text, cfg))
	})
	switch {
	case errors.Is(res.err, context.DeadlineExceeded) || (res.err == nil && res.code == 124):
		return "", -1, permanent{fmt.Errorf("timed out after %s; the command was killed on the node", timeout)}
	case res.err != nil:
		return "", -1, res.err
	case res.code != 0:
		return "", res.code, permanent{errScript{code: res.code, tail: redact(strings.Join(tail, " | "), cfg)}}
	}
	return contract.StateSucceeded, 0, nil
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

// redact removes every secret of cfg from a line of output.
func redact(s string, cfg contract.Config) string {
	for _, v := range cfg.Properties.Secrets() {
		if len(*v) >= 3 && !strings.Contains(*v, "\n") {
			s = strings.ReplaceAll(s, *v, contract.Redacted)
		}
	}
	return s
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

func (r *stepRun) report(state string, code *int, errMsg string, final bool) {
	s := r.s
	ev := contract.StepEvent{V: contract.Version, Deployment: s.Deployment, ID: s.ID, Node: s.Node, Component: s.Component,
		Action: s.Action, State: state, Attempt: r.attempt, Started: &r.started, ExitCode: code, Error: errMsg, Final: final}
	if final || state == contract.StateFailed {
		now := time.Now().UTC()
		ev.Finished = &now
	}
	b, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Log lines went out on the same connection first; flush them so the
	// result never overtakes them.
	_ = r.i.o.NC.FlushWithContext(ctx)
	if _, err := r.i.o.Res.JS.Publish(ctx, subject.DeployEvent(s.Deployment, subject.DeployStep), b); err != nil {
		r.i.log.Error("publish step event", "step", s.ID, "err", err)
	}
}
