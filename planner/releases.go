package planner

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// CloudFoundryCatalog maps its components to cf-release's jobs.
const CloudFoundryCatalog = "cloudfoundry"

// cfVersion is the cf-release version a cloudfoundry config names.
func cfVersion(cfg contract.Config) string {
	if cfg.Properties.Release != "" {
		return cfg.Properties.Release
	}
	return "v194"
}

// deploymentFor places a release by a config: a bosh config names jobs; a
// cloudfoundry config names the catalog's components, each mapped to the
// version's job, and every job reads its properties from the manifest the
// catalog renders.
func (p *Planner) deploymentFor(ctx context.Context, cfg contract.Config, rel *release.Release, engine, mirrorURL string) (*bosh.Deployment, []contract.Problem, error) {
	return p.place(ctx, cfg, rel, engine, mirrorURL, true)
}

// place is deploymentFor, reading links from other deployments only when
// remote is set.
func (p *Planner) place(ctx context.Context, cfg contract.Config, rel *release.Release, engine, mirrorURL string, remote bool) (*bosh.Deployment, []contract.Problem, error) {
	o := p.placing(ctx, remote)
	if cfg.CatalogName() != CloudFoundryCatalog {
		d, ps := bosh.NewDeploymentWith(rel, cfg, o)
		return d, ps, nil
	}
	cat := p.o.Catalogs[CloudFoundryCatalog]
	if cat == nil {
		return nil, nil, errors.New("the cloudfoundry catalog is not loaded")
	}
	v := cfVersion(cfg)
	o.JobOf = func(comp string) string { return cat.Job(v, comp) }
	d, ps := bosh.NewDeploymentWith(rel, cfg, o)
	global, err := cat.ManifestProperties(catalog.Input{Config: cfg.Redact(), Engine: engine, MirrorURL: mirrorURL})
	if err != nil {
		return nil, nil, err
	}
	if global != nil {
		d.Global = global
	}
	return d, ps, nil
}

// BoshCatalog is the catalog name of configs that deploy an uploaded BOSH
// release: its components are the release's jobs.
const BoshCatalog = "bosh"

// boshMin is the hardware minimum of a BOSH job: releases say nothing of it.
var boshMin = catalog.Hardware{CPU: 1, RAMMB: 256, DiskMB: 1024}

// releaseFor returns the release a config deploys, or nil when it deploys
// a catalog's components.
func (p *Planner) releaseFor(cfg contract.Config) (*release.Release, error) {
	if cfg.CatalogName() == CloudFoundryCatalog && p.o.Releases != nil {
		// cf-release runs on the release path once its tarball of the
		// config's version was uploaded; without it the catalog only renders.
		rel, err := p.o.Releases.Get("cf", strings.TrimPrefix(cfVersion(cfg), "v"))
		var nf *release.NotFound
		if errors.As(err, &nf) {
			return nil, nil
		}
		return rel, err
	}
	if cfg.CatalogName() != BoshCatalog {
		return nil, nil
	}
	if p.o.Releases == nil {
		return nil, errors.New("this engine keeps no releases")
	}
	if cfg.Properties.Release == "" {
		return nil, errors.New(`missing: name the uploaded release as "NAME" or "NAME/VERSION"`)
	}
	rels := make([]*release.Release, 0, 1+len(cfg.Properties.Releases))
	for _, ref := range append([]string{cfg.Properties.Release}, cfg.Properties.Releases...) {
		name, version := bosh.ParseReleaseRef(ref)
		rel, err := p.o.Releases.Get(name, version)
		var nf *release.NotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%v: upload it first (POST /deployment-engine/releases or `deployment-engine release upload FILE`)", err)
		}
		if err != nil {
			return nil, err
		}
		rels = append(rels, rel)
	}
	// Several releases' jobs go side by side, as one release.
	return release.Merge(rels...)
}

// boshRules validates a config against the release it names: jobs,
// properties, zones and links, then renders every template once so that a
// missing property is named before anything is deployed.
type boshRules struct {
	ctx context.Context // the request's: a render ends with it
	p   *Planner
}

func (r boshRules) Validate(cfg contract.Config) []contract.Problem {
	rel, err := r.p.releaseFor(cfg)
	if err != nil {
		return []contract.Problem{{Path: "properties.release", Reason: err.Error()}}
	}
	if len(cfg.Components) == 0 {
		return []contract.Problem{{Path: "components", Reason: "place at least one job of the release"}}
	}
	d, ps, err := r.p.deploymentFor(r.ctx, cfg, rel, "", "")
	if err != nil {
		return []contract.Problem{{Path: "properties.release", Reason: err.Error()}}
	}
	if len(ps) > 0 {
		return ps
	}
	// What a template says when it fails may quote a property: a secret,
	// or one of a link from another cluster.
	red := cfg.OutputRedactor(d.RemoteSecrets()...)
	_, ps, err = bosh.RenderAll(r.ctx, d)
	if err != nil {
		return []contract.Problem{{Path: "properties.release", Reason: "cannot render the release's templates: " + red.Redact(err.Error())}}
	}
	for i := range ps {
		ps[i].Reason = red.Redact(ps[i].Reason)
	}
	return ps
}

// releaseSteps plans a release deployment from the release's rendered
// plan (bosh.MakePlan).
func (p *Planner) releaseSteps(ctx context.Context, in steps.Builder, rel *release.Release) ([]*steps.Step, error) {
	d, ps, err := p.deploymentFor(ctx, in.Config, rel, in.Engine, in.MirrorURL)
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		return nil, fmt.Errorf("%s", ps[0].Reason)
	}
	node := p.nodeURL(in.Config)
	home := node + "/releases/"
	plan, err := bosh.MakePlan(ctx, bosh.PlanInput{Deployment: d, NodeComponent: steps.NodeComponent, CompileTimeout: in.Timeout,
		PackageURL: func(pk release.Package) string {
			from := rel.PackageFrom(pk.Name)
			return home + release.PackageURLPath(from.Name, from.Version, pk.Name)
		},
		CompiledURL: func(fp string) string { return node + "/compiled/" + fp },
		Base:        map[string]string{}})
	if err != nil {
		// A template's failure may quote a property: a secret.
		return nil, errors.New(in.Config.OutputRedactor(d.RemoteSecrets()...).Redact(err.Error()))
	}
	jobOf := func(comp string) string { return comp }
	if cat := p.o.Catalogs[CloudFoundryCatalog]; cat != nil && in.Config.CatalogName() == CloudFoundryCatalog {
		jobOf = func(comp string) string { return cat.Job(cfVersion(in.Config), comp) }
	}
	return in.ReleaseSteps(steps.Release{Plan: plan, CompOf: d.CompOf, JobOf: jobOf})
}

// sourceOf is what cfg deploys from: its release when it names one, and
// its catalog (nil when a release stands in for a catalog not loaded here).
func (p *Planner) sourceOf(cfg contract.Config) (*catalog.Catalog, *release.Release, error) {
	rel, err := p.releaseFor(cfg)
	if err != nil {
		return nil, nil, releaseError(err)
	}
	cat, ok := p.o.Catalogs[cfg.CatalogName()]
	if !ok && rel == nil {
		return nil, nil, &kit.Error{Code: 500, Msg: fmt.Sprintf("catalog %q is not loaded in this engine", cfg.CatalogName())}
	}
	return cat, rel, nil
}

// releaseError is a config's release problem at deploy time: the release
// was removed or never uploaded since the config was stored.
func releaseError(err error) error {
	return &kit.Error{Code: 409, Msg: "cannot deploy the config's release: " + err.Error()}
}
