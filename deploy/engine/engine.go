// Package engine is the engine's composition root, which runs the services
// of one process over one bus.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/planner"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// Options are serve's flags.
type Options struct {
	Listen  string // HTTP address, default :50000
	DataDir string
	NATSURL string // external NATS; "" runs the embedded server
	// NATSListen pins where node agents reach the embedded NATS (HOST:PORT);
	// "" or ":PORT" follows the config's home (default port 4222).
	NATSListen string
	// NoAgents installs no node agent: nodes are read over SSH.
	NoAgents bool
	// AgentBinary is the node agent's binary (de-agent), which the engine
	// serves to the nodes (default: de-agent beside this process's own
	// executable). Without it, deployments install no agent.
	AgentBinary string
	CatalogDir  string
	AuthNone    bool
	// SSHPort is the nodes' SSH port (default 22).
	SSHPort string
	// LogMaxBytes and LogKeep bound each log of the store: its size before
	// rotation and how many rotated files are kept (defaults 64 MiB, 3).
	LogMaxBytes int64
	LogKeep     int
	// Only runs just these services (planner, installer, monitor with
	// auto-heal, notify, logs, api).
	Only   []string
	Logger *slog.Logger
	// TLS is "auto" for a self-signed pair made once in the data dir;
	// TLSCert and TLSKey name a pair instead. Either serves the API over
	// https only (the mirror stays on plain HTTP too, for the nodes).
	TLS     string
	TLSCert string
	TLSKey  string
	// Limits bound the API's requests in flight and its timeouts (zero:
	// the API's defaults).
	Limits api.Limits
	// ReleaseLimits bound a release upload (zero fields: the store's
	// defaults).
	ReleaseLimits release.Limits
	// EngineID, when set, is this engine's id (what nodes record as their
	// owner); by default it is read from <data>/engine-id or the store,
	// or made at first start.
	EngineID string
	// StepAckWait is how long the step queue waits for a sign of life from
	// the installer holding a step before it hands the step to another
	// (default 30s). Tests shorten it to exercise redelivery.
	StepAckWait time.Duration
	// StartTimeout bounds how long the engine waits at start for an
	// external NATS cluster that is still forming or without quorum
	// (zero: bus.DefaultStartTimeout).
	StartTimeout time.Duration
	// Replicas is how many NATS servers keep each stream and bucket (0:
	// 3 on a cluster of 3 or more, else 1); existing ones are raised.
	Replicas int
	// WebhookAllow are networks webhooks may reach although they are
	// loopback, link-local or the engine's own (serve --webhook-allow).
	WebhookAllow []netip.Prefix
	// agentPass is the agents' NATS passwords, when this engine holds the
	// agent secret.
	agentPass func(ip string) string
	// agent is the agent binary the engine serves, agentErr why it has
	// none (agents on only).
	agent    *agentBinary
	agentErr error
	// cluster is the named cluster a clusterSet starts services for (""
	// the default); holders reads which cluster holds each node.
	cluster string
	holders func(ctx context.Context) (map[string]string, error)
	// sharedLinks reads another cluster's shared links (nil: the engine
	// runs split or on an external NATS, and holds no other cluster).
	sharedLinks planner.SharedLinks
	// probeTurns are the turns every cluster's installer's probes share.
	probeTurns chan struct{}
	// Build is this binary's version, for GET /version.
	Build api.BuildInfo
	// Ready, when set, receives the HTTP address once the engine serves.
	Ready func(addr string)
}

func (o Options) runs(name string) bool {
	if len(o.Only) == 0 {
		return true
	}
	for _, n := range o.Only {
		if n == name {
			return true
		}
	}
	return false
}

// Serve runs the engine until ctx ends, then stops it cleanly: it readies
// the data dir, starts the bus, then the services, then serves the API.
func Serve(ctx context.Context, o Options) error {
	o = o.withDefaults()
	log := o.Logger
	if err := CheckOnly(o.Only); err != nil {
		return err
	}
	unlock, err := openDataDir(o)
	if err != nil {
		return err
	}
	defer unlock()
	catalogs, err := loadCatalogs(o.CatalogDir)
	if err != nil {
		return err
	}
	if err := checkCatalogSeals(catalogs, o.CatalogDir, o.DataDir, log); err != nil {
		return err
	}

	// stops are the bus and what stands on it, stopped last, in reverse;
	// services are the planner and the services, stopped first, together.
	var stops, services []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	stopServices := sync.OnceFunc(func() { stopTogether(services) })
	defer stopServices()

	// Node agents reach the embedded NATS only.
	if !o.NoAgents && o.NATSURL == "" {
		if o.agent, o.agentErr = openAgentBinary(o.AgentBinary); o.agentErr != nil {
			log.Warn("node agents: " + o.agentErr.Error() + "; deployments install none, and the nodes are read over SSH")
		} else {
			f := o.agent.f
			stops = append(stops, func() { _ = f.Close() })
			log.Info("node agent binary", "path", o.agent.path, "sha256", o.agent.SHA256, "bytes", o.agent.Size)
		}
	}

	key, err := loadEngineKey(o.DataDir)
	if err != nil {
		return err
	}
	// The config's secrets rest sealed in the config bucket.
	bus.SetSealKey(key.derive("config-seal"))
	apiTLS, err := loadTLS(o)
	if err != nil {
		return err
	}
	b, err := startBus(ctx, o, key, &stops)
	if err != nil {
		return err
	}
	o.agentPass = b.agentPass
	log.Info("engine starting", "id", b.engineID, "data", o.DataDir, "version", o.Build.Version, "commit", o.Build.Commit)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), kit.NewBusCollector(b.nc, b.res),
		kit.NewCertificateCollector(b.res.Engine))
	startCertWatch(ctx, newCertWatch(o, b, apiTLS), &stops)
	if err := startCertRotation(o, b, apiTLS, &stops); err != nil {
		return err
	}
	_, httpPort, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", o.Listen, err)
	}
	port, _ := strconv.Atoi(httpPort)

	// Releases live in the bus, so that every API process of a split
	// engine serves them; the data dir keeps a cache.
	releases, err := release.NewSharedStore(ctx, filepath.Join(o.DataDir, "releases"), o.ReleaseLimits, b.res.Releases, b.res.Engine, log)
	if err != nil {
		return err
	}
	// Named clusters need the whole engine in this process, on its
	// embedded bus (each cluster has an account of its own there).
	o.probeTurns = make(chan struct{}, contract.ProbeParallel)
	var clusters *clusterSet
	if b.srv != nil && len(o.Only) == 0 {
		clusters = newClusterSet(o, b, catalogs, key, releases, port, reg)
		o.holders, o.sharedLinks = clusters.holders, clusters.sharedLinks
	}
	// What belongs to a cluster is labelled with it, the default's too.
	defaultReg := prometheus.WrapRegistererWith(prometheus.Labels{"cluster": contract.DefaultCluster}, reg)
	if o.runs("planner") {
		p, err := startPlanner(ctx, o, b, catalogs, key, releases, port, &services)
		if err != nil {
			return err
		}
		if clusters != nil {
			clusters.setDefault(p)
		}
	}
	if err := startServices(ctx, o, catalogs, b.nc, b.res, defaultReg, &services); err != nil {
		return err
	}
	if clusters != nil {
		if err := clusters.start(ctx); err != nil {
			return err
		}
		services = append(services, clusters.stop)
	}
	if !o.runs("api") {
		<-ctx.Done()
		return nil
	}
	return serveAPI(ctx, o, b, reg, releases, apiTLS.Config(), stopServices, clusters)
}

// stopTogether runs every service's Stop at once: each is bounded on its
// own, and the engine's stop takes the longest of them, not their sum.
func stopTogether(stops []func()) {
	var wg sync.WaitGroup
	for _, stop := range stops {
		wg.Go(stop)
	}
	wg.Wait()
}

// withDefaults fills the options serve leaves unset.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Listen == "" {
		o.Listen = ":50000"
	}
	if o.DataDir == "" {
		o.DataDir = "./data"
	}
	return o
}

func loadCatalogs(dir string) (map[string]*catalog.Catalog, error) {
	out := map[string]*catalog.Catalog{}
	names := catalog.Names()
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("--catalog %s: %w", dir, err)
		}
		names = nil
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), "catalog.json")); err == nil {
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("--catalog %s holds no catalog (want DIR/<name>/catalog.json)", dir)
		}
	}
	for _, name := range names {
		c, err := catalog.Load(name, dir)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", name, err)
		}
		out[name] = c
	}
	return out, nil
}

// idFile keeps the engine's id in the data dir as well as in the store, so
// that an engine whose store was lost still knows the nodes it owns.
const idFile = "engine-id"

// identity is this engine's id: --engine-id, else the id file, else the
// store's, else a new one; the file and the store are made to agree. A file
// and a store that name different engines stop the start: one of them
// belongs to another engine.
func identity(ctx context.Context, res *bus.Resources, dataDir, flagID string) (string, error) {
	path := filepath.Join(dataDir, idFile)
	fileID := ""
	if b, err := os.ReadFile(path); err == nil {
		fileID = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read engine id: %w", err)
	}
	storeID := ""
	e, err := res.Engine.Get(ctx, "id")
	switch {
	case err == nil:
		storeID = string(e.Value())
	case !bus.IsNotFound(err):
		return "", fmt.Errorf("read engine id: %w", err)
	}
	id := flagID
	switch {
	case id != "":
	case fileID != "" && storeID != "" && fileID != storeID:
		return "", fmt.Errorf("%s names engine %s but the store names %s: start with --engine-id to say which this engine is", path, fileID, storeID)
	case fileID != "":
		id = fileID
	case storeID != "":
		id = storeID
	default:
		id = "e-" + bus.RandomSecret()[:12]
	}
	if !validID(id) {
		return "", fmt.Errorf("engine id %q: use letters, digits, '-' and '_' only", id)
	}
	if storeID != id {
		if _, err := res.Engine.Put(ctx, "id", []byte(id)); err != nil {
			return "", fmt.Errorf("store engine id: %w", err)
		}
	}
	if fileID != id {
		if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
	}
	return id, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// secretFile reads a secret kept in a 0600 file, making it at first use.
func secretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	s := bus.RandomSecret()
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

// apiToken is DE_API_TOKEN, or <data>/api-token, made at first start.
func apiToken(o Options) (string, error) {
	if t := strings.TrimSpace(os.Getenv("DE_API_TOKEN")); t != "" {
		return t, nil
	}
	return secretFile(filepath.Join(o.DataDir, "api-token"))
}
