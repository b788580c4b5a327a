package planner

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/services/contract"
)

// Links from another deployment, as BOSH resolves them: a job's consumed
// link with a deployment names another cluster of the engine, whose
// shared providers it is taken from. A cluster offers what its last
// successful deployment deployed (what runs on its nodes, as BOSH offers
// a deployment's current state), read at the consumer's every plan and
// deploy: a later deploy of the provider reaches the consumer at its own
// next deploy.

// SharedLinks reads another cluster's providers by its name (see
// bosh.Remote); the engine, which sees every cluster, gives it.
type SharedLinks func(ctx context.Context, deployment string) ([]bosh.RemoteProvider, error)

// noSharedLinks says why a planner without Options.SharedLinks refuses a
// link from another deployment.
const noSharedLinks = "links from another deployment are read from the engine's other clusters, which need the engine run whole on its embedded NATS (this one runs split with --only, or on an external NATS cluster with --nats)"

// ErrNothingDeployed is a cluster whose shared links are asked for before
// any of its deployments succeeded.
var ErrNothingDeployed = errors.New("nothing deployed yet")

// SharedProviders are the providers of this cluster's last successful
// deployment, each shared one with its instances and properties, as a
// consumer in another cluster takes them (bosh.Deployment.SharedProviders).
func (p *Planner) SharedProviders(ctx context.Context) ([]bosh.RemoteProvider, error) {
	cfg, id, ok, err := p.lastGood(ctx, "")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNothingDeployed
	}
	rel, err := p.releaseFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("the release of its deployment %s: %w", id, err)
	}
	if rel == nil {
		return nil, nil // a catalog's components provide no links
	}
	// Its own links from other deployments are not read: what it provides
	// does not depend on them, and two clusters may consume each other's.
	d, _, err := p.place(ctx, cfg, rel, "", "", false)
	if err != nil {
		return nil, fmt.Errorf("place its deployment %s: %w", id, err)
	}
	var secrets []string
	_, _ = cfg.MapSecrets(func(s string) (string, error) {
		secrets = append(secrets, s)
		return s, nil
	})
	return d.SharedProviders(secrets), nil
}

// placing is how this planner places a release: with links from other
// clusters read through Options.SharedLinks when remote is set.
func (p *Planner) placing(ctx context.Context, remote bool) bosh.Placing {
	o := bosh.Placing{Self: cmp.Or(p.o.Cluster, contract.DefaultCluster), NoRemote: noSharedLinks}
	if !remote {
		o.NoRemote = "links from another deployment are not read here"
		return o
	}
	if read := p.o.SharedLinks; read != nil {
		o.Remote = func(dep string) ([]bosh.RemoteProvider, error) { return read(ctx, dep) }
	}
	return o
}

// linkSecrets are the secret values of the links cfg's jobs take from
// other clusters, which what a plan shows must not hold.
func (p *Planner) linkSecrets(ctx context.Context, cfg contract.Config) []string {
	if !takesRemoteLinks(cfg) {
		return nil
	}
	rel, err := p.releaseFor(cfg)
	if err != nil || rel == nil {
		return nil
	}
	d, _, err := p.deploymentFor(ctx, cfg, rel, "", "")
	if err != nil {
		return nil
	}
	return d.RemoteSecrets()
}

// takesRemoteLinks tells whether a job of cfg consumes a link from
// another deployment.
func takesRemoteLinks(cfg contract.Config) bool {
	for _, jl := range cfg.Properties.Links {
		for _, c := range jl.Consumes {
			if c != nil && c.Deployment != "" {
				return true
			}
		}
	}
	return false
}
