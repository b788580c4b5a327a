package manifestdeploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

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
	KV  jetstream.KeyValue
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
	return map[string]kit.Handler{subject.ManifestDeploy(): b.deploy}
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
	res, err := Build(in.Deploy, cc, kept, st.Placement, stored)
	if err != nil {
		return res, &kit.Error{Code: 400, Msg: "manifest rejected: " + err.Error()}
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
	if err := Store(ctx, b.KV, res.Name, res.Placement, res.Kept); err != nil {
		return res, err
	}
	n := 0
	for _, ips := range res.Placement {
		n += len(ips)
	}
	b.Log.Info("manifest stored", "name", res.Name, "instances", n, "generated", len(res.Generated))
	if b.Event != nil {
		b.Event(ctx, "manifest", fmt.Sprintf("manifest %s stored: %d instances in %d groups, %d variables generated", res.Name, n, len(res.Placement), len(res.Generated)))
	}
	return res, nil
}
