package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/api"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/contract"
)

// serveAPI serves the API on o.Listen until ctx ends or a server fails,
// then shuts its servers down while stopServices stops the services.
func serveAPI(ctx context.Context, o Options, b *engineBus, reg *prometheus.Registry, releases *release.Store, tlsCfg *tls.Config, stopServices func(), clusters *clusterSet) error {
	log := o.Logger
	token, err := apiToken(o)
	if err != nil {
		return err
	}
	mirror := filepath.Join(o.DataDir, "mirror")
	_ = os.MkdirAll(mirror, 0o755)
	ao := api.Options{NC: b.nc, Token: token, Tokens: &TokenFile{Path: filepath.Join(o.DataDir, TokensFile)}, AuthNone: o.AuthNone, Logger: log, Gatherer: reg, MirrorDir: mirror, Console: consoleFS(),
		Releases: releaseAPI{store: releases, js: b.res.JS, log: log}, Compiled: compiledAPI{store: releases, agentPass: b.agentPass, log: log}, Limits: o.Limits, Build: o.Build,
		Registry: prometheus.WrapRegistererWith(prometheus.Labels{"cluster": contract.DefaultCluster}, reg)}
	if o.agent != nil {
		ao.Agent = &o.agent.AgentBinary
	}
	if clusters != nil {
		// Each cluster's API lists and makes clusters as this one does.
		ao.Clusters, ao.Gatherer = clusters, clusters
		clusters.serveAPI(ao)
	}
	h, err := api.New(ao)
	if err != nil {
		return err
	}
	if o.AuthNone {
		log.Warn("API authentication is OFF (--auth none): anyone who reaches " + o.Listen + " controls the cluster")
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	// Requests run under base, which ends once the services have stopped.
	base, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	baseCtx := func(net.Listener) context.Context { return base }
	hs := api.NewServer(h, ao, tlsCfg)
	hs.BaseContext = baseCtx
	errc := make(chan error, 2)
	servers := []*http.Server{hs}
	if tlsCfg == nil {
		go func() { errc <- hs.Serve(ln) }()
	} else {
		split := newSplitListener(ln)
		plain := api.NewServer(plainOnly(h), ao, nil)
		plain.BaseContext = baseCtx
		servers = append(servers, plain)
		go func() { errc <- hs.ServeTLS(split.tls, "", "") }()
		go func() { errc <- plain.Serve(split.plain) }()
		defer split.Close()
	}
	log.Info("engine serving", "listen", ln.Addr().String(), "tls", tlsCfg != nil)
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("engine stopping")
	// The servers take no new request while the services stop: each
	// service's Stop answers its handlers in flight (503, stopping), so
	// the requests waiting on them end with that answer once it arrives.
	// What still runs after (an event stream, a request waiting on another
	// process of a split engine) ends with base, not at shutdown's deadline.
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		shutdown(servers)
	}()
	stopServices()
	select {
	case <-shut:
	case <-time.After(answerGrace):
	}
	endRequests()
	<-shut
	return nil
}

// answerGrace is how long the requests in flight have, once the services
// stopped, to take the answers those sent them before their ctx ends.
const answerGrace = time.Second

// shutdown gives the servers' requests in flight 10 seconds to finish.
func shutdown(servers []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}
