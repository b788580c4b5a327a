package planner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/preview"
	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/planner/validate"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// The plan of a deployment is what a deploy would run, worked out without
// running it: the same steps are rendered, and each node's step markers
// (the hash of what the engine last applied there) say which of them
// would run. What the engine last wrote comes from the rendered steps it
// keeps per deployment; the node's files are read to find drift. Nothing
// is written: no bucket, stream or node file.

// previewEndpoint answers de.cmd.deploy.plan.
func (p *Planner) previewEndpoint(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.PlanRequest
	if len(req.Data()) > 0 {
		if err := kit.Decode(req, &in); err != nil {
			return 0, nil, err
		}
	}
	plan, err := p.previewOf(ctx, in.Config)
	if err != nil {
		return 0, nil, err
	}
	return 200, plan, nil
}

// previewOf plans a deployment of the posted config body, or of the stored
// config when body is empty. A secret posted as the redaction marker keeps
// the stored one, as in a config stored again.
func (p *Planner) previewOf(ctx context.Context, body []byte) (*contract.Plan, error) {
	stored, had, err := p.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	cfg, source := stored, "stored"
	if len(strings.TrimSpace(string(body))) > 0 {
		posted, problems := validate.Config(body, p.catalogsIn(ctx), validate.Webhooks(p.o.Webhooks))
		if len(problems) > 0 {
			return nil, rejected(problems)
		}
		for name, s := range posted.Properties.Secrets() {
			if *s == contract.Redacted && (!had || *stored.Properties.Secrets()[name] == "") {
				problems = append(problems, contract.Problem{Path: "properties." + name, Reason: "holds the redaction marker but no secret is stored to keep: send the real value"})
			}
		}
		if len(problems) > 0 {
			return nil, rejected(problems)
		}
		posted.KeepSecrets(stored)
		cfg, source = posted, "posted"
	} else if !had {
		return nil, errNoConfig
	}
	plan, err := p.preview(ctx, cfg, stored)
	if err != nil {
		return nil, err
	}
	plan.Config = source
	return plan, nil
}

// preview works out what a deployment of cfg would do now. What it shows
// passes the redaction of every secret it may hold: cfg's, stored's (the
// config stored, which the nodes may hold), the nodes' agent passwords and
// the secrets of the configs whose files it compares with.
func (p *Planner) preview(ctx context.Context, cfg, stored contract.Config) (*contract.Plan, error) {
	// The links cfg's jobs take from other clusters may hold their
	// secrets, which the rendered files show.
	red := cfg.OutputRedactor(append(p.agentPasswords(cfg), p.linkSecrets(ctx, cfg)...)...).Also(stored)
	cat, rel, err := p.sourceOf(cfg)
	if err != nil {
		return nil, err
	}
	previous, partial, err := p.leftovers(ctx)
	if err != nil {
		return nil, err
	}
	nodes := nodesWith(cfg, previous, partial)
	sort.Strings(nodes)

	// First the markers (and monit, which decides the mirror step), then
	// the files of the steps the markers point at.
	reads := preview.ReadNodes(ctx, p.o.NC, nodes, func(string) string { return preview.MarkersScript }, p.o.ProbeTimeout)
	noMonit := map[string]bool{}
	for ip, r := range reads {
		noMonit[ip] = r.Err == "" && !r.Monit
	}
	b := p.builderFor(cfg, cat, "plan", previous, noMonit)
	b.Partial = partial
	planned, err := p.stepsFor(ctx, b, rel)
	if err != nil {
		return nil, &kit.Error{Code: 500, Msg: "could not plan the deployment: " + red.Redact(err.Error())}
	}
	if rel == nil {
		markers := map[string]map[string]string{}
		for ip, r := range reads {
			if r.Err == "" {
				markers[ip] = r.Markers
			}
		}
		if planned, _, err = b.RolloutSteps(planned, markers, contract.UpdateSettings{}); err != nil {
			return nil, &kit.Error{Code: 500, Msg: "could not plan the rollout: " + red.Redact(err.Error())}
		}
	}
	wanted := map[string]bool{} // step id@hash whose files the engine last wrote
	for _, s := range planned {
		if h := reads[s.Spec.Node].Markers[nodefs.MarkerName(s.Spec.Key)]; h != "" {
			wanted[s.Spec.ID+"@"+h] = true
		}
	}
	written, olds, err := p.writtenSteps(ctx, wanted)
	if err != nil {
		return nil, err
	}
	for _, old := range olds {
		red = red.Also(old)
	}
	paths, holds := map[string][]string{}, map[string]map[string]string{}
	for _, s := range planned {
		if key := nodefs.MarkerName(s.Spec.Key); s.Spec.Holds != "" && reads[s.Spec.Node].Markers[key] == s.Spec.Hash {
			if holds[s.Spec.Node] == nil {
				holds[s.Spec.Node] = map[string]string{}
			}
			holds[s.Spec.Node][key] = s.Spec.Holds
		}
		add := func(fs []contract.StepFile) {
			for _, f := range fs {
				if f.LocalPath == "" && !slices.Contains(paths[s.Spec.Node], f.Path) {
					paths[s.Spec.Node] = append(paths[s.Spec.Node], f.Path)
				}
			}
		}
		add(s.Spec.Files)
		if old, ok := written[s.Spec.ID+"@"+reads[s.Spec.Node].Markers[nodefs.MarkerName(s.Spec.Key)]]; ok {
			add(old.Files)
		}
	}
	files := preview.ReadNodes(ctx, p.o.NC, nodes, func(ip string) string { return preview.FilesScript(paths[ip], holds[ip]) }, p.o.ProbeTimeout)
	for ip, r := range reads {
		if f := files[ip]; f.Err != "" && r.Err == "" {
			r.Err = f.Err
		} else {
			r.Files, r.Raw, r.Lapsed = f.Files, r.Raw+f.Raw, f.Lapsed
		}
		reads[ip] = r
	}

	m, _, err := bus.LoadMaintenance(ctx, p.o.Res.Engine)
	if err != nil {
		return nil, err
	}
	held := map[string]string{}
	for ip, n := range m.Nodes {
		held[ip] = n.Describe()
	}
	return preview.Build(nodes, reads, planned, written, held, p.configDigest(cfg), red), nil
}

// agentPasswords are the NATS passwords of cfg's nodes' agents.
func (p *Planner) agentPasswords(cfg contract.Config) []string {
	a := p.o.Agent
	if a == nil || a.Password == nil {
		return nil
	}
	var out []string
	for _, ip := range cfg.Nodes() {
		out = append(out, a.Password(ip))
	}
	return out
}

// configDigest stands for cfg in a plan id: its redacted form and a keyed
// digest of each secret, so that a changed secret changes the id.
func (p *Planner) configDigest(cfg contract.Config) string {
	b, _ := json.Marshal(cfg.Redact())
	parts := []string{string(b)}
	secrets := cfg.Properties.Secrets()
	for _, name := range contract.SortedKeys(secrets) {
		parts = append(parts, name, p.digest(name, *secrets[name]))
	}
	return steps.Hash(parts...)
}

// writtenSteps finds the rendered steps the nodes' markers point at
// (sched.WrittenSteps), with the configs of the deployments they come
// from, whose secrets their files may hold.
func (p *Planner) writtenSteps(ctx context.Context, wanted map[string]bool) (map[string]contract.Step, []contract.Config, error) {
	out, ids, err := sched.WrittenSteps(ctx, p.o.Res, wanted)
	if err != nil {
		return nil, nil, err
	}
	var cfgs []contract.Config
	for _, id := range ids {
		if cfg, err := p.appliedConfig(ctx, id); err == nil {
			cfgs = append(cfgs, cfg)
		}
	}
	return out, cfgs, nil
}

// errStalePlan is a deployment refused because what it would do is no
// longer what the plan said.
func errStalePlan(id, now string) error {
	return &kit.Error{Code: 409, Msg: fmt.Sprintf("plan %s is stale: the config, catalog or nodes changed since (the plan is now %s); plan again and review it", id, now)}
}

// markersOf reads the step markers of nodes; a node not read is missing.
func (p *Planner) markersOf(ctx context.Context, nodes []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for ip, r := range preview.ReadNodes(ctx, p.o.NC, nodes, func(string) string { return preview.MarkersScript }, p.o.ProbeTimeout) {
		if r.Err == "" {
			out[ip] = r.Markers
		}
	}
	return out
}
