package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/planner"
	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// clusterSet runs the engine's named clusters beside the default one. A
// named cluster is the whole engine again on an account of its own of the
// embedded bus (bus.ConnectCluster): its planner, installer, monitor with
// auto-heal, notifications and logs, each as the default cluster has them,
// its files in <data>/clusters/<name>, and an API of its own that the
// engine's serves below /deployment-engine/clusters/<name>/. What is the
// engine's stays shared: the agents' listener, the releases, the tokens.
type clusterSet struct {
	// ctx is the engine's run: what a cluster starts lives as long, not
	// as long as the request that made the cluster.
	ctx      context.Context
	o        Options
	b        *engineBus
	catalogs map[string]*catalog.Catalog
	key      engineKey
	releases *release.Store
	port     int
	reg      *prometheus.Registry

	mu      sync.Mutex
	stacks  map[string]*clusterStack
	apiOpts *api.Options // the API's, once it serves: each cluster's API is made from them
	// nodes are the nodes of each cluster's stored config, the default's
	// among them: a machine belongs to one cluster.
	nodes   map[string][]string
	catalog map[string]string
	// def is the default cluster's planner: other clusters read its
	// shared links.
	def *planner.Planner
}

// clusterStack is one named cluster, running.
type clusterStack struct {
	planner *planner.Planner
	nc      *nats.Conn
	res     *bus.Resources
	metrics *prometheus.Registry
	api     http.Handler
	stop    func()
}

func newClusterSet(o Options, b *engineBus, catalogs map[string]*catalog.Catalog, key engineKey, releases *release.Store, port int, reg *prometheus.Registry) *clusterSet {
	c := &clusterSet{o: o, b: b, catalogs: catalogs, key: key, releases: releases, port: port, reg: reg,
		stacks: map[string]*clusterStack{}, nodes: map[string][]string{}, catalog: map[string]string{}}
	// A node's agent joins the bus account of the cluster holding it.
	b.srv.SetAgentClusters(func(ip string) string {
		if by := c.heldBy(ip); by != contract.DefaultCluster {
			return by
		}
		return ""
	})
	return c
}

// holders reads every cluster's stored config and answers which cluster
// holds each node, by IP; heldBy's answers follow.
func (c *clusterSet) holders(ctx context.Context) (map[string]string, error) {
	c.mu.Lock()
	res := map[string]*bus.Resources{contract.DefaultCluster: c.b.res}
	for name, s := range c.stacks {
		res[name] = s.res
	}
	c.mu.Unlock()
	out := map[string]string{}
	for name, r := range res {
		if err := c.read(ctx, name, r); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, nodes := range c.nodes {
		for _, ip := range nodes {
			out[ip] = name
		}
	}
	return out, nil
}

// read keeps the nodes and catalog of a cluster's stored config.
func (c *clusterSet) read(ctx context.Context, name string, res *bus.Resources) error {
	cfg, _, err := bus.LoadConfigRev(ctx, res.Config)
	if err != nil && !bus.IsNotFound(err) {
		return fmt.Errorf("read cluster %s's config: %w", name, err)
	}
	c.mu.Lock()
	before := c.nodes[name]
	c.nodes[name], c.catalog[name] = cfg.Nodes(), ""
	if len(cfg.Components) > 0 {
		c.catalog[name] = cfg.CatalogName()
	}
	c.mu.Unlock()
	if name == contract.DefaultCluster {
		return nil
	}
	// A node that joined or left a named cluster has its agent, if one is
	// connected, log in again: into the account of the cluster that holds
	// the node now.
	for _, ip := range symmetricDiff(before, cfg.Nodes()) {
		if n, err := c.b.srv.DisconnectAgent(ip); err == nil && n > 0 {
			c.o.Logger.Info("node changed cluster: its agent logs in again", "node", ip, "cluster", name)
		}
	}
	return nil
}

// symmetricDiff is what one of a and b holds and the other does not.
func symmetricDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// heldBy is the cluster whose stored config names ip, "" for none, as
// last read: a node's agent is let in by it, without a read of the store.
func (c *clusterSet) heldBy(ip string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, nodes := range c.nodes {
		if slices.Contains(nodes, ip) {
			return name
		}
	}
	return ""
}

// start starts every named cluster recorded in the store, each resuming
// what it was doing, and follows the default cluster's config.
func (c *clusterSet) start(ctx context.Context) error {
	c.ctx = ctx
	c.follow(ctx, contract.DefaultCluster, c.b.res)
	named, err := bus.NamedClusters(ctx, c.b.res.Engine)
	if err != nil {
		return err
	}
	for _, cl := range named {
		if err := c.startStack(ctx, cl.Name); err != nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		if cl.Deleting != "" {
			c.finishDelete(cl)
		}
	}
	return nil
}

// follow keeps the nodes of a cluster's stored config, as it changes,
// until ctx ends.
func (c *clusterSet) follow(ctx context.Context, name string, res *bus.Resources) {
	update := func() {
		if err := c.read(ctx, name, res); err != nil {
			c.o.Logger.Warn("follow a cluster's config", "cluster", name, "err", err)
		}
	}
	update()
	w, err := res.Config.Watch(ctx, bus.KeyConfig, jetstream.UpdatesOnly())
	if err != nil {
		c.o.Logger.Warn("follow a cluster's config", "cluster", name, "err", err)
		return
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					update()
				}
			}
		}
	}()
}

// startStack starts the services of named cluster name.
func (c *clusterSet) startStack(ctx context.Context, name string) error {
	nc, err := c.b.srv.ConnectCluster(name, "deployment-engine")
	if err != nil {
		return err
	}
	res, err := bus.Declare(ctx, nc, bus.WithReplicas(c.o.Replicas), bus.WithLogger(c.o.Logger))
	if err != nil {
		nc.Close()
		return err
	}
	o := c.o
	o.Logger = c.o.Logger.With("cluster", name)
	o.DataDir = filepath.Join(c.o.DataDir, "clusters", name)
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		nc.Close()
		return err
	}
	o.cluster, o.holders, o.sharedLinks = name, c.holders, c.sharedLinks
	cb := &engineBus{nc: nc, res: res, engineID: c.b.engineID, agent: c.b.agent, agentPass: c.b.agentPass}
	var stops []func()
	// The cluster's series are gathered with the engine's (Gather) for as
	// long as it runs: a cluster made again under a deleted one's name
	// registers them anew.
	metrics := prometheus.NewRegistry()
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"cluster": name}, metrics)
	p, err := startPlanner(ctx, o, cb, c.catalogs, c.key, c.releases, c.port, &stops)
	if err == nil {
		err = startServices(ctx, o, c.catalogs, nc, res, reg, &stops)
	}
	if err != nil {
		stopTogether(stops)
		nc.Close()
		return err
	}
	followCtx, endFollow := context.WithCancel(ctx)
	c.follow(followCtx, name, res)
	c.mu.Lock()
	c.stacks[name] = &clusterStack{planner: p, nc: nc, res: res, metrics: metrics, stop: func() {
		endFollow()
		stopTogether(stops)
		_ = nc.Drain()
	}}
	c.mu.Unlock()
	o.Logger.Info("cluster started")
	return nil
}

// setDefault keeps the default cluster's planner.
func (c *clusterSet) setDefault(p *planner.Planner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.def = p
}

// planners are the running clusters' planners by name, the default's
// among them.
func (c *clusterSet) planners() map[string]*planner.Planner {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*planner.Planner{}
	if c.def != nil {
		out[contract.DefaultCluster] = c.def
	}
	for name, s := range c.stacks {
		if s.planner != nil {
			out[name] = s.planner
		}
	}
	return out
}

// sharedLinks is planner.SharedLinks for every cluster's planner: the
// providers of cluster dep, as of its last successful deployment. A
// cluster is found by its name ("default" for the default one, which is
// found by its deployment's name too: it takes a manifest of any name). When
// there is none, the answer names the clusters that share links — a
// shared link is offered to every cluster of the engine, so naming them
// tells a cluster's token nothing it could not use already — and not
// the others.
func (c *clusterSet) sharedLinks(ctx context.Context, dep string) ([]bosh.RemoteProvider, error) {
	ps := c.planners()
	if p := ps[dep]; p != nil {
		out, err := p.SharedProviders(ctx)
		switch {
		case errors.Is(err, planner.ErrNothingDeployed):
			// Said as of a cluster there is not: a token of another
			// cluster learns nothing of one that shares nothing.
		case err != nil:
			return nil, fmt.Errorf("cluster %s's shared links cannot be read: %w", dep, err)
		default:
			return out, nil
		}
	}
	var sharing []string
	for _, name := range contract.SortedKeys(ps) {
		out, err := ps[name].SharedProviders(ctx)
		if err != nil {
			continue
		}
		// The default cluster takes a manifest of any name: its
		// deployment is found by that name too.
		if name == contract.DefaultCluster && len(out) > 0 && out[0].Deployment == dep {
			return out, nil
		}
		if slices.ContainsFunc(out, func(r bosh.RemoteProvider) bool { return r.Shared }) {
			sharing = append(sharing, name)
		}
	}
	have := "none"
	if len(sharing) > 0 {
		have = strings.Join(sharing, ", ")
	}
	return nil, fmt.Errorf("this engine has no cluster %s with a successful deployment (a deployment from another manifest is the cluster of its name, which shares what its last successful deployment deployed; clusters sharing links: %s)", dep, have)
}

// stop stops every named cluster's services, together.
func (c *clusterSet) stop() {
	c.mu.Lock()
	var stops []func()
	for _, s := range c.stacks {
		stops = append(stops, s.stop)
	}
	c.mu.Unlock()
	stopTogether(stops)
}

// serveAPI sets the options each named cluster's API is made from (the
// engine's API's, acting on the cluster).
func (c *clusterSet) serveAPI(o api.Options) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apiOpts = &o
}

// List is api.Clusters': the default cluster, then the named ones by
// name, each with its config's catalog and nodes.
func (c *clusterSet) List(ctx context.Context) ([]contract.Cluster, error) {
	named, err := bus.NamedClusters(ctx, c.b.res.Engine)
	if err != nil {
		return nil, err
	}
	if _, err := c.holders(ctx); err != nil {
		return nil, err
	}
	all := append([]contract.Cluster{{Name: contract.DefaultCluster}}, named...)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range all {
		all[i].V = contract.Version
		all[i].Nodes = append([]string{}, c.nodes[all[i].Name]...)
		all[i].Catalog = c.catalog[all[i].Name]
	}
	return all, nil
}

// Create is api.Clusters': the cluster is recorded, then started.
func (c *clusterSet) Create(ctx context.Context, name, by string) (contract.Cluster, error) {
	if err := contract.CheckClusterName(name); err != nil {
		return contract.Cluster{}, fmt.Errorf("%w: %v", api.ErrClusterName, err)
	}
	if name == contract.DefaultCluster {
		return contract.Cluster{}, api.ErrClusterExists
	}
	cl := contract.Cluster{V: contract.Version, Name: name, Created: time.Now().UTC().Truncate(time.Second), By: by, Nodes: []string{}}
	err := bus.CreateCluster(ctx, c.b.res.Engine, cl)
	if errors.Is(err, bus.ErrClusterExists) {
		return contract.Cluster{}, api.ErrClusterExists
	}
	if err != nil {
		return contract.Cluster{}, err
	}
	if err := c.startStack(c.ctx, name); err != nil {
		// Not made: the name may be asked for again.
		_ = bus.DeleteCluster(context.WithoutCancel(ctx), c.b.res.Engine, name)
		return contract.Cluster{}, fmt.Errorf("start it: %w", err)
	}
	return cl, nil
}

// Delete is api.Clusters': the cluster's planner starts the deployment
// that takes the cluster off its nodes, and the cluster goes once it
// succeeded (finishDelete); a cluster that placed nothing goes at once.
func (c *clusterSet) Delete(ctx context.Context, name, by string) (kit.Reply, error) {
	c.mu.Lock()
	s := c.stacks[name]
	c.mu.Unlock()
	if s == nil {
		return kit.Reply{}, api.ErrNoCluster
	}
	rep, err := kit.Request(ctx, s.nc, subject.ClusterDelete(), nil)
	if err != nil || rep.Code >= 300 {
		return rep, err
	}
	var d contract.ClusterDeleted
	if err := json.Unmarshal(rep.Body, &d); err != nil {
		return kit.Reply{}, fmt.Errorf("cluster %s's planner answered the delete with %q: %w", name, contract.Clip(string(rep.Body)), err)
	}
	cl, err := c.record(ctx, name)
	if err != nil {
		return kit.Reply{}, err
	}
	if d.ID == "" {
		return rep, c.forget(ctx, cl)
	}
	cl.Deleting = d.ID
	if err := bus.PutCluster(ctx, c.b.res.Engine, cl); err != nil {
		return kit.Reply{}, err
	}
	c.o.Logger.Info("cluster deleting", "cluster", name, "deployment", d.ID, "by", by)
	c.finishDelete(cl)
	return rep, nil
}

// record is a named cluster's record.
func (c *clusterSet) record(ctx context.Context, name string) (contract.Cluster, error) {
	named, err := bus.NamedClusters(ctx, c.b.res.Engine)
	if err != nil {
		return contract.Cluster{}, err
	}
	for _, cl := range named {
		if cl.Name == name {
			return cl, nil
		}
	}
	return contract.Cluster{}, api.ErrNoCluster
}

// deleteTick is how often a delete's deployment is looked at.
const deleteTick = 2 * time.Second

// finishDelete follows cluster cl's delete until its deployment ends: a
// success leaves its nodes and forgets the cluster (each tried again
// until it is done or the engine stops); a failure keeps the cluster,
// which may be deleted again.
func (c *clusterSet) finishDelete(cl contract.Cluster) {
	c.mu.Lock()
	s := c.stacks[cl.Name]
	c.mu.Unlock()
	log := c.o.Logger.With("cluster", cl.Name, "deployment", cl.Deleting)
	go func() {
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(deleteTick):
			}
			rep, err := kit.Request(c.ctx, s.nc, subject.DeployGet(), contract.DeployGet{ID: cl.Deleting})
			var d contract.Deployment
			if err != nil || rep.Code != 200 || json.Unmarshal(rep.Body, &d) != nil {
				continue
			}
			switch d.State {
			case contract.DeployFailed:
				log.Warn("the cluster's delete failed: the cluster stays, to be deleted again")
				cl.Deleting = ""
				if err := bus.PutCluster(c.ctx, c.b.res.Engine, cl); err != nil {
					log.Error("record the cluster", "err", err)
				}
				return
			case contract.DeploySucceeded:
				rep, err := kit.Request(c.ctx, s.nc, subject.ClusterLeave(), contract.ClusterLeave{V: contract.Version, Deployment: cl.Deleting})
				if err != nil || rep.Code != 200 {
					log.Warn("leave the cluster's nodes; trying again", "err", err, "answer", contract.Clip(string(rep.Body)))
					continue
				}
				if err := c.forget(c.ctx, cl); err != nil {
					log.Error("forget the cluster", "err", err)
				}
				return
			}
		}
	}()
}

// forget stops a named cluster's services and forgets its record; its
// store stays on disk, in its account's directory.
func (c *clusterSet) forget(ctx context.Context, cl contract.Cluster) error {
	c.mu.Lock()
	s := c.stacks[cl.Name]
	delete(c.stacks, cl.Name)
	delete(c.nodes, cl.Name)
	delete(c.catalog, cl.Name)
	c.mu.Unlock()
	if s != nil {
		s.stop()
	}
	if err := bus.DeleteCluster(ctx, c.b.res.Engine, cl.Name); err != nil {
		return err
	}
	c.o.Logger.Info("cluster deleted", "cluster", cl.Name)
	return nil
}

// Gather gathers the engine's series and every running cluster's.
func (c *clusterSet) Gather() ([]*dto.MetricFamily, error) {
	gs := prometheus.Gatherers{c.reg}
	c.mu.Lock()
	for _, s := range c.stacks {
		gs = append(gs, s.metrics)
	}
	c.mu.Unlock()
	return gs.Gather()
}

// Handler is api.Clusters': the named cluster's API, made at its first
// request.
func (c *clusterSet) Handler(name string) (http.Handler, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stacks[name]
	if s == nil || c.apiOpts == nil {
		return nil, false
	}
	if s.api == nil {
		o := *c.apiOpts
		o.NC, o.Cluster = s.nc, name
		o.Registry = prometheus.WrapRegistererWith(prometheus.Labels{"cluster": name}, s.metrics)
		h, err := api.New(o)
		if err != nil {
			c.o.Logger.Error("the API of a cluster", "cluster", name, "err", err)
			return nil, false
		}
		s.api = h
	}
	return s.api, true
}
