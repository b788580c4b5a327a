package errand

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// Host is what the planner lends the errand endpoints: its stored config,
// the release a config deploys (nil for a catalog's) and how the config
// places it, the start of a deployment, and its operations log.
type Host struct {
	Config  func(ctx context.Context) (contract.Config, error)
	Release func(cfg contract.Config) (*release.Release, error)
	Place   func(ctx context.Context, cfg contract.Config, rel *release.Release, engine, mirrorURL string) (*bosh.Deployment, []contract.Problem, error)
	Begin   func(ctx context.Context, cfg contract.Config, rec *sched.Record) error
	Event   func(ctx context.Context, kind, msg string)
	NewID   func() string
	Engine  string
}

// RunEndpoint answers de.cmd.deploy.errand: 202 and a deployment of kind
// errand (Run), unless another deployment runs or the config changed.
func (h Host) RunEndpoint(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ErrandRun
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if ps := in.Problems(); len(ps) > 0 {
		return 0, nil, refused(ps)
	}
	cfg, d, err := h.placed(ctx)
	if err != nil {
		return 0, nil, err
	}
	rec, started, err := Run(ctx, d, in, h.NewID(), h.Engine)
	if err != nil {
		return 0, nil, err
	}
	if err := h.Begin(ctx, cfg, rec); err != nil {
		return 0, nil, err
	}
	h.Event(ctx, contract.KindErrand, fmt.Sprintf("%s runs errand %s on %s (when changed: %v): deployment %s",
		cmp.Or(in.Actor, "someone"), started.Name, strings.Join(started.Nodes, ", "), in.WhenChanged, started.ID))
	return 202, started, nil
}

// ListEndpoint answers de.cmd.deploy.errands: the config's errands.
func (h Host) ListEndpoint(ctx context.Context, _ micro.Request) (int, any, error) {
	_, d, err := h.placed(ctx)
	if err != nil {
		return 0, nil, err
	}
	return 200, contract.ErrandList{Errands: List(d)}, nil
}

// placed is the stored config and its release as it places it; a config
// that deploys no release has no errand (409).
func (h Host) placed(ctx context.Context) (contract.Config, *bosh.Deployment, error) {
	cfg, err := h.Config(ctx)
	if err != nil {
		return cfg, nil, err
	}
	rel, err := h.Release(cfg)
	switch {
	case err != nil:
		return cfg, nil, &kit.Error{Code: 409, Msg: contract.Clip("the config's release: " + err.Error())}
	case rel == nil:
		return cfg, nil, &kit.Error{Code: 409, Msg: contract.Clip("the config deploys catalog " + cfg.CatalogName() + ", no BOSH release: it has no errand")}
	}
	d, ps, err := h.Place(ctx, cfg, rel, "", "")
	if err == nil && len(ps) > 0 {
		err = fmt.Errorf("%s", ps[0].Reason)
	}
	if err != nil {
		// What a release says may quote a property: a secret.
		var also []string
		if d != nil {
			also = d.RemoteSecrets()
		}
		return cfg, nil, &kit.Error{Code: 409, Msg: contract.Clip("the config's release does not place: " + cfg.OutputRedactor(also...).Redact(err.Error()))}
	}
	return cfg, d, nil
}
