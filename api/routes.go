package api

import (
	"cmp"
	"context"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// prefix is where the routes of the table are served.
const prefix = "/deployment-engine"

// route is one route of the API: what answers it, the role a token needs
// for it, and what the audit records of it. Every route that needs a token
// is declared in routes, and nowhere else. A route acts on the cluster its
// {cluster} path parameter names, or on the default cluster: a token must
// reach that cluster too (see Grant.Permit).
type route struct {
	method  string
	pattern string // below prefix
	handler http.HandlerFunc
	// role is the least a token needs: read for what only reads, operate
	// to act on what runs, deploy to change what runs, admin for the
	// engine's own business.
	role  Role
	audit auditSpec
	// stream: the answer is a live event stream, counted apart from the
	// requests in flight (see Limits.MaxStreams).
	stream bool
	// wide: the route acts on no one cluster (it lists them, each answer
	// held to the token's reach), so a token needs its role alone.
	wide bool
	// nodes: the answer waits for the nodes (a check of each, or monit's
	// outcome on each), which other clusters' work may queue behind: the
	// request waits nodesTimeout, not the API's Timeout.
	nodes bool
	// reads is the handler's own reader, for a change whose entry names
	// what its body asks for (the instance to stop, say): a request
	// refused before its handler runs is read by it alone, so that its
	// entry names what was asked too.
	reads func(http.ResponseWriter, *http.Request)
}

// reading makes a request reader a route's reads: what it returns is for
// the handler, what it records for the audit.
func reading[T any](read func(http.ResponseWriter, *http.Request) (T, bool)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = read(w, r) }
}

// auditSpec is what the audit records of a route's requests. The handler
// adds what only it knows (see auditRecord).
type auditSpec struct {
	// action names the change; "" for a route that changes nothing.
	action string
	// object is the entry's object until the handler records one.
	object string
	// param, when set, names the path parameter that is the object.
	param string
	// diff: the change may change the stored config; its entry holds the
	// config's diff, one change at a time.
	diff bool
	// planID: the reply's id is a plan's, the entry's object, and no
	// deployment's.
	planID bool
	// readOnly says why a route with a changing method changes nothing,
	// and so is not audited.
	readOnly string
}

// audited is an action whose entry names the action as its object.
func audited(action string) auditSpec { return auditSpec{action: action, object: action} }

// router is the API's router: the anonymous routes, and the table's below
// prefix.
func (s *server) router(m *metrics) http.Handler {
	r := chi.NewRouter()
	r.Use(s.requestID, securityHeaders, middleware.Recoverer, m.middleware)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+contract.Clip(r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+contract.Clip(r.Method)+" not allowed on "+contract.Clip(r.URL.Path))
	})
	r.Group(s.anonymous)
	// A cluster's own routes, each served by its cluster's API, which
	// checks the token for that cluster and audits there.
	r.Handle(prefix+clustersRoute, http.HandlerFunc(s.toCluster))
	t := newTable(s.routes())
	r.Group(func(r chi.Router) {
		// The route is found first, for what it declares. The token is
		// checked on the headers, before any body is read; the role inside
		// the audit, so that a refusal is recorded.
		r.Use(t.resolve, s.auth, s.needStore, s.lim.limit, s.audit, s.authorize)
		r.Mount(prefix, t.mux)
	})
	return r
}

// anonymous registers the routes that need no token, for the nodes and
// monitoring: they change nothing, so they have no role and no audit. They
// share a budget of their own, per peer address, apart from the API's:
// anonymous clients cannot starve it.
func (s *server) anonymous(r chi.Router) {
	o := s.o
	r.Use(s.lim.limitAnon)
	r.Get("/healthz", s.healthz)
	r.Get("/version", s.version)
	r.Get(OpenAPIPath, s.serveOpenAPI)
	r.Get(AsyncAPIPath, s.serveAsyncAPI)
	r.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	if o.MirrorDir != "" {
		r.Handle("/mirror/*", http.StripPrefix("/mirror/", streaming(o.Limits.StreamIdle, mirrorHandler(o.MirrorDir).ServeHTTP)))
	}
	if o.Agent != nil {
		r.Handle("/agent/*", streaming(o.Limits.StreamIdle, agentHandler(o.Agent).ServeHTTP))
	}
	if o.Releases != nil {
		r.Handle("/releases/*", http.StripPrefix("/releases/", streaming(o.Limits.StreamIdle, releaseFiles(o.Releases).ServeHTTP)))
	}
	if o.Compiled != nil {
		r.Handle(CompiledPrefix+"*", compiledFiles(o.Compiled, o.Limits.StreamIdle))
	}
	if o.Console != nil {
		r.Handle("/*", http.FileServerFS(o.Console))
	}
}

// routes is the API's table: every route below prefix, one line each with
// its role and audit action. It is long because it is the one table of
// routes: split, a route's role or audit would again be found elsewhere.
func (s *server) routes() []route {
	idle := s.o.Limits.StreamIdle
	deploy := auditSpec{action: contract.AuditDeploy, object: "deployment"}
	deployment := func(id string) any { return contract.DeployGet{ID: id} }
	return []route{
		{method: http.MethodGet, pattern: "/config", handler: s.forward(subject.ConfigGet()), role: RoleRead},
		// A config's checks render a release's templates, even with ?check=0.
		{method: http.MethodPost, pattern: "/config", handler: s.postConfig, role: RoleDeploy, nodes: true,
			audit: auditSpec{action: contract.AuditConfig, object: contract.AuditConfig, diff: true}},
		// The config's JSON Schema, for editors that check a config as it is typed.
		{method: http.MethodGet, pattern: "/config/schema", handler: s.forward(subject.ConfigSchema()), role: RoleRead},
		// The configs deployments applied, newest first, secrets redacted.
		{method: http.MethodGet, pattern: "/config/history", handler: s.forward(subject.ConfigHistory()), role: RoleRead},
		// The machines a manifest's instances go on; a BOSH manifest deployed on them: 202 {"id", "name", "placement", "warnings"}.
		{method: http.MethodGet, pattern: "/cloud-config", handler: s.forward(subject.CloudConfigGet()), role: RoleRead},
		{method: http.MethodPut, pattern: "/cloud-config", handler: s.putCloudConfig, role: RoleDeploy, audit: audited(contract.AuditCloudConfig)},
		{method: http.MethodPost, pattern: "/manifest", handler: s.postManifest, role: RoleDeploy, nodes: true, reads: reading(readManifest),
			audit: auditSpec{action: contract.AuditManifest, object: contract.AuditManifest, diff: true}},
		// The variables the engine generated for the manifest, never a
		// value; one marked to be generated anew at the next manifest deploy.
		{method: http.MethodGet, pattern: "/manifest/variables", handler: s.forward(subject.ManifestVariables()), role: RoleRead},
		{method: http.MethodPost, pattern: "/manifest/variables/{name}/regenerate", handler: s.regenerateVariable, role: RoleDeploy,
			audit: auditSpec{action: contract.AuditRegenerate, param: "name"}},
		// Every pre-check again on the stored config: 200 with the problems
		// and warnings found, 403 before any config.
		{method: http.MethodGet, pattern: "/precheck", handler: s.forward(subject.ConfigPrecheck()), role: RoleRead, nodes: true},

		// The SPEC's deploy by GET starts one too.
		{method: http.MethodGet, pattern: "/deploy", handler: s.deploy, role: RoleDeploy, nodes: true, audit: deploy},
		{method: http.MethodPost, pattern: "/deploy", handler: s.deploy, role: RoleDeploy, nodes: true, audit: deploy},
		{method: http.MethodPost, pattern: "/scale", handler: s.scale, role: RoleDeploy, nodes: true, reads: reading(readScale),
			audit: auditSpec{action: contract.AuditScale, object: contract.AuditScale, diff: true}},
		// Deploys the last config whose deployment succeeded again: 202
		// {"id"}; 409 when there is none, or a deployment runs.
		{method: http.MethodPost, pattern: "/rollback", handler: s.forward(subject.DeployRollback()), role: RoleDeploy, nodes: true,
			audit: auditSpec{action: contract.AuditRollback, object: "deployment", diff: true}},
		{method: http.MethodPost, pattern: "/takeover", handler: s.takeover, role: RoleDeploy, nodes: true, audit: audited(contract.AuditTakeover)},
		// A plan renders a release's templates; its body, a config, is not recorded.
		{method: http.MethodPost, pattern: "/plan", handler: s.plan, role: RoleDeploy, nodes: true,
			audit: auditSpec{action: contract.AuditPlan, object: contract.AuditPlan, planID: true}},

		{method: http.MethodGet, pattern: "/deployments", handler: s.forward(subject.DeployList()), role: RoleRead},
		{method: http.MethodGet, pattern: "/deployments/{id}", handler: s.deploymentGet, role: RoleRead},
		{method: http.MethodGet, pattern: "/deployments/{id}/events", handler: streaming(idle, s.deploymentEvents), role: RoleRead, stream: true},
		// The deployment's timings.
		{method: http.MethodGet, pattern: "/deployments/{id}/report", handler: s.aboutDeployment(subject.DeployReport(), deployment), role: RoleRead},
		// Ends a running deployment: 202 with the deployment as it ended,
		// 404 for an unknown id, 409 when it has already ended.
		{method: http.MethodPost, pattern: "/deployments/{id}/cancel", role: RoleOperate,
			handler: s.aboutDeployment(subject.DeployCancel(), func(id string) any {
				return contract.DeployCancel{V: contract.Version, ID: id}
			}),
			audit: auditSpec{action: contract.AuditCancel, param: "id"}},

		{method: http.MethodGet, pattern: "/status", handler: s.forward(subject.MonitorStatus()), role: RoleRead},
		// The instances as bosh instances --ps shows them: group/index, zone, IP, each job's processes.
		{method: http.MethodGet, pattern: "/instances", handler: s.forward(subject.MonitorInstances()), role: RoleRead},
		{method: http.MethodGet, pattern: "/hardware", handler: s.hardware, role: RoleRead},
		// Prometheus' HTTP service discovery of the node agents.
		{method: http.MethodGet, pattern: "/prometheus/targets", handler: s.forward(subject.MonitorTargets()), role: RoleRead},
		{method: http.MethodPut, pattern: "/restart", handler: s.restart, role: RoleOperate, nodes: true, reads: reading(readTarget),
			audit: audited(contract.AuditRestart)},
		{method: http.MethodPut, pattern: "/stop", handler: s.stop, role: RoleOperate, nodes: true, reads: reading(readTarget),
			audit: audited(contract.AuditStop)},
		// Runs a command on nodes: a deployment of kind exec, 202 {"id",
		// "command"}; its entry's object is the command, secrets taken out.
		{method: http.MethodPost, pattern: "/exec", handler: s.fleetExec, role: RoleOperate,
			audit: audited(contract.AuditExec)},
		// Puts a file on nodes, or reads one back ("from"): a deployment of
		// kind copy, 202 {"id", "to" or "from", "nodes", "size", "sha256"};
		// its entry's object is "to <path>" or "from <path>", its detail
		// the nodes, never the content.
		{method: http.MethodPost, pattern: "/copy", handler: s.fleetCopy, role: RoleOperate,
			audit: audited(contract.AuditCopy)},
		// Upgrades the nodes' packages from the mirror, batch by batch,
		// rebooting those that ask for it: a deployment of kind patch, 202
		// {"id", "nodes", "batches"}.
		{method: http.MethodPost, pattern: "/patch", handler: s.patch, role: RoleDeploy, nodes: true,
			audit: audited(contract.AuditPatch)},
		// A release's errands: listed, and run as a deployment of kind
		// errand, 202 {"id", "name", "nodes"}.
		{method: http.MethodGet, pattern: "/errands", handler: s.forward(subject.DeployErrands()), role: RoleRead},
		{method: http.MethodPost, pattern: "/errands/{name}/run", handler: s.errandRun, role: RoleDeploy,
			audit: auditSpec{action: contract.AuditErrand, param: "name"}},
		// Persistent disks: attached and orphaned ones listed; an orphaned
		// one deleted, a deployment of kind disk, 202 {"id", "ip"}.
		{method: http.MethodGet, pattern: "/disks", handler: s.forward(subject.DiskList()), role: RoleRead},
		{method: http.MethodDelete, pattern: "/disks/{ip}", handler: s.diskDelete, role: RoleDeploy,
			audit: auditSpec{action: contract.AuditDisk, param: "ip"}},
		// The file a copy from the nodes read back from one of them, kept
		// an hour: the node's content, as it had it.
		{method: http.MethodGet, pattern: "/deployments/{id}/files/{ip}", handler: s.copiedFile, role: RoleOperate},
		// Auto-heal's state: on or off, the meltdown guard, and every
		// instance it is working on.
		{method: http.MethodGet, pattern: "/heal", handler: s.forward(subject.HealGet()), role: RoleRead},
		{method: http.MethodPut, pattern: "/heal", handler: s.healSet, role: RoleOperate, reads: reading(readHeal),
			audit: auditSpec{action: contract.AuditHeal, object: "auto-heal"}},

		// Nodes held out of automatic work: auto-heal leaves them alone, a
		// deployment holds their steps, /status says MAINTENANCE.
		{method: http.MethodGet, pattern: "/maintenance", handler: s.forward(subject.MaintenanceList()), role: RoleRead},
		{method: http.MethodGet, pattern: "/nodes/{ip}/maintenance", handler: s.maintenanceGet, role: RoleRead},
		{method: http.MethodPut, pattern: "/nodes/{ip}/maintenance", handler: s.maintenanceSet, role: RoleOperate,
			reads: reading(readMaintenance), audit: auditSpec{action: contract.AuditMaintenance, param: "ip"}},

		// Work on a schedule: a cron expression in a time zone and an action
		// (deploy, restart, rollback, exec, backup) that the planner holding the
		// schedules' lease runs as the action's own route would.
		{method: http.MethodGet, pattern: "/schedules", handler: s.forward(subject.ScheduleList()), role: RoleRead},
		{method: http.MethodPost, pattern: "/schedules", handler: s.scheduleAdd, role: RoleDeploy, reads: reading(readSchedule),
			audit: auditSpec{action: contract.AuditSchedule}},
		{method: http.MethodGet, pattern: "/schedules/{name}", handler: s.scheduleNamed(subject.ScheduleGet()), role: RoleRead},
		{method: http.MethodDelete, pattern: "/schedules/{name}", handler: s.scheduleNamed(subject.ScheduleDelete()), role: RoleDeploy,
			audit: auditSpec{action: contract.AuditSchedule, param: "name"}},

		// The logs' names go to the log service as data in a JSON body; the
		// service alone decides what is a log, so no name reaches the file
		// system from here.
		{method: http.MethodGet, pattern: "/download", handler: s.forward(subject.LogsList()), role: RoleRead},
		{method: http.MethodPut, pattern: "/download", handler: streaming(idle, s.downloadLog), role: RoleRead,
			audit: auditSpec{readOnly: "the SPEC's download of a log by PUT"}},
		{method: http.MethodGet, pattern: "/logs/{name}", handler: streaming(idle, s.serveLog), role: RoleRead},
		{method: http.MethodGet, pattern: "/logs.tar.gz", handler: streaming(idle, s.logBundle), role: RoleRead},
		// A component's runtime log lines, live, as server-sent events.
		{method: http.MethodGet, pattern: "/logs/follow", handler: streaming(idle, s.followLogs), role: RoleRead, stream: true},

		{method: http.MethodGet, pattern: "/releases", handler: s.listReleases, role: RoleRead},
		// The entry's object is the release the reply names.
		{method: http.MethodPost, pattern: "/releases", handler: uploading(idle, s.uploadRelease), role: RoleDeploy,
			audit: auditSpec{action: contract.AuditRelease}},

		{method: http.MethodGet, pattern: "/audit", handler: s.auditList, role: RoleRead},

		// The engine's clusters; each named one's routes are the manual's
		// below /clusters/{cluster}/ (toCluster).
		{method: http.MethodGet, pattern: "/clusters", handler: s.clusterList, role: RoleRead, wide: true},
		{method: http.MethodPost, pattern: "/clusters", handler: s.clusterCreate, role: RoleAdmin,
			audit: auditSpec{action: contract.AuditCluster}},
		{method: http.MethodGet, pattern: "/clusters/{cluster}", handler: s.clusterGet, role: RoleRead},
		{method: http.MethodDelete, pattern: "/clusters/{cluster}", handler: s.clusterDelete, role: RoleAdmin,
			audit: auditSpec{action: contract.AuditCluster, param: clusterParam}},

		// Every certificate the engine made or serves, and when it expires.
		{method: http.MethodGet, pattern: "/certificates", handler: s.certificates, role: RoleRead},
		{method: http.MethodPost, pattern: "/certificates/{cert}/rotate", handler: s.certificateRotate, role: RoleAdmin, audit: auditSpec{action: contract.AuditCertificate, param: "cert"}},
		{method: http.MethodGet, pattern: "/problems", handler: s.forward(subject.ProblemsList()), role: RoleRead},
		{method: http.MethodPost, pattern: "/problems/{id}/resolve", handler: s.problemResolve, role: RoleOperate, reads: reading(readResolve), audit: auditSpec{action: contract.AuditResolve, param: "id"}},
	}
}

// table routes the requests below prefix and tells the middlewares that
// run before the routing which route a request is for.
type table struct {
	mux    *chi.Mux
	routes map[string]*route // by method and pattern
}

func newTable(rs []route) *table {
	t := &table{mux: chi.NewRouter(), routes: make(map[string]*route, len(rs))}
	for i := range rs {
		rt := &rs[i]
		t.mux.Method(rt.method, rt.pattern, rt.handler)
		t.routes[rt.method+" "+rt.pattern] = rt
	}
	return t
}

// routed is the route a request is for, with its path parameters.
type routed struct {
	*route
	params *chi.Context
}

type routedKey struct{}

// resolve finds the request's route before the middlewares run, so that
// auth, the audit and authorize read what the route declares.
func (t *table) resolve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.RawPath // as chi routes
		if p == "" {
			p = r.URL.Path
		}
		p, _ = strings.CutPrefix(p, prefix)
		if p == "" {
			p = "/"
		}
		rctx := chi.NewRouteContext()
		if rt := t.routes[r.Method+" "+t.mux.Find(rctx, r.Method, p)]; rt != nil {
			r = r.WithContext(context.WithValue(r.Context(), routedKey{}, routed{rt, rctx}))
		}
		next.ServeHTTP(w, r)
	})
}

func routeOf(ctx context.Context) (routed, bool) {
	rt, ok := ctx.Value(routedKey{}).(routed)
	return rt, ok
}

// needRole is the role a request needs: its route's, and for no route
// (answered 404 or 405) read to read and operate, the least that changes
// anything, for anything else.
func needRole(r *http.Request) Role {
	if rt, ok := routeOf(r.Context()); ok {
		return rt.role
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return RoleRead
	}
	return RoleOperate
}

// clusterParam is the path parameter that names the cluster a route acts
// on.
const clusterParam = "cluster"

// clusterOf is the cluster a request acts on: its route's {cluster}, ""
// for a wide route, and for a route without one (and a request for no
// route) the API's cluster.
func (s *server) clusterOf(r *http.Request) string {
	if rt, ok := routeOf(r.Context()); ok {
		if rt.wide {
			return ""
		}
		if c := rt.params.URLParam(clusterParam); c != "" {
			return c
		}
	}
	return cmp.Or(s.o.Cluster, contract.DefaultCluster)
}

// isStream tells whether a request's route is an event stream.
func isStream(r *http.Request) bool {
	rt, ok := routeOf(r.Context())
	return ok && rt.stream
}

// auditOf is what the audit records of a request's route; the zero
// auditSpec for no route.
func auditOf(r *http.Request) (auditSpec, *chi.Context) {
	rt, ok := routeOf(r.Context())
	if !ok {
		return auditSpec{}, nil
	}
	return rt.audit, rt.params
}
