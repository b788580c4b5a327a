// Package planner is the planner service: its endpoints answer every
// command on the config or on deployments, over the bus.
package planner

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/cloudconfig"
	"github.com/deployment-engine/engine/planner/manifestdeploy"
	"github.com/deployment-engine/engine/planner/problems"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/validate"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeclient"
	"github.com/deployment-engine/engine/services/subject"
)

// Options configure the planner.
type Options struct {
	NC       *nats.Conn
	Res      *bus.Resources
	Catalogs map[string]*catalog.Catalog
	// EngineID names this engine on the nodes it installs.
	EngineID string
	// Port is the engine's HTTP port as the nodes reach it at the config's
	// home: the mirror and the agent are served there.
	Port int
	// Agent, when set, installs the node agent on every node: where its
	// binary is served and the NATS URL/credentials it reports with.
	Agent  *AgentSpec
	Logger *slog.Logger
	// Releases is the store of uploaded BOSH releases (catalog "bosh").
	Releases *release.Store
	// ProbeTimeout bounds the pre-checks of one node (default 15s).
	ProbeTimeout time.Duration
	// SecretKey keys the digests of secrets in step hashes, so that a
	// changed secret re-runs what uses it without the hash telling
	// anything of it. Nil: a random key for this process.
	SecretKey []byte
	// StepTimeout bounds one step on a node (default 15m).
	StepTimeout time.Duration
	// SilentAfter is how long a running step may go without a sign of life
	// from its installer before it is dispatched again (default 1m).
	SilentAfter time.Duration
	// LeaseTTL is the deploy lock's lifetime, renewed by the scheduler
	// that drives the deployment every third of it (default 10s: another
	// planner takes a deployment over within about 11s of its driver dying).
	LeaseTTL time.Duration
	// PlannerID names this planner in the deploy lock and the schedules'
	// lease; a planner started again under the same name takes them back
	// at once (default: random).
	PlannerID string
	// ScheduleTick is how often the schedules are looked at (default 1s);
	// ScheduleClock the clock they are due by (default time.Now). Tests
	// set them.
	ScheduleTick  time.Duration
	ScheduleClock func() time.Time
	// Control, when set, is the node script that runs a monit action
	// ("restart") on a process and waits for its outcome; a rolling
	// restart runs it. Nil: a simpler wait for a new process.
	Control func(action, process string) string
	// Webhooks is what a config's webhook URLs are checked against
	// (serve --webhook-allow).
	Webhooks contract.WebhookPolicy
	// ListenHost is the host of the engine's HTTP address (--listen),
	// where nodes fetch from: "" listens on every address. A config whose
	// nodes cannot reach it is warned about.
	ListenHost string
	// Version is the engine's build version, which its agents should report.
	Version string
	// Cluster is the cluster this planner plans ("": the default); its
	// store is that cluster's. Holders, when set, reads which cluster
	// holds each node of the engine's (by IP): a config naming a node
	// another cluster holds is refused.
	Cluster string
	Holders func(ctx context.Context) (map[string]string, error)
	// SharedLinks, when set, reads another cluster's shared links for a
	// job's link consumed from another deployment; nil refuses such links
	// (the engine runs split, or on an external NATS).
	SharedLinks SharedLinks
	// BackupDir is where scheduled backups of this cluster's store are
	// written, on the machine of the planner that runs the schedule; ""
	// refuses them.
	BackupDir string
}

// AgentSpec tells the planner how to install the node agent.
type AgentSpec struct {
	// SHA256 is the agent binary's, Path where the engine serves it over
	// HTTP (at the nodes' URL of the engine) for the nodes to fetch.
	SHA256 string
	Path   string
	// Missing, when set, says why the engine has no agent binary to
	// serve: deployments install none, with this warning.
	Missing error
	// NATSPort is the engine's NATS port at home.
	NATSPort int
	// Listen makes the engine listen for agents at a config's home (at
	// once, or already; a new home moves the listener and its certificate
	// there, without a restart). An error leaves the nodes to be read
	// over SSH. Nil: the engine listens where it was told to.
	Listen func(home string) error
	// Password returns the NATS password of a node's agent user.
	Password func(ip string) string
	// CA is the PEM certificate of the engine's NATS listener, which the
	// agents pin; empty when NATS listens without TLS.
	CA string
	// CurrentCA, when set, is CA of the moment instead: a rotation of the
	// agents' CA changes it while the engine runs.
	CurrentCA func() string
}

// Planner is the running planner service.
type Planner struct {
	o     Options
	log   *slog.Logger
	sched *sched.Scheduler

	// mu serialises the deployment starts of this process; config writes
	// need no lock (compare-and-set on the config's revision).
	mu sync.Mutex

	// svc runs what the planner runs: its endpoints' handlers and the
	// auto-reverts they start; Stop ends and waits for them.
	svc *kit.Service

	door agentDoor // where the engine listens for node agents

	secretKey []byte
}

// Start registers the planner's endpoints, resumes a deployment that a
// stopped engine left running and starts the schedules' runner.
func Start(ctx context.Context, o Options) (*Planner, error) {
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = 15 * time.Second
	}
	if o.StepTimeout == 0 {
		o.StepTimeout = 15 * time.Minute
	}
	if o.PlannerID == "" {
		o.PlannerID = "planner-" + bus.RandomSecret()[:8]
	}
	svc := kit.NewService(o.Logger, "planner")
	p := &Planner{o: o, log: svc.Log(), svc: svc, secretKey: o.SecretKey}
	if len(p.secretKey) == 0 {
		p.secretKey = make([]byte, 32)
		_, _ = rand.Read(p.secretKey)
	}
	s, err := sched.New(ctx, sched.Options{NC: o.NC, Res: o.Res, Log: p.log, Hooks: ends{p},
		SilentAfter: o.SilentAfter, LeaseTTL: o.LeaseTTL, Holder: o.PlannerID})
	if err != nil {
		return nil, err
	}
	p.sched = s
	eps := map[string]kit.Handler{
		subject.ConfigPut():      p.configPut,
		subject.ConfigGet():      p.configGet,
		subject.DeployStart():    p.deployStart,
		subject.DeployGet():      p.deployGet,
		subject.DeployReport():   p.deployReport,
		subject.DeployReapply():  p.reapply,
		subject.DeployList():     p.deployList,
		subject.DeployScale():    p.scale,
		subject.DeployCancel():   p.deployCancel,
		subject.DeployPlan():     p.previewEndpoint,
		subject.DeployRollback(): p.rollback,
		subject.DeployRestart():  p.rollingRestart,
		subject.ConfigHistory():  p.configHistory,
		subject.DeployTakeover(): p.takeover,
		subject.DeployExec():     p.fleetExec,
		subject.DeployCopy():     p.fleetCopy,
		subject.DeployPatch():    p.patch,
		subject.ClusterDelete():  p.clusterDelete,
		subject.ClusterLeave():   p.clusterLeave,
	}
	maps.Copy(eps, p.checkEndpoints())
	maps.Copy(eps, p.errandEndpoints())
	maps.Copy(eps, p.diskEndpoints())
	maps.Copy(eps, p.maintenanceEndpoints())
	maps.Copy(eps, p.scheduleEndpoints())
	maps.Copy(eps, cloudconfig.Book{KV: o.Res.Engine, Log: p.log, Event: p.engineEvent}.Endpoints())
	maps.Copy(eps, manifestdeploy.Book{KV: o.Res.Engine, JS: o.Res.JS, Cluster: o.Cluster, Log: p.log, Event: p.engineEvent, Put: p.putConfig,
		Stored: func(ctx context.Context) (contract.Config, error) { c, _, err := p.loadConfig(ctx); return c, err },
		Start:  p.startStored}.Endpoints())
	maps.Copy(eps, problems.Book{NC: o.NC, Res: o.Res, Log: p.log, Version: o.Version}.Endpoints())
	if err := svc.Serve(o.NC, "configs, plans and deployments", eps); err != nil {
		return nil, err
	}
	if err := s.Resume(ctx); err != nil {
		return nil, err
	}
	p.listenAtStoredHome(ctx)
	p.startSchedules()
	p.svc.Go(func(ctx context.Context) {
		manifestdeploy.WatchCertificates(ctx, o.Res.JS, o.Res.Engine, p.log, time.Hour)
	})
	return p, nil
}

// stopWait bounds how long Stop waits for the handlers and auto-reverts
// in flight, once their ctx has ended.
const stopWait = 10 * time.Second

// Stop stops the service, cancels what it started (handlers in flight, an
// auto-revert) and waits for it up to stopWait, then stops the scheduler.
func (p *Planner) Stop() {
	p.svc.Stop(stopWait)
	p.sched.Stop()
}

// catalogsIn finds the rules of a config's catalog for a validation that
// ends with ctx: a release's are rendered within it.
func (p *Planner) catalogsIn(ctx context.Context) validate.Catalogs {
	return func(name string) (validate.Catalog, bool) {
		if name == BoshCatalog {
			return boshRules{ctx: ctx, p: p}, true
		}
		c, ok := p.o.Catalogs[name]
		if !ok {
			return nil, false
		}
		return catalogRules{c}, true
	}
}

// catalogRules adapts a catalog to what validation needs.
type catalogRules struct{ c *catalog.Catalog }

func (r catalogRules) Validate(cfg contract.Config) []contract.Problem {
	return r.c.Validate(cfg)
}

// loadConfig reads the stored config; ok is false when none was submitted.
func (p *Planner) loadConfig(ctx context.Context) (contract.Config, bool, error) {
	cfg, rev, err := p.loadConfigRev(ctx)
	return cfg, rev != 0, err
}

// loadConfigRev reads the stored config and the revision it was read at,
// on which a config computed from it is written (bus.StoreConfigAt); 0
// when none was submitted.
func (p *Planner) loadConfigRev(ctx context.Context) (contract.Config, uint64, error) {
	cfg, rev, err := bus.LoadConfigRev(ctx, p.o.Res.Config)
	if bus.IsNotFound(err) {
		return contract.Config{}, 0, nil
	}
	return cfg, rev, err
}

// errConfigChanged answers a config write computed from a config that
// another request (of this process or another planner's) replaced since.
var errConfigChanged = &kit.Error{Code: 409, Msg: "the config changed while this request was being checked: read it again and retry"}

// storeConfigAt stores cfg on revision rev of the stored config; another
// write since is errConfigChanged (409), never overwritten.
func (p *Planner) storeConfigAt(ctx context.Context, cfg contract.Config, rev uint64) (uint64, error) {
	if err := p.heldElsewhere(ctx, cfg); err != nil {
		return 0, err
	}
	n, err := bus.StoreConfigAt(ctx, p.o.Res.Config, cfg, rev)
	if bus.IsConflict(err) {
		return 0, errConfigChanged
	}
	return n, err
}

// heldElsewhere refuses a config that names a node another of the
// engine's clusters holds: a machine belongs to one cluster.
func (p *Planner) heldElsewhere(ctx context.Context, cfg contract.Config) error {
	if p.o.Holders == nil {
		return nil
	}
	holders, err := p.o.Holders(ctx)
	if err != nil {
		return fmt.Errorf("read which cluster holds each node: %w", err)
	}
	own := cmp.Or(p.o.Cluster, contract.DefaultCluster)
	var problems []contract.Problem
	for _, ip := range cfg.Nodes() {
		if by := holders[ip]; by != "" && by != own {
			problems = append(problems, contract.Problem{Path: "components", IP: ip,
				Reason: fmt.Sprintf("node %s belongs to cluster %s: a machine belongs to one cluster; take it out of %s's config first", ip, by, by)})
		}
	}
	if len(problems) > 0 {
		e := rejected(problems)
		e.Msg += ": " + problems[0].Reason
		return e
	}
	return nil
}

var errNoConfig = &kit.Error{Code: 403, Msg: "no config submitted yet: POST one to /deployment-engine/config first"}

// storedConfig is the stored config for a command that needs one:
// errNoConfig (403) when none has been submitted.
func (p *Planner) storedConfig(ctx context.Context) (contract.Config, error) {
	cfg, ok, err := p.loadConfig(ctx)
	if err == nil && !ok {
		err = errNoConfig
	}
	return cfg, err
}

func (p *Planner) configGet(ctx context.Context, req micro.Request) (int, any, error) {
	cfg, ok, err := p.loadConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, &kit.Error{Code: 404, Msg: "no config submitted yet: POST one to /deployment-engine/config"}
	}
	return 200, cfg.Redact(), nil
}

func (p *Planner) configPut(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ConfigPut
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	return p.putConfig(ctx, in)
}

// putConfig validates, checks and stores a config: POST /config's, and a
// manifest's.
func (p *Planner) putConfig(ctx context.Context, in contract.ConfigPut) (int, any, error) {
	cfg, problems := validate.Config(in.Config, p.catalogsIn(ctx), validate.Webhooks(p.o.Webhooks))
	if len(problems) > 0 {
		return 0, nil, rejected(problems)
	}
	// No lock: the config is written on the revision read here, and one
	// stored meanwhile by another request is a 409, not overwritten. Its
	// nodes are checked holding up nothing else.
	stored, rev, err := p.loadConfigRev(ctx)
	if err != nil {
		return 0, nil, err
	}
	had := rev != 0
	for name, s := range cfg.Properties.Secrets() {
		if *s == contract.Redacted && (!had || *stored.Properties.Secrets()[name] == "") {
			problems = append(problems, contract.Problem{Path: "properties." + name, Reason: "holds the redaction marker but no secret is stored to keep: send the real value"})
		}
	}
	if len(problems) > 0 {
		return 0, nil, rejected(problems)
	}
	given := cfg.GivenSecrets()
	cfg.KeepSecrets(stored)
	if cfg.Properties.Root == "" && cfg.Properties.Key == "" && len(cfg.Properties.NodeKeys) == 0 {
		return 0, nil, rejected([]contract.Problem{{Path: "properties.root", Reason: "missing: the nodes' root password, or a key property"}})
	}
	if problems := validate.KeyProblems(cfg); len(problems) > 0 {
		return 0, nil, rejected(problems)
	}
	hosts, problems, err := p.secretHosts(ctx, cfg, given)
	if err != nil {
		return 0, nil, err
	}
	if len(problems) > 0 {
		return 0, nil, rejected(problems)
	}
	if given["root"] {
		ctx = withGivenFor(ctx, cfg.Nodes())
	}
	reply := contract.ConfigPutReply{V: contract.Version}
	if in.Check {
		hw, warnings, problems, err := p.precheck(ctx, cfg)
		if err != nil {
			return 0, nil, err
		}
		if len(problems) > 0 {
			return 0, nil, rejected(problems)
		}
		reply.Checked, reply.Hardware, reply.Warnings = true, hw, warnings
	}
	if _, err := p.storeConfigAt(ctx, cfg, rev); err != nil {
		return 0, nil, err
	}
	if err := bus.StoreSecretHosts(ctx, p.o.Res.Engine, hosts); err != nil {
		return 0, nil, err
	}
	reply.Stored = true
	// Judged without asking a node: said even when the nodes are not checked.
	reply.Warnings = append(reply.Warnings, p.staticWarnings(cfg)...)
	// The agents' address follows home from now on.
	if err := p.listenForAgents(cfg); err != nil && in.Check {
		reply.Warnings = append(reply.Warnings, agentWarning(err))
	}
	p.log.Info("config stored", "nodes", len(cfg.Nodes()), "catalog", cfg.CatalogName(), "checked", in.Check)
	p.engineEvent(ctx, "config", fmt.Sprintf("config stored: catalog %s, %d components on %d nodes (nodes checked: %v)",
		cfg.CatalogName(), len(cfg.Components), len(cfg.Nodes()), in.Check))
	return 201, reply, nil
}

// configPrecheck runs every pre-check again on the stored config and
// reports, refusing nothing.
func (p *Planner) configPrecheck(ctx context.Context, req micro.Request) (int, any, error) {
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	hw, warnings, problems, err := p.precheck(ctx, cfg)
	if err != nil {
		return 0, nil, err
	}
	warnings = append(warnings, p.staticWarnings(cfg)...)
	if err := p.listenForAgents(cfg); err != nil {
		warnings = append(warnings, agentWarning(err))
	}
	out := contract.PrecheckReply{V: contract.Version, Checked: true, Hardware: hw, Problems: problems, Warnings: warnings}
	if out.Hardware == nil {
		out.Hardware = []contract.NodeHardware{}
	}
	if out.Problems == nil {
		out.Problems = []contract.Problem{}
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	return 200, out, nil
}

func rejected(ps []contract.Problem) *kit.Error {
	msg := fmt.Sprintf("config rejected: %d problem", len(ps))
	if len(ps) != 1 {
		msg += "s"
	}
	return &kit.Error{Code: 400, Msg: msg, Problems: ps}
}

// probe asks the installer to contact nodes.
func (p *Planner) probe(ctx context.Context, cfg contract.Config, nodes []string, resolve ...string) ([]contract.ProbeResult, error) {
	return p.probeWith(ctx, cfg, contract.Probe{Nodes: nodes, Resolve: resolve})
}

// probeWith sends q with cfg's credentials and the planner's deadline.
func (p *Planner) probeWith(ctx context.Context, cfg contract.Config, q contract.Probe) ([]contract.ProbeResult, error) {
	auth, err := p.probeAuth(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Each node's deadline runs from its turn; other clusters' probes may
	// hold turns first (probeQueueRounds of them allowed for).
	ctx, cancel := context.WithTimeout(ctx, time.Duration(contract.ProbeRounds(len(q.Nodes))+probeQueueRounds)*p.o.ProbeTimeout+5*time.Second)
	defer cancel()
	q.Auth, q.TimeoutMS = auth, int(p.o.ProbeTimeout/time.Millisecond)
	res, err := nodeclient.Probe(ctx, p.o.NC, q)
	var answered *nodeclient.AnswerError
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, &kit.Error{Code: 503, Msg: "no installer is running to contact the nodes"}
	case errors.As(err, &answered):
		return nil, &kit.Error{Code: answered.Code, Msg: "probe nodes: " + answered.Msg}
	case err != nil:
		return nil, fmt.Errorf("probe nodes: %w", err)
	}
	return res, nil
}

// probeQueueRounds are the rounds of other probes a probe may wait behind:
// the engine's clusters share the installers' turns (contract.ProbeParallel).
const probeQueueRounds = 4

// engineEvent records one of the engine's operations for the operations log.
func (p *Planner) engineEvent(ctx context.Context, kind, msg string) {
	if err := bus.PublishEngineEvent(ctx, p.o.Res.JS, kind, msg); err != nil {
		p.log.Warn("engine event", "err", err)
	}
}
