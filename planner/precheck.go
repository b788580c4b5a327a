package planner

import (
	"context"
	"net"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/precheck"
	"github.com/deployment-engine/engine/planner/schema"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// configSchema answers de.cmd.config.schema: the config's JSON Schema.
func (p *Planner) configSchema(ctx context.Context, req micro.Request) (int, any, error) {
	return 200, schema.Config(p.o.Catalogs, BoshCatalog), nil
}

// checkEndpoints are the planner's endpoints that check a config.
func (p *Planner) checkEndpoints() map[string]kit.Handler {
	return map[string]kit.Handler{
		subject.ConfigPrecheck(): p.configPrecheck,
		subject.ConfigSchema():   p.configSchema,
	}
}

// precheck contacts every node at once through the installer and judges
// the answers (package precheck says how).
func (p *Planner) precheck(ctx context.Context, cfg contract.Config) ([]contract.NodeHardware, []string, []contract.Problem, error) {
	cat := p.o.Catalogs[cfg.CatalogName()]
	isBosh := cfg.CatalogName() == BoshCatalog
	t := precheck.Target{Config: cfg, Catalog: cat, Health: p.nodeURL(cfg) + "/healthz",
		Fetches: isBosh || steps.InstallsPackages(cfg, cat)}
	if isBosh {
		t.Min = &boshMin
	}
	c := precheck.New(t)
	results, err := p.probeWith(ctx, cfg, c.Probe())
	if err != nil {
		return nil, nil, nil, err
	}
	hw, warnings, problems := c.Judge(results)
	return hw, warnings, problems, nil
}

// staticWarnings are what the engine warns about cfg without asking a
// node: its own address, and BOSH variables a config's job properties
// hold, which it does not interpolate.
func (p *Planner) staticWarnings(cfg contract.Config) []string {
	var out []string
	if w := precheck.ListenWarning(p.o.ListenHost, p.o.Port, cfg); w != "" {
		out = append(out, w)
	}
	if cfg.CatalogName() == BoshCatalog {
		red := cfg.Redact().Properties
		refs := append(bosh.Variables(cfg.Properties.Jobs, red.Jobs, "properties.jobs."), bosh.Variables(cfg.Properties.NodeJobs, red.NodeJobs, "properties.node_jobs.")...)
		refs = append(refs, bosh.Variables(cfg.Properties.Global, red.Global, "properties.global.")...)
		if w := bosh.VariablesWarning(refs); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// nodeURL is the engine's HTTP address as the nodes use it: the config's
// home and the engine's port.
func (p *Planner) nodeURL(cfg contract.Config) string {
	return "http://" + net.JoinHostPort(cfg.Properties.Home, strconv.Itoa(p.o.Port))
}
