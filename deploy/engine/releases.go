package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// releaseAPI lets the API stream uploads into the planner's release store.
type releaseAPI struct {
	store *release.Store
	js    jetstream.JetStream
	log   *slog.Logger
}

// PackageFile is the local file of a package, from the bus through the
// store's cache; one the store does not hold is fs.ErrNotExist.
func (a releaseAPI) PackageFile(ctx context.Context, rel, version, pkg string) (string, error) {
	p, err := a.store.PackageFile(ctx, rel, version, pkg)
	var nf *release.NotFound
	if errors.As(err, &nf) {
		return "", fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log.Error("serve a release's package", "release", rel+"/"+version, "package", pkg, "err", err)
	}
	return p, err
}

func (a releaseAPI) Upload(ctx context.Context, r io.Reader) (int, any) {
	rel, created, err := a.store.Import(ctx, r)
	var bad *release.BadRelease
	var tooLarge *release.TooLarge
	var noSpace *release.NoSpace
	var conflict *release.Conflict
	switch {
	case errors.As(err, &bad):
		return 400, contract.ErrorBody{Error: err.Error()}
	case errors.As(err, &tooLarge):
		a.log.Warn("release refused", "err", err)
		return 413, contract.ErrorBody{Error: err.Error()}
	case errors.As(err, &noSpace):
		a.log.Warn("release refused", "err", err, "dir", a.store.Dir())
		return 507, contract.ErrorBody{Error: err.Error()}
	case errors.As(err, &conflict):
		return 409, contract.ErrorBody{Error: err.Error()}
	case bus.NotYet(err):
		a.log.Warn("release not stored: the bus is unavailable", "err", err)
		return 503, contract.ErrorBody{Error: "could not store the release: the bus (NATS JetStream) is unavailable now; upload it again in a moment, and check the engine's log if it stays so"}
	case err != nil:
		a.log.Error("store release", "err", err)
		return 500, contract.ErrorBody{Error: "could not store the release; see the engine's log"}
	}
	if !created {
		return 200, rel.Summary()
	}
	a.log.Info("release stored", "name", rel.Name, "version", rel.Version)
	if a.js != nil {
		_ = bus.PublishEngineEvent(ctx, a.js, "release", fmt.Sprintf("release %s/%s stored: %d jobs, %d packages",
			rel.Name, rel.Version, len(rel.Jobs), len(rel.Packages)))
	}
	return 201, rel.Summary()
}

func (a releaseAPI) List(ctx context.Context) (int, any) {
	list, err := a.store.List(ctx)
	if err != nil {
		a.log.Error("list releases", "err", err)
		return 500, contract.ErrorBody{Error: "could not list the releases; see the engine's log"}
	}
	return 200, list
}

// compiledAPI lets nodes put and fetch compiled packages in the release
// store; a node shows its upload token (bus.UploadToken), which this
// engine derives from its agent password.
type compiledAPI struct {
	store     *release.Store
	agentPass func(ip string) string
	log       *slog.Logger
}

func (a compiledAPI) CompiledFile(ctx context.Context, fp, osKey string) (string, error) {
	p, err := a.store.CompiledFile(ctx, fp, osKey)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log.Error("serve a compiled package", "package", fp+"/"+osKey, "err", err)
	}
	return p, err
}

func (a compiledAPI) KeepCompiled(ctx context.Context, fp, osKey string, r io.Reader) (int, any) {
	created, err := a.store.KeepCompiled(ctx, fp, osKey, r)
	var bad *release.BadCompiled
	var tooLarge *release.TooLarge
	var noSpace *release.NoSpace
	switch {
	case errors.As(err, &bad):
		a.log.Warn("compiled package refused", "err", err)
		return 400, contract.ErrorBody{Error: err.Error()}
	case errors.As(err, &tooLarge):
		a.log.Warn("compiled package refused", "err", err)
		return 413, contract.ErrorBody{Error: err.Error()}
	case errors.As(err, &noSpace):
		a.log.Warn("compiled package refused", "err", err, "dir", a.store.Dir())
		return 507, contract.ErrorBody{Error: err.Error()}
	case err != nil:
		a.log.Error("keep a compiled package", "package", fp+"/"+osKey, "err", err)
		return 503, contract.ErrorBody{Error: "could not keep the compiled package; the node compiles it again next time"}
	case !created:
		return 200, contract.CompiledKept{Kept: fp + "/" + osKey, State: "kept already"}
	}
	a.log.Info("compiled package kept", "package", fp+"/"+osKey)
	return 201, contract.CompiledKept{Kept: fp + "/" + osKey, State: "kept"}
}

func (a compiledAPI) UploadToken(ip string) string {
	if a.agentPass == nil {
		return ""
	}
	return bus.UploadToken(a.agentPass(ip))
}
