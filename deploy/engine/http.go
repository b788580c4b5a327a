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
)

// serveAPI serves the API on o.Listen until ctx ends or a server fails,
// then shuts its servers down.
func serveAPI(ctx context.Context, o Options, b *engineBus, reg *prometheus.Registry, releases *release.Store, tlsCfg *tls.Config) error {
	log := o.Logger
	token, err := apiToken(o)
	if err != nil {
		return err
	}
	mirror := filepath.Join(o.DataDir, "mirror")
	_ = os.MkdirAll(mirror, 0o755)
	ao := api.Options{NC: b.nc, Token: token, Tokens: &TokenFile{Path: filepath.Join(o.DataDir, TokensFile)}, AuthNone: o.AuthNone, Logger: log, Registry: reg, Gatherer: reg, MirrorDir: mirror, Console: consoleFS(),
		Releases: releaseAPI{store: releases, js: b.res.JS, log: log}, Limits: o.Limits, Build: o.Build}
	if o.agent != nil {
		ao.Agent = &o.agent.AgentBinary
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
	hs := api.NewServer(h, ao, tlsCfg)
	errc := make(chan error, 2)
	servers := []*http.Server{hs}
	if tlsCfg == nil {
		go func() { errc <- hs.Serve(ln) }()
	} else {
		split := newSplitListener(ln)
		plain := api.NewServer(plainOnly(h), ao, nil)
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
	shutdown(servers)
	return nil
}

// shutdown gives the servers' requests in flight 10 seconds to finish.
func shutdown(servers []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}
