package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// Clusters are the engine's clusters: the default one, whose routes are
// the manual's, and the named ones, each served by a handler of its own
// (an API like this one, acting on that cluster's store and services).
type Clusters interface {
	// List is every cluster, the default one first.
	List(ctx context.Context) ([]contract.Cluster, error)
	// Create makes and starts a named cluster; ErrClusterExists when the
	// name is taken, an error wrapping ErrClusterName for a bad name.
	Create(ctx context.Context, name, by string) (contract.Cluster, error)
	// Handler serves a named cluster's routes, at the manual's paths.
	Handler(name string) (http.Handler, bool)
	// Delete starts a named cluster's delete and answers its planner's
	// reply: 202 and the deployment that takes the cluster off its nodes,
	// 200 when it had none; ErrNoCluster when there is no such cluster.
	Delete(ctx context.Context, name, by string) (kit.Reply, error)
}

// Errors of Clusters.Create that are the client's.
var (
	ErrClusterExists = errors.New("the cluster exists")
	ErrClusterName   = errors.New("bad cluster name")
	ErrNoCluster     = errors.New("no such cluster")
)

// clustersRoute is where a cluster's own routes are served: below it, the
// manual's paths act on the cluster {cluster} names.
const clustersRoute = "/clusters/{" + clusterParam + "}/*"

// clusters lists the clusters: the default one alone where the engine
// holds no other (a split engine's API).
func (s *server) clusters(ctx context.Context) ([]contract.Cluster, error) {
	if s.o.Clusters == nil {
		return []contract.Cluster{{V: contract.Version, Name: contract.DefaultCluster, Nodes: []string{}}}, nil
	}
	return s.o.Clusters.List(ctx)
}

// clusterList answers GET /clusters: the clusters the token reaches.
func (s *server) clusterList(w http.ResponseWriter, r *http.Request) {
	all, err := s.clusters(r.Context())
	if err != nil {
		s.log.Error("list the clusters", "err", err)
		writeError(w, http.StatusInternalServerError, "list the clusters: "+err.Error())
		return
	}
	out := []contract.Cluster{}
	id, authed := identityOf(r.Context())
	for _, c := range all {
		if !authed || id.Reaches(c.Name) {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// clusterGet answers GET /clusters/{cluster}.
func (s *server) clusterGet(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, clusterParam)
	all, err := s.clusters(r.Context())
	if err != nil {
		s.log.Error("list the clusters", "err", err)
		writeError(w, http.StatusInternalServerError, "list the clusters: "+err.Error())
		return
	}
	i := slices.IndexFunc(all, func(c contract.Cluster) bool { return c.Name == name })
	if i < 0 {
		writeError(w, http.StatusNotFound, noCluster(name))
		return
	}
	writeJSON(w, http.StatusOK, all[i])
}

// clusterCreate answers POST /clusters {"name": "prod"}: 201 with the
// cluster, which takes its config, deployments and every other route at
// /deployment-engine/clusters/prod/ at once.
func (s *server) clusterCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var in contract.ClusterCreate
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, `want {"name": "prod"}`)
		return
	}
	if a := recordOf(r); a != nil {
		a.object = "cluster " + contract.Clip(in.Name)
	}
	if err := contract.CheckClusterName(in.Name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.o.Clusters == nil {
		writeError(w, http.StatusNotImplemented, "this process of the engine holds no clusters but the default one: make clusters through an engine run whole (serve without --only)")
		return
	}
	c, err := s.o.Clusters.Create(r.Context(), in.Name, actorOf(r.Context()))
	switch {
	case errors.Is(err, ErrClusterExists):
		writeError(w, http.StatusConflict, fmt.Sprintf("cluster %s exists: GET /deployment-engine/clusters lists them", in.Name))
	case errors.Is(err, ErrClusterName):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.log.Error("create a cluster", "cluster", in.Name, "err", err)
		writeError(w, http.StatusInternalServerError, "create cluster "+in.Name+": "+err.Error())
	default:
		writeJSON(w, http.StatusCreated, c)
	}
}

// clusterDelete answers DELETE /clusters/{cluster}: 202 and the
// deployment of kind delete that drains and stops each of its instances
// and takes the engine off its nodes; the cluster goes once it succeeded.
func (s *server) clusterDelete(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, clusterParam)
	switch {
	case name == contract.DefaultCluster:
		writeError(w, http.StatusBadRequest, "the default cluster is not deleted: post it a config without the nodes to free them")
		return
	case s.o.Clusters == nil:
		writeError(w, http.StatusNotFound, noCluster(name))
		return
	}
	rep, err := s.o.Clusters.Delete(r.Context(), name, actorOf(r.Context()))
	switch {
	case errors.Is(err, ErrNoCluster):
		writeError(w, http.StatusNotFound, noCluster(name))
	case err != nil:
		s.log.Error("delete a cluster", "cluster", name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "delete cluster "+name+": "+err.Error())
	default:
		writeReply(w, rep)
	}
}

func noCluster(name string) string {
	return fmt.Sprintf("no cluster %q: GET /deployment-engine/clusters lists them, POST there makes one", contract.Clip(name))
}

// toCluster serves a request below /clusters/{cluster}/ at the manual's
// path, by the cluster's own handler (the default cluster's: this API's
// own router). That handler checks the token again, for its cluster, and
// records the change in its cluster's audit.
func (s *server) toCluster(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, clusterParam)
	rest := chi.URLParam(r, "*")
	var h http.Handler
	switch {
	case name == contract.DefaultCluster && s.o.Cluster == "":
		h = s.self
	case s.o.Clusters != nil:
		h, _ = s.o.Clusters.Handler(name)
	}
	if h == nil {
		// Who may not know a cluster exists is told no more of one that
		// does not.
		if !s.o.AuthNone {
			if tok, ok := bearer(r.Header.Get("Authorization")); !ok || !s.known(tok) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="deployment-engine"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong API token: send 'Authorization: Bearer <token>'")
				return
			}
		}
		writeError(w, http.StatusNotFound, noCluster(name))
		return
	}
	// A fresh routing context: the cluster's router routes the request
	// from its start, not as a router mounted below this one.
	r2 := r.Clone(context.WithValue(r.Context(), chi.RouteCtxKey, (*chi.Context)(nil)))
	r2.URL.RawPath = ""
	r2.URL.Path = prefix + "/" + rest
	if r.URL.RawPath != "" {
		// chi matched the escaped path: rest is escaped too.
		path, err := url.PathUnescape(rest)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad path: "+err.Error())
			return
		}
		r2.URL.Path, r2.URL.RawPath = prefix+"/"+path, prefix+"/"+rest
	}
	h.ServeHTTP(w, r2)
}

// known tells whether tok is a token of this engine's.
func (s *server) known(tok string) bool {
	_, ok := s.identify(tok)
	return ok
}
