// Package engine wires the engine's services together: the bus, the
// planner, the installer, the monitor, the log store and the API.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/planner"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/kit"
)

// Options are serve's flags.
type Options struct {
	Listen     string // HTTP address, default :50000
	DataDir    string
	NATSURL    string // external NATS; "" runs the embedded server
	NATSListen string // where node agents reach the embedded NATS ("" = nowhere)
	// AgentBinary is the deployment-engine binary deploy installs on the
	// nodes as their agent (default: this process's own executable).
	AgentBinary string
	CatalogDir  string
	AuthNone    bool
	// SSHPort is the nodes' SSH port (default 22).
	SSHPort string
	// LogMaxBytes and LogKeep bound each log of the store: its size before
	// rotation and how many rotated files are kept (defaults 64 MiB, 3).
	LogMaxBytes int64
	LogKeep     int
	// Only runs just these services (planner, installer, monitor, logs, api).
	Only   []string
	Logger *slog.Logger
	// Limits bound the API's requests in flight and its timeouts (zero:
	// the API's defaults).
	Limits api.Limits
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

// Serve runs the engine until ctx ends, then stops it cleanly.
func Serve(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger
	if o.Listen == "" {
		o.Listen = ":50000"
	}
	if o.DataDir == "" {
		o.DataDir = "./data"
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", o.DataDir, err)
	}
	catalogs, err := loadCatalogs(o.CatalogDir)
	if err != nil {
		return err
	}

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	var nc *nats.Conn
	var srv *bus.Server
	// The node agent is installed only where nodes can reach the bus.
	var agent *planner.AgentSpec
	if o.NATSURL != "" {
		if nc, err = bus.Dial(o.NATSURL, "deployment-engine"); err != nil {
			return err
		}
	} else {
		so := bus.ServerOptions{DataDir: o.DataDir, Logger: log.With("service", "nats")}
		if o.NATSListen != "" {
			host, port, err := net.SplitHostPort(o.NATSListen)
			if err != nil {
				return fmt.Errorf("--nats-listen %q: %w", o.NATSListen, err)
			}
			so.Host = host
			if so.Port, err = strconv.Atoi(port); err != nil {
				return fmt.Errorf("--nats-listen %q: bad port", o.NATSListen)
			}
		}
		if srv, err = bus.StartServer(ctx, so); err != nil {
			return err
		}
		stops = append(stops, srv.Stop)
		observer, err := secretFile(filepath.Join(o.DataDir, "nats-observer"))
		if err != nil {
			return err
		}
		srv.SetObserverPassword(observer)
		agentSecret, err := secretFile(filepath.Join(o.DataDir, "agent-secret"))
		if err != nil {
			return err
		}
		srv.SetAgentSecret([]byte(agentSecret))
		if so.Port != 0 {
			self := o.AgentBinary
			if self == "" {
				if self, err = os.Executable(); err != nil {
					return fmt.Errorf("find the engine's binary for the node agent: %w", err)
				}
			}
			agent = &planner.AgentSpec{Binary: self, NATSPort: so.Port,
				Password: func(ip string) string { return bus.AgentPassword([]byte(agentSecret), ip) }}
		}
		if nc, err = srv.Connect("deployment-engine"); err != nil {
			return err
		}
	}
	stops = append(stops, func() { _ = nc.Drain() })
	res, err := bus.Declare(ctx, nc)
	if err != nil {
		return err
	}
	engineID, err := identity(ctx, res)
	if err != nil {
		return err
	}
	log.Info("engine starting", "id", engineID, "data", o.DataDir)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(kit.NewBusCollector(nc, res))

	_, httpPort, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", o.Listen, err)
	}
	port, _ := strconv.Atoi(httpPort)

	releases, err := release.NewStore(filepath.Join(o.DataDir, "releases"))
	if err != nil {
		return err
	}
	if o.runs("planner") {
		p, err := planner.Start(ctx, planner.Options{NC: nc, Res: res, Catalogs: catalogs, EngineID: engineID, Port: port, Logger: log, Agent: agent, Releases: releases})
		if err != nil {
			return err
		}
		stops = append(stops, p.Stop)
	}
	if err := startServices(ctx, o, catalogs, nc, res, reg, &stops); err != nil {
		return err
	}
	if !o.runs("api") {
		<-ctx.Done()
		return nil
	}

	token, err := apiToken(o)
	if err != nil {
		return err
	}
	mirror := filepath.Join(o.DataDir, "mirror")
	_ = os.MkdirAll(mirror, 0o755)
	ao := api.Options{NC: nc, Token: token, Tokens: &TokenFile{Path: filepath.Join(o.DataDir, TokensFile)}, AuthNone: o.AuthNone, Logger: log, Registry: reg, Gatherer: reg, MirrorDir: mirror, Console: consoleFS(),
		Releases: releaseAPI{store: releases, js: res.JS, log: log}, Limits: o.Limits}
	h, err := api.New(ao)
	if err != nil {
		return err
	}
	if o.AuthNone {
		log.Warn("API authentication is OFF (--auth none): anyone who reaches " + o.Listen + " controls the cluster")
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	hs := api.NewServer(h, ao, nil)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("engine serving", "listen", ln.Addr().String())
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("engine stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return nil
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

// identity is this engine's id, made at first start and kept in the bus.
func identity(ctx context.Context, res *bus.Resources) (string, error) {
	e, err := res.Engine.Get(ctx, "id")
	if err == nil {
		return string(e.Value()), nil
	}
	if !bus.IsNotFound(err) {
		return "", fmt.Errorf("read engine id: %w", err)
	}
	id := "e-" + bus.RandomSecret()[:12]
	if _, err := res.Engine.Create(ctx, "id", []byte(id)); err != nil {
		// Another process of this engine made it first.
		if e, gerr := res.Engine.Get(ctx, "id"); gerr == nil {
			return string(e.Value()), nil
		}
		return "", fmt.Errorf("store engine id: %w", err)
	}
	return id, nil
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
