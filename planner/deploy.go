package planner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/report"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// newID names a new deployment; a variable so that a test can pin it.
var newID = func() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "d-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

func (p *Planner) deployStart(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.DeployStart
	if len(req.Data()) > 0 && string(req.Data()) != "null" {
		if err := kit.Decode(req, &in); err != nil {
			return 0, nil, err
		}
	}
	cfg, err := p.lockedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	if in.Plan != "" {
		if err := p.noneRunning(); err != nil {
			return 0, nil, err
		}
		now, err := p.preview(ctx, cfg, cfg)
		if err != nil {
			return 0, nil, err
		}
		if now.ID != in.Plan {
			err := errStalePlan(in.Plan, now.ID)
			p.noteRefusal(ctx, err)
			return 0, nil, err
		}
	}
	id, err := p.start(ctx, cfg, in.Update())
	if err != nil {
		return 0, nil, err
	}
	return 202, contract.DeployStarted{ID: id}, nil
}

// lockedConfig reads the stored config under the lock, held only to read
// it: one slow node must hold up no config write or other command (see
// start).
func (p *Planner) lockedConfig(ctx context.Context) (contract.Config, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.storedConfig(ctx)
}

// startStored starts a deployment of the stored config.
func (p *Planner) startStored(ctx context.Context) (string, error) {
	cfg, err := p.lockedConfig(ctx)
	if err != nil {
		return "", err
	}
	return p.start(ctx, cfg, contract.UpdateSettings{})
}

// start checks the nodes of cfg and plans its deployment without the
// planner's lock, then, under it, begins the deployment if cfg is still
// the one to deploy. A refusal is noted in the operations log.
func (p *Planner) start(ctx context.Context, cfg contract.Config, q contract.UpdateSettings) (_ string, err error) {
	defer func() { p.noteRefusal(ctx, err) }()
	rec, err := p.prepareWith(ctx, cfg, q)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stillCurrent(ctx, cfg); err != nil {
		return "", err
	}
	return p.beginLocked(ctx, rec, &cfg)
}

// stillCurrent says whether a deployment prepared from cfg may begin: cfg
// is still the stored config and no deployment began meanwhile. Callers
// hold p.mu.
func (p *Planner) stillCurrent(ctx context.Context, cfg contract.Config) error {
	_, err := p.currentRev(ctx, cfg)
	return err
}

// currentRev is stillCurrent with the revision the config was read at, on
// which a command that writes the config writes it.
func (p *Planner) currentRev(ctx context.Context, cfg contract.Config) (uint64, error) {
	now, rev, err := p.loadConfigRev(ctx)
	if err == nil && rev == 0 {
		err = errNoConfig
	}
	if err != nil {
		return 0, err
	}
	if !reflect.DeepEqual(now, cfg) {
		return 0, &kit.Error{Code: 409, Msg: "the config changed while its nodes were being checked: try again"}
	}
	return rev, p.noneRunning()
}

// noneRunning is a 409 naming the deployment that runs, if one does, and
// a 503 while the last one's placement waits for the store.
func (p *Planner) noneRunning() error {
	if id, ok := p.sched.Running(); ok {
		return &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s is still running; wait for it to finish", id)}
	}
	if id, ok := p.sched.Ending(); ok {
		return &kit.Error{Code: 503, Msg: fmt.Sprintf("deployment %s has ended, but the engine's store has not yet taken what it placed (the store is coming back); try again in a few seconds", id)}
	}
	return nil
}

// beginLocked starts a prepared deployment, keeping cfg, the config it
// applies (nil: none), in the config history. A run of a schedule (ctx
// says which) names it in the deployment.
func (p *Planner) beginLocked(ctx context.Context, rec *sched.Record, cfg *contract.Config) (string, error) {
	rec.Schedule = scheduleOf(ctx)
	if err := p.sched.Begin(ctx, rec); err != nil {
		return "", err
	}
	p.recordConfig(ctx, rec, cfg)
	p.log.Info("deployment started", "id", rec.ID, "steps", len(rec.Steps), "nodes", len(rec.Placement))
	return rec.ID, nil
}

// prepareWith checks that no deployment runs, the catalog and every node
// (reachable, not another engine's), and plans a deployment of cfg with
// update settings that override the config's and the catalog's
// (deploy?canaries=&max_in_flight=). It changes nothing and needs no
// lock: its callers take the planner's only to begin (see start).
func (p *Planner) prepareWith(ctx context.Context, cfg contract.Config, q contract.UpdateSettings) (*sched.Record, error) {
	return p.prepare(ctx, cfg, q, nil)
}

// prepare is prepareWith, with more steps than cfg's: those extra plans
// from the builder, the planned steps and every node checked.
func (p *Planner) prepare(ctx context.Context, cfg contract.Config, q contract.UpdateSettings,
	extra func(b steps.Builder, planned []*steps.Step, nodes []string) []*steps.Step) (*sched.Record, error) {
	if err := p.noneRunning(); err != nil {
		return nil, err
	}
	cat, rel, err := p.sourceOf(cfg)
	if err != nil {
		return nil, err
	}
	if rel != nil {
		// A release was verified against its sha1s when uploaded.
	} else if err := cat.Verify(); err != nil {
		return nil, &kit.Error{Code: 500, Msg: fmt.Sprintf("catalog %s failed its integrity check (%v): reinstall the engine or restore the catalog directory", cat.Name, err)}
	}
	previous, partial, err := p.leftovers(ctx)
	if err != nil {
		return nil, err
	}
	nodes := nodesWith(cfg, previous, partial)
	results, err := p.probe(ctx, cfg, nodes)
	if err != nil {
		return nil, err
	}
	var unreachable, owned []string
	noMonit := map[string]bool{}
	for _, r := range results {
		noMonit[r.IP] = r.Reachable && r.Monit == ""
		switch {
		case !r.Reachable:
			unreachable = append(unreachable, r.IP+": "+r.Error)
		case nodefs.OwnedElsewhere(r.Owner, p.o.EngineID):
			owned = append(owned, fmt.Sprintf("%s is owned by engine %s", r.IP, r.Owner))
		}
	}
	if len(owned) > 0 {
		return nil, &kit.Error{Code: 409, Msg: "another engine manages these nodes (two control machines on one network?): " + strings.Join(owned, "; ") +
			`; if that engine no longer runs, take its nodes over: POST /deployment-engine/takeover {"from": "<its id>"} (deployment-engine takeover <its id>)`}
	}
	if len(unreachable) > 0 {
		return nil, &kit.Error{Code: 502, Msg: "cannot reach every node: " + strings.Join(unreachable, "; ")}
	}
	id := newID()
	// The agents reach the engine at this config's home.
	if err := p.listenForAgents(cfg); err != nil {
		p.engineEvent(ctx, "deploy", "deploying without node agents (the nodes are read over SSH): "+err.Error())
	}
	b := p.builderFor(cfg, cat, id, previous, noMonit)
	b.Partial = partial
	planned, err := p.stepsFor(ctx, b, rel)
	if err != nil {
		return nil, &kit.Error{Code: 500, Msg: "could not plan the deployment: " + err.Error()}
	}
	// Which running instances change is on their nodes' markers: only
	// nodes the last deployment placed something on run any.
	rollout := b.RolloutSteps
	if rel != nil {
		rollout = b.ReleaseRolloutSteps
	}
	var batches []contract.Batch
	if planned, batches, err = rollout(planned, p.markersOf(ctx, contract.SortedKeys(previous)), q); err != nil {
		return nil, &kit.Error{Code: 500, Msg: "could not plan the rollout: " + err.Error()}
	}
	if extra != nil {
		planned = append(planned, extra(b, planned, nodes)...)
	}
	rec := sched.NewRecord(id, steps.Placement(cfg), planned)
	rec.Batches = batches
	if rel == nil {
		rec.Revert = revertFor(cat, cfg, q, batches)
	}
	return rec, nil
}

// leftovers reads what earlier deployments placed on the nodes and what
// they left there half installed (sched.LoadPartial).
func (p *Planner) leftovers(ctx context.Context) (previous, partial map[string][]string, err error) {
	if previous, err = sched.LoadPlacement(ctx, p.o.Res); err != nil {
		return nil, nil, err
	}
	if partial, err = sched.LoadPartial(ctx, p.o.Res); err != nil {
		return nil, nil, err
	}
	return previous, partial, nil
}

// nodesWith is cfg's nodes and those the leftovers name.
func nodesWith(cfg contract.Config, left ...map[string][]string) []string {
	nodes := cfg.Nodes()
	for _, m := range left {
		for _, ip := range contract.SortedKeys(m) {
			if !slices.Contains(nodes, ip) {
				nodes = append(nodes, ip)
			}
		}
	}
	return nodes
}

// builderFor builds the steps of deployment id of cfg.
func (p *Planner) builderFor(cfg contract.Config, cat *catalog.Catalog, id string, previous map[string][]string, noMonit map[string]bool) steps.Builder {
	return steps.Builder{Config: cfg, Catalog: cat, Engine: p.o.EngineID, ID: id, Previous: previous, Timeout: p.o.StepTimeout,
		Digest: p.digest, NoMonit: noMonit, MirrorURL: p.nodeURL(cfg) + "/mirror/", Agent: p.agentPlanFor(cfg)}
}

// stepsFor renders the steps of a deployment: from a release when rel is
// set, from the catalog otherwise.
func (p *Planner) stepsFor(ctx context.Context, b steps.Builder, rel *release.Release) ([]*steps.Step, error) {
	if rel != nil {
		return p.releaseSteps(ctx, b, rel)
	}
	return b.CatalogSteps()
}

// deployGet answers de.cmd.deploy.get: the deployment with every step,
// or its summary and the page of steps the request's Page asks for.
func (p *Planner) deployGet(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.DeployGet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if in.Page != nil {
		if err := in.Page.Check(); err != nil {
			return 0, nil, &kit.Error{Code: 400, Msg: err.Error()}
		}
	}
	d, err := p.deployment(ctx, in)
	if err != nil {
		return 0, nil, err
	}
	if in.Page != nil {
		return 200, contract.PageOf(*d, *in.Page), nil
	}
	return 200, d, nil
}

// deployReport answers de.cmd.deploy.report: the timings of a deployment.
func (p *Planner) deployReport(ctx context.Context, req micro.Request) (int, any, error) {
	d, err := p.requested(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	return 200, report.Build(*d, time.Now().UTC()), nil
}

// requested is the deployment a contract.DeployGet request names; 404 when none.
func (p *Planner) requested(ctx context.Context, req micro.Request) (*contract.Deployment, error) {
	var in contract.DeployGet
	if err := kit.Decode(req, &in); err != nil {
		return nil, err
	}
	return p.deployment(ctx, in)
}

// deployment is the deployment in names; 404 when none.
func (p *Planner) deployment(ctx context.Context, in contract.DeployGet) (*contract.Deployment, error) {
	if !strings.HasPrefix(in.ID, "d-") {
		return nil, &kit.Error{Code: 404, Msg: fmt.Sprintf("no deployment %q", in.ID)}
	}
	d, err := p.sched.Snapshot(ctx, in.ID)
	if bus.IsNotFound(err) {
		return nil, &kit.Error{Code: 404, Msg: fmt.Sprintf("no deployment %q", in.ID)}
	}
	return d, err
}

func (p *Planner) deployList(ctx context.Context, req micro.Request) (int, any, error) {
	ids, err := sched.DeploymentIDs(ctx, p.o.Res)
	if err != nil {
		return 0, nil, fmt.Errorf("list deployments: %w", err)
	}
	out := []contract.DeploymentSummary{}
	for _, k := range ids {
		d, err := p.sched.Snapshot(ctx, k)
		if err != nil {
			continue
		}
		out = append(out, d.DeploymentSummary)
	}
	return 200, out, nil
}

func (p *Planner) deployCancel(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.DeployCancel
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if !strings.HasPrefix(in.ID, "d-") {
		return 0, nil, &kit.Error{Code: 404, Msg: fmt.Sprintf("no deployment %q", in.ID)}
	}
	reason := "cancelled by request"
	if in.Reason != "" {
		reason = "cancelled: " + in.Reason
	}
	d, err := p.sched.Cancel(ctx, in.ID, reason)
	if err != nil {
		return 0, nil, err
	}
	p.engineEvent(ctx, "cancel", fmt.Sprintf("deployment %s cancelled", in.ID))
	return 202, d, nil
}

// noteRefusal writes a refused deployment's reason to the operations log:
// the nodes' trouble (502) and conflicts (409) are the operator's to mend.
func (p *Planner) noteRefusal(ctx context.Context, err error) {
	var ke *kit.Error
	if errors.As(err, &ke) && (ke.Code == 409 || ke.Code == 502) {
		p.engineEvent(ctx, "deploy", fmt.Sprintf("deployment refused (%d): %s", ke.Code, ke.Msg))
	}
}
