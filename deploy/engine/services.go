package engine

import (
	"cmp"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/api/console"
	"github.com/deployment-engine/engine/installer"
	"github.com/deployment-engine/engine/logsvc"
	"github.com/deployment-engine/engine/monitor"
	"github.com/deployment-engine/engine/monitor/heal"
	"github.com/deployment-engine/engine/notify"
	"github.com/deployment-engine/engine/planner"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// startServices starts the installer, the monitor and the log store.
func startServices(ctx context.Context, o Options, catalogs map[string]*catalog.Catalog, nc *nats.Conn, res *bus.Resources, reg prometheus.Registerer, stops *[]func()) error {
	if o.runs("installer") {
		ins, err := installer.Start(ctx, installer.Options{NC: nc, Res: res, Logger: o.Logger, Port: o.SSHPort, AckWait: o.StepAckWait, AgentPassword: o.agentPass,
			Version: o.Build.Version, ProbeTurns: o.probeTurns, Cluster: o.cluster})
		if err != nil {
			return err
		}
		*stops = append(*stops, ins.Stop)
		reg.MustRegister(ins.Collectors()...)
	}
	if o.runs("monitor") {
		mon, err := monitor.Start(ctx, monitor.Options{NC: nc, Res: res, Logger: o.Logger, Process: processOf(catalogs), Cluster: o.cluster})
		if err != nil {
			return err
		}
		*stops = append(*stops, mon.Stop)
		reg.MustRegister(mon.Collectors()...)
		hl, err := heal.Start(ctx, heal.Options{NC: nc, Res: res, Logger: o.Logger})
		if err != nil {
			return err
		}
		*stops = append(*stops, hl.Stop)
		reg.MustRegister(hl.Collectors()...)
	}
	if o.runs("notify") {
		nt, err := notify.Start(ctx, notify.Options{Res: res, Logger: o.Logger, File: filepath.Join(o.DataDir, "notify.json"),
			Policy: contract.WebhookPolicy{Allow: o.WebhookAllow}})
		if err != nil {
			return err
		}
		*stops = append(*stops, nt.Stop)
		reg.MustRegister(nt.Collectors()...)
	}
	if o.runs("logs") {
		ls, err := logsvc.Start(ctx, logsvc.Options{NC: nc, Res: res, Dir: filepath.Join(o.DataDir, "logs"), Logger: o.Logger,
			MaxBytes: o.LogMaxBytes, Keep: o.LogKeep, LogPaths: logPathsOf(catalogs)})
		if err != nil {
			return err
		}
		*stops = append(*stops, ls.Stop)
		reg.MustRegister(ls.Collectors()...)
	}
	return nil
}

// processOf names a component's monit process from the catalogs.
func processOf(catalogs map[string]*catalog.Catalog) func(cat, comp string) (string, bool) {
	return func(cat, comp string) (string, bool) {
		c := catalogs[cat]
		if c == nil || c.Components[comp] == nil {
			return "", false
		}
		return c.Components[comp].Process, true
	}
}

// logPathsOf names a component's runtime log files from the catalogs.
func logPathsOf(catalogs map[string]*catalog.Catalog) func(cat, comp string) []string {
	return func(cat, comp string) []string {
		if c := catalogs[cat]; c != nil && c.Components[comp] != nil {
			return c.Components[comp].Logs
		}
		return nil
	}
}

func consoleFS() fs.FS { return console.FS() }

// startPlanner starts the planner, which installs b's node agent, if any.
func startPlanner(ctx context.Context, o Options, b *engineBus, catalogs map[string]*catalog.Catalog, key engineKey, releases *release.Store, port int, stops *[]func()) (*planner.Planner, error) {
	host, _ := os.Hostname()
	dir, _ := filepath.Abs(o.DataDir)
	p, err := planner.Start(ctx, planner.Options{NC: b.nc, Res: b.res, Catalogs: catalogs, EngineID: b.engineID, Port: port, Logger: o.Logger, Agent: b.agent, Releases: releases,
		// The same engine started again on the same machine and data
		// takes its deploy lock back at once.
		PlannerID:   b.engineID + "@" + host + ":" + dir,
		SilentAfter: max(time.Minute, 2*o.StepAckWait),
		SecretKey:   key.digestKey(),
		Webhooks:    contract.WebhookPolicy{Allow: o.WebhookAllow},
		ListenHost:  listenHost(o.Listen),
		Version:     o.Build.Version,
		Cluster:     o.cluster,
		Holders:     o.holders,
		SharedLinks: o.sharedLinks,
		BackupDir:   filepath.Join(dir, "backups", cmp.Or(o.cluster, contract.DefaultCluster)),
		// A rolling restart waits for monit's outcome as PUT /restart does.
		Control: func(action, process string) string {
			return monitControl(action, process)
		}})
	if err != nil {
		return nil, err
	}
	*stops = append(*stops, p.Stop)
	return p, nil
}

// listenHost is the host of an HTTP address (--listen), "" for every
// address.
func listenHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return host
}
