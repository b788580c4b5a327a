// Package installer runs deployment steps on nodes: through the node's
// agent when it runs the engine's build (agentconn.go), else over SSH.
//
// It takes steps from the JetStream work queue (queue.go) and runs each
// message's steps once (execute.go): in chain scripts (chain.go,
// segment.go), or command by command for a step whose files it sends
// itself (sent.go). Their files are verified by checksum, their scripts
// run with deadlines, and every output line and result goes out as an
// event. Each command is the same shell command line on either path
// (conn.go): only its bytes travel differently. It knows nothing about
// components.
package installer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeexec"
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
	// ProbeTurns, when set, are the turns the probes of every installer
	// that shares it take, one a node (its capacity: the nodes contacted
	// at once). An engine's clusters each have an installer, and their
	// handshakes share the control machine's CPU. Default: the installer's
	// own, contract.ProbeParallel.
	ProbeTurns chan struct{}
	// Cluster is the name of the engine's cluster this installer works
	// for ("" is the default cluster), which a claim records on the node
	// beside the engine's id.
	Cluster string
	// AgentPassword is the NATS password of the agent on a node, for the
	// step that installs it (secret "agent"); nil when this installer
	// holds no agent secret.
	AgentPassword func(ip string) string
	// Version is the engine's build version, as de-agent reports its
	// own. A node whose agent runs the same build gets its steps through
	// the agent, sealed with a key derived from the agent's password; ""
	// sends every step over SSH.
	Version string
	// AgentLiveness is how long a command through an agent may go
	// without a word from the agent (it beats every few seconds) before
	// the agent is taken for dead; default 15s.
	AgentLiveness time.Duration
}

// Installer is the running installer service.
type Installer struct {
	o       Options
	log     *slog.Logger
	port    string
	pool    pool
	gateway gatewayConn
	svc     *kit.Service // its endpoints, ended by Stop
	cc      jetstream.ConsumeContext
	cancels *nats.Subscription
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	metrics metrics
	agents  *agents

	mu      sync.Mutex
	running map[string]map[*stepRun]context.CancelFunc // deployment → its steps in flight here
	// ended holds the deployments cancelled or given up lately, and why: a
	// step of one still in the queue (its purge failed while the store was
	// unavailable) is dropped, not run after its deployment ended.
	ended map[string]ended
}

type metrics struct {
	steps       *prometheus.CounterVec
	conns       prometheus.Counter
	sshSessions prometheus.Counter
	bytes       prometheus.Counter
	agentRuns   prometheus.Counter
	fallbacks   *prometheus.CounterVec
}

// Start registers the probe endpoint and starts taking steps.
func Start(ctx context.Context, o Options) (*Installer, error) {
	kit.Default(&o.Parallel, 64)
	kit.Default(&o.MaxAttempts, 3)
	kit.Default(&o.ConnectTimeout, 2*time.Second)
	kit.Default(&o.HandshakeTimeout, 4*time.Second)
	kit.Default(&o.LoginTimeout, 8*time.Second)
	kit.Default(&o.DialTries, 3)
	kit.Default(&o.DialBackoff, 500*time.Millisecond)
	kit.Default(&o.Keepalive, 5*time.Second)
	kit.Default(&o.Port, "22")
	kit.Default(&o.AckWait, 30*time.Second)
	kit.Default(&o.AgentLiveness, 15*time.Second)
	if o.ProbeTurns == nil {
		o.ProbeTurns = make(chan struct{}, contract.ProbeParallel)
	}
	// Shorter than two of the agent's beats, a command that prints
	// nothing for a while would pass for one whose agent died.
	o.AgentLiveness = max(o.AgentLiveness, 2*nodeexec.Beat)
	svc := kit.NewService(o.Logger, "installer")
	i := &Installer{o: o, log: svc.Log(), svc: svc, port: o.Port, pool: pool{conns: map[string]*pooled{}},
		running: map[string]map[*stepRun]context.CancelFunc{}, ended: map[string]ended{}}
	i.ctx, i.cancel = context.WithCancel(context.Background())
	i.metrics = metrics{
		steps:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_installer_steps_total", Help: "Steps the installer finished, by result."}, []string{"result"}),
		conns:       prometheus.NewCounter(prometheus.CounterOpts{Name: "de_installer_ssh_connections_total", Help: "SSH connections the installer opened."}),
		sshSessions: prometheus.NewCounter(prometheus.CounterOpts{Name: "de_installer_ssh_sessions_total", Help: "Commands the installer ran on nodes over SSH."}),
		bytes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "de_installer_transfer_bytes_total", Help: "Bytes of files the installer sent to nodes."}),
		agentRuns:   prometheus.NewCounter(prometheus.CounterOpts{Name: "de_installer_agent_sessions_total", Help: "Commands the installer ran on nodes through their agents."}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_installer_agent_fallbacks_total",
			Help: "Commands or nodes that went over SSH although an agent was asked, by why: no-answer, version, no-exec, large, refused, gone, silent, lost."}, []string{"reason"}),
	}
	i.agents = &agents{nc: o.NC, version: o.Version, password: o.AgentPassword, log: i.log, hello: 500 * time.Millisecond, live: o.AgentLiveness,
		sessions: i.metrics.agentRuns, fallbacks: i.metrics.fallbacks, known: map[string]agentState{}}
	if err := svc.Serve(o.NC, "runs steps on nodes over SSH", map[string]kit.Handler{subject.InstallerProbe(): i.probe, subject.InstallerExec(): i.exec}); err != nil {
		return nil, err
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
	m := i.metrics
	return []prometheus.Collector{m.steps, m.conns, m.sshSessions, m.bytes, m.agentRuns, m.fallbacks}
}

// Stop stops taking steps; steps in flight are abandoned unacknowledged
// and come back to the next installer.
func (i *Installer) Stop() {
	_ = i.cancels.Unsubscribe()
	i.cc.Stop()
	i.svc.Stop(10 * time.Second)
	i.cancel()
	i.wg.Wait()
	i.closeAll()
	i.closeGateway()
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

// connect reads the nodes' credentials and returns them with the way to
// node's commands: its agent when it answers and runs the engine's build,
// else its pooled SSH connection.
func (i *Installer) connect(ctx context.Context, node string) (contract.Config, nodeConn, error) {
	cfg, err := i.config(ctx)
	if err != nil {
		return cfg, nil, err
	}
	auth, err := i.nodeAuth(ctx, cfg)
	if err != nil {
		return cfg, nil, err
	}
	c, err := i.connectWith(ctx, node, auth)
	return cfg, c, err
}

// connectWith is node's agent when it takes commands, else its pooled SSH
// connection under auth.
func (i *Installer) connectWith(ctx context.Context, node string, auth contract.Auth) (nodeConn, error) {
	dial := i.sshDialer(node, auth)
	if c := i.agents.conn(ctx, node, dial); c != nil {
		return c, nil
	}
	return dial(ctx)
}

// sshDialer dials node's pooled SSH connection under auth: what the
// agent's connection falls back to.
func (i *Installer) sshDialer(node string, auth contract.Auth) func(context.Context) (nodeConn, error) {
	return func(ctx context.Context) (nodeConn, error) {
		c, err := i.client(ctx, node, auth)
		if err != nil {
			return nil, err
		}
		return i.sshConn(c), nil
	}
}
