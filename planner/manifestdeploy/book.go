package manifestdeploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/cloudconfig"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Book answers a manifest deploy; the planner gives it what only it
// does: its stored config, a config stored as POST /config stores one,
// and a deployment of the stored config started.
type Book struct {
	KV jetstream.KeyValue
	// Cluster is the cluster the book deploys into ("": the default): a
	// named one takes only the manifest of its name.
	Cluster string
	// JS raises the warnings of the manifest's certificates near expiry.
	JS  jetstream.JetStream
	Log *slog.Logger
	// Stored is the stored config, empty when none is.
	Stored func(ctx context.Context) (contract.Config, error)
	// Put stores a config with every check of POST /config.
	Put func(ctx context.Context, in contract.ConfigPut) (int, any, error)
	// Start starts a deployment of the stored config.
	Start func(ctx context.Context) (string, error)
	// Event records an operation for the operations log.
	Event func(ctx context.Context, kind, msg string)

	// mu serialises this process's manifest deploys from reading the
	// record to writing it: two at once would keep the variables one
	// generated beside the config the other stored.
	mu *sync.Mutex
}

// Endpoints are the book's commands by subject.
func (b Book) Endpoints() map[string]kit.Handler {
	b.mu = &sync.Mutex{}
	return map[string]kit.Handler{subject.ManifestDeploy(): b.deploy, subject.ManifestVariables(): b.variables,
		subject.ManifestRegenerate(): b.regenerate}
}

// variables lists the variables the engine generated for the manifest.
func (b Book) variables(ctx context.Context, _ micro.Request) (int, any, error) {
	st, err := read(ctx, b.KV)
	if err != nil {
		return 0, nil, err
	}
	return 200, variableList(st), nil
}

// regenerate marks a generated variable, and the certificates it signs,
// to be generated anew at the next manifest deploy: 200. The values stay
// until then, so that the deployed config and the record agree.
func (b Book) regenerate(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ManifestRegenerate
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := read(ctx, b.KV)
	if err != nil {
		return 0, nil, err
	}
	if _, ok := st.Variables[in.Name]; !ok {
		known := variableList(st).Variables
		names := make([]string, len(known))
		for i, v := range known {
			names[i] = v.Name
		}
		msg := fmt.Sprintf("the engine generated no variable %q for the manifest", in.Name)
		if len(names) > 0 {
			msg += ": it generated " + strings.Join(names, ", ")
		}
		return 0, nil, &kit.Error{Code: 404, Msg: contract.Clip(msg + " (a value given with -v or -l is changed by giving another)")}
	}
	if !slices.Contains(st.Regenerate, in.Name) {
		st.Regenerate = append(st.Regenerate, in.Name)
	}
	if err := write(ctx, b.KV, st); err != nil {
		return 0, nil, err
	}
	with := signedBy(st, in.Name)
	b.Log.Info("manifest variable marked to be generated anew", "name", in.Name, "with", with)
	if b.Event != nil {
		b.Event(ctx, "manifest", fmt.Sprintf("variable %s of manifest %s marked to be generated anew at the next deploy, with %d certificates it signs", in.Name, st.Name, len(with)))
	}
	if with == nil {
		with = []string{}
	}
	return 200, contract.ManifestRegenerated{Manifest: st.Name, Name: in.Name, With: with, At: "the next manifest deploy"}, nil
}

// deploy builds the manifest on the cloud config's machines, stores its
// config as POST /config would, keeps its record (placement, generated
// variables sealed) and starts its deployment: 202.
func (b Book) deploy(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ManifestDeployCmd
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	res, err := b.store(ctx, in)
	if err != nil {
		return 0, nil, err
	}
	id, err := b.Start(ctx)
	if err != nil {
		return 0, nil, err
	}
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	return 202, contract.ManifestDeployed{ID: id, Name: res.Name, Placement: res.Placement, Warnings: res.Warnings}, nil
}

// store builds the manifest and stores its config and its record.
func (b Book) store(ctx context.Context, in contract.ManifestDeployCmd) (Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cc, err := cloudconfig.Load(ctx, b.KV)
	if errors.Is(err, cloudconfig.ErrNone) {
		return Result{}, &kit.Error{Code: 403, Msg: "a manifest needs machines: " + err.Error()}
	}
	if err != nil {
		return Result{}, err
	}
	stored, err := b.Stored(ctx)
	if err != nil {
		return Result{}, err
	}
	st, kept, err := Load(ctx, b.KV)
	if err != nil {
		return Result{}, err
	}
	res, err := Build(in.Deploy, cc, Prior{Vars: kept, Declared: st.Declared, Regenerate: st.Regenerate, Placement: st.Placement}, stored)
	if err != nil {
		return res, &kit.Error{Code: 400, Msg: "manifest rejected: " + err.Error()}
	}
	if err := b.checkName(res.Name); err != nil {
		return res, err
	}
	raw, err := json.Marshal(res.Config)
	if err != nil {
		return res, fmt.Errorf("encode the manifest's config: %w", err)
	}
	_, reply, err := b.Put(ctx, contract.ConfigPut{V: contract.Version, Config: raw, Check: in.Check})
	if err != nil {
		return res, err
	}
	// The config's warnings (a listen address the machines cannot reach,
	// say) are the manifest's too.
	if r, ok := reply.(contract.ConfigPutReply); ok {
		res.Warnings = append(res.Warnings, r.Warnings...)
	}
	// The config is stored: its record goes with it, or the variables in
	// it would be generated anew next time.
	if err := Store(ctx, b.KV, res, res.pending(st.Regenerate)); err != nil {
		return res, err
	}
	// GET /certificates lists the certificates generated for it; one that
	// is not listed is a warning lost, not a deploy to refuse.
	raised, err := publishCertificates(ctx, b.JS, b.KV, res.Kept, time.Now())
	if err != nil {
		b.Log.Warn("the manifest's certificates in the summary", "err", err)
	}
	for _, msg := range raised {
		b.Log.Warn(msg)
	}
	n := 0
	for _, ips := range res.Placement {
		n += len(ips)
	}
	b.Log.Info("manifest stored", "name", res.Name, "instances", n, "generated", len(res.Generated), "regenerated", res.Regenerated)
	if b.Event != nil {
		b.Event(ctx, "manifest", fmt.Sprintf("manifest %s stored: %d instances in %d groups, %d variables generated", res.Name, n, len(res.Placement), len(res.Generated)))
	}
	return res, nil
}

// checkName refuses, on a named cluster, a manifest of another name: a
// manifest's name names its cluster, as a BOSH deployment is its
// manifest's name. The default cluster takes any, as it did before
// clusters had names.
func (b Book) checkName(name string) error {
	if b.Cluster == "" || b.Cluster == contract.DefaultCluster || name == b.Cluster {
		return nil
	}
	return &kit.Error{Code: 400, Msg: fmt.Sprintf("manifest rejected: it is named %q and this is cluster %q: a manifest deploys into the cluster of its name "+
		"(deployment-engine manifest deploy FILE picks it without --cluster); to deploy it here, name it so (an ops file: "+
		"- {type: replace, path: /name, value: %s})", contract.Clip(name), b.Cluster, b.Cluster)}
}
