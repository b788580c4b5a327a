package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// tokenTable is a token lookup a test changes while requests run.
type tokenTable struct {
	mu sync.Mutex
	m  map[string]Grant // token → grant; absent once revoked
}

func (tt *tokenTable) Lookup(tok string) (Grant, bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	g, ok := tt.m[tok]
	return g, ok
}

func (tt *tokenTable) set(tok string, g *Grant) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if g == nil {
		delete(tt.m, tok)
		return
	}
	tt.m[tok] = *g
}

const (
	adminTok   = "admin-token-0123456789"
	writeTok   = "alice-token-0123456789"
	readTok    = "grafana-token-0123456789"
	operateTok = "olga-token-0123456789"
	rootTok    = "root-token-0123456789"
	prodTok    = "prod-token-0123456789"
	wideTok    = "wide-token-0123456789"
)

// roleTokens are the test's tokens: the engine's own and one named token
// of each role, on every cluster.
var roleTokens = []struct {
	tok   string
	grant Grant
}{
	{adminTok, Grant{Name: contract.ActorAdmin, Role: RoleAdmin}},
	{readTok, Grant{Name: "grafana", Role: RoleRead}},
	{operateTok, Grant{Name: "olga", Role: RoleOperate}},
	{writeTok, Grant{Name: "alice", Role: RoleDeploy}},
	{rootTok, Grant{Name: "root", Role: RoleAdmin}},
}

// rolesServer is the API on a real bus with no service behind it (a
// command that gets past the API answers 503), the engine's admin token,
// a named token of each role, and two with a reach: prod-ci (deploy, on
// prod alone) and wide (read, on default and prod).
func rolesServer(t *testing.T) (*httptest.Server, *nats.Conn, *tokenTable, http.Handler) {
	t.Helper()
	ts, nc, tokens, h, _ := rolesServerLogged(t)
	return ts, nc, tokens, h
}

// rolesServerLogged is rolesServer, and what the API logs.
func rolesServerLogged(t *testing.T) (*httptest.Server, *nats.Conn, *tokenTable, http.Handler, *syncBuffer) {
	t.Helper()
	b := bustest.Start(t, bus.ServerOptions{})
	followEvents(t, b.NC)
	tokens := &tokenTable{m: map[string]Grant{
		prodTok: {Name: "prod-ci", Role: RoleDeploy, Clusters: []string{"prod"}},
		wideTok: {Name: "wide", Role: RoleRead, Clusters: []string{"default", "prod"}},
	}}
	for _, rt := range roleTokens[1:] {
		tokens.m[rt.tok] = rt.grant
	}
	logs := &syncBuffer{}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: tokens, MirrorDir: t.TempDir(),
		Releases: stubReleases{t.TempDir()}, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	t.Cleanup(ts.Close)
	return ts, b.NC, tokens, h, logs
}

// syncBuffer is a log's output that handlers write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// routeRoles is the role each route of the API needs, by method and
// pattern below the prefix: read to read, follow streams and download a
// log; operate to act on what runs; deploy to change it and to render
// releases. A route of a named cluster (/clusters/{cluster}/...) needs
// what the same route of the default cluster needs.
var routeRoles = map[string]Role{
	"GET /audit":                       RoleRead,
	"GET /certificates":                RoleRead,
	"GET /config":                      RoleRead,
	"GET /config/history":              RoleRead,
	"GET /config/schema":               RoleRead,
	"GET /deployments":                 RoleRead,
	"GET /deployments/{id}":            RoleRead,
	"GET /deployments/{id}/events":     RoleRead,
	"GET /deployments/{id}/report":     RoleRead,
	"GET /download":                    RoleRead,
	"PUT /download":                    RoleRead, // reads a log
	"GET /hardware":                    RoleRead,
	"GET /heal":                        RoleRead,
	"GET /logs.tar.gz":                 RoleRead,
	"GET /logs/{name}":                 RoleRead,
	"GET /logs/follow":                 RoleRead, // a stream of runtime log lines
	"GET /precheck":                    RoleRead,
	"GET /prometheus/targets":          RoleRead,
	"GET /releases":                    RoleRead,
	"GET /status":                      RoleRead,
	"GET /instances":                   RoleRead,
	"GET /maintenance":                 RoleRead,
	"GET /nodes/{ip}/maintenance":      RoleRead,
	"PUT /nodes/{ip}/maintenance":      RoleOperate,
	"POST /deployments/{id}/cancel":    RoleOperate,
	"PUT /heal":                        RoleOperate,
	"PUT /restart":                     RoleOperate,
	"PUT /stop":                        RoleOperate,
	"POST /exec":                       RoleOperate, // runs a command on nodes, as a deployment
	"POST /copy":                       RoleOperate, // puts a file on nodes, as a deployment
	"POST /patch":                      RoleDeploy,  // upgrades and reboots nodes, as a deployment
	"GET /errands":                     RoleRead,
	"POST /errands/{name}/run":         RoleDeploy, // runs a release's job on its nodes, as a deployment
	"GET /disks":                       RoleRead,
	"DELETE /disks/{ip}":               RoleDeploy,  // erases a node's data, as a deployment
	"GET /deployments/{id}/files/{ip}": RoleOperate, // a node's file, unredacted
	"GET /deploy":                      RoleDeploy,  // the SPEC's deploy by GET
	"POST /deploy":                     RoleDeploy,
	"POST /config":                     RoleDeploy, // renders releases when it checks, and with ?check=0 too
	"POST /plan":                       RoleDeploy, // renders releases
	"POST /releases":                   RoleDeploy,
	"POST /rollback":                   RoleDeploy,
	"POST /scale":                      RoleDeploy,
	"POST /takeover":                   RoleDeploy,
	"GET /schedules":                   RoleRead,
	"GET /schedules/{name}":            RoleRead,
	"POST /schedules":                  RoleDeploy, // each run deploys
	"DELETE /schedules/{name}":         RoleDeploy,
	"POST /certificates/{cert}/rotate": RoleAdmin,
	"GET /cloud-config":                RoleRead,
	"PUT /cloud-config":                RoleDeploy, // the machines manifests deploy on
	"POST /manifest":                   RoleDeploy,
	"GET /manifest/variables":          RoleRead,
	"POST /manifest/variables/{name}/regenerate": RoleDeploy,
	"GET /clusters":               RoleRead,
	"POST /clusters":              RoleAdmin,
	"GET /clusters/{cluster}":     RoleRead,
	"DELETE /clusters/{cluster}":  RoleAdmin,
	"GET /problems":               RoleRead,
	"POST /problems/{id}/resolve": RoleOperate, // a fix that deploys the config needs deploy (routes_problems.go)
}

// tableRoutes walks the real router: every route below the prefix that
// needs a token, as "METHOD /pattern" below the prefix, with the role
// routeRoles says it needs. A route missing from routeRoles fails.
func tableRoutes(t *testing.T, h http.Handler) map[string]Role {
	t.Helper()
	out := map[string]Role{}
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		p, below := strings.CutPrefix(route, prefix)
		if !below || route == OpenAPIPath || route == AsyncAPIPath || route == prefix+clustersRoute {
			// The last: a named cluster's own API serves it, with this
			// table (TestClusterRoutesReach).
			return nil
		}
		key := method + " " + p
		need, ok := routeRoles[strings.Replace(key, " /clusters/{cluster}/", " /", 1)]
		if !ok {
			t.Errorf("%s %s: no role in routeRoles; say which it needs", method, route)
			return nil
		}
		out[key] = need
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key := range routeRoles {
		if _, ok := out[key]; !ok {
			t.Errorf("%s is in routeRoles but not on the router", key)
		}
	}
	return out
}

// Every route of the real router × every role: a token reaches exactly the
// routes its role holds, and gets 403 on every other one, naming the role
// missing and its own; the route table declares what routeRoles says.
func TestRolesGateRoutes(t *testing.T) {
	ts, _, _, h := rolesServer(t)
	routes := tableRoutes(t, h)
	for _, rt := range (&server{}).routes() {
		if need := routes[rt.method+" "+rt.pattern]; need != rt.role {
			t.Errorf("%s %s declares %s, routeRoles says %s", rt.method, rt.pattern, rt.role, need)
		}
	}
	path := strings.NewReplacer("{id}", "d-1", "{name}", "local.log", "{ip}", "10.0.0.1", "{cluster}", contract.DefaultCluster)
	reached := map[Role]int{}
	sent := sentChanges{}
	for route, need := range routes {
		method, p, _ := strings.Cut(route, " ")
		p = prefix + path.Replace(p)
		for _, tok := range roleTokens {
			t.Run(route+" as "+tok.grant.Role.String(), func(t *testing.T) {
				sent.add(t, route, tok.grant)
				resp, body := do(t, method, ts.URL+p, "{}", "Authorization", "Bearer "+tok.tok)
				if tok.grant.Role < need {
					want := method + " " + p + " needs the " + need.String() + " role; token " + tok.grant.Name + " has " + tok.grant.Role.String()
					if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), want) {
						t.Fatalf("%d %s, want 403 %q", resp.StatusCode, body, want)
					}
					return
				}
				if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
					t.Fatalf("refused: %d %s", resp.StatusCode, body)
				}
				reached[tok.grant.Role]++
			})
		}
	}
	// Each role holds the ones below it.
	for i, r := range Roles[1:] {
		if reached[r] < reached[Roles[i]] {
			t.Errorf("%s reaches %d routes, fewer than %s's %d", r, reached[r], Roles[i], reached[Roles[i]])
		}
	}
	if reached[RoleRead] == 0 || reached[RoleOperate] == reached[RoleRead] || reached[RoleDeploy] == reached[RoleOperate] {
		t.Errorf("routes reached by role: %v", reached)
	}

	// The routes the nodes and monitoring fetch need no token at all.
	for _, p := range []string{"/healthz", "/version", "/metrics", "/mirror/Packages", "/releases/r/1/packages/p.tgz", OpenAPIPath, AsyncAPIPath} {
		if resp, body := do(t, "GET", ts.URL+p, ""); resp.StatusCode == 401 || resp.StatusCode == 403 {
			t.Errorf("GET %s without a token: %d %s", p, resp.StatusCode, body)
		}
	}

	// A refused change is in the audit trail under its actor; grafana's
	// every change was refused.
	for _, who := range []struct {
		actor, detail string
		allRefused    bool
	}{
		{"grafana", "role; token grafana has read", true},
		{"olga", "role; token olga has operate", false}, // deploy or admin
	} {
		refused := 0
		for _, e := range auditOfActor(t, ts, who.actor, sent[who.actor]) {
			if e.Code != http.StatusForbidden {
				if who.allRefused {
					t.Errorf("audit entry of a change a read token could not make: %+v", e)
				}
				continue
			}
			refused++
			if e.Result != "failed" || !strings.Contains(e.Detail, who.detail) {
				t.Errorf("audit entry of a refused change: %+v", e)
			}
		}
		if refused == 0 {
			t.Errorf("no audit entry for %s's refused changes", who.actor)
		}
	}
}

// auditOfActor reads the audit entries of actor, waiting up to 5 s for
// at least want of them (the audit stream takes them from the events
// stream a moment after each answer).
func auditOfActor(t *testing.T, ts *httptest.Server, actor string, want int) []contract.AuditEntry {
	t.Helper()
	var got []contract.AuditEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, body := do(t, "GET", ts.URL+prefix+"/audit?actor="+actor, "", "Authorization", "Bearer "+adminTok)
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("audit: %s", body)
		}
		if len(got) >= want {
			return got
		}
	}
	t.Fatalf("%d audit entries of %s, want %d", len(got), actor, want)
	return nil
}

// sentChanges counts the requests of each token's holder to audited routes.
type sentChanges map[string]int

func (a sentChanges) add(t *testing.T, route string, g Grant) {
	t.Helper()
	for _, rt := range (&server{}).routes() {
		if rt.method+" "+rt.pattern == route && rt.audit.action != "" {
			a[g.Name]++
		}
	}
}

// A token revoked, lowered below the role its request needs or limited to
// clusters without the request's, while the request runs, ends it within
// a second: an event stream closes, a command
// waiting on the bus answers 401.
func TestRevocationEndsRequests(t *testing.T) {
	ts, nc, tokens, _ := rolesServer(t)
	runningDeployment(t, nc, "d-1")
	// The commands below are never answered: they wait for their timeout.
	for _, subj := range []string{subject.ConfigGet(), subject.DeployStart()} {
		sub, err := nc.Subscribe(subj, func(*nats.Msg) {})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	alice := Grant{Name: "alice", Role: RoleDeploy}
	readOnly := Grant{Name: "alice", Role: RoleRead}
	elsewhere := Grant{Name: "alice", Role: RoleDeploy, Clusters: []string{"prod"}}

	for _, tt := range []struct {
		name, method, path string
		then               *Grant // the token's entry once changed; nil: revoked
		ends               bool
	}{
		{"event stream, revoked", "GET", "/deployment-engine/deployments/d-1/events", nil, true},
		{"event stream, lowered to read", "GET", "/deployment-engine/deployments/d-1/events", &readOnly, false},
		{"command, revoked", "GET", "/deployment-engine/config", nil, true},
		{"change, lowered to read", "POST", "/deployment-engine/deploy", &readOnly, true},
		{"event stream, limited to another cluster", "GET", "/deployment-engine/deployments/d-1/events", &elsewhere, true},
		{"command, limited to another cluster", "GET", "/deployment-engine/config", &elsewhere, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tokens.set(writeTok, &alice)
			stream := strings.HasSuffix(tt.path, "/events")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tt.method, ts.URL+tt.path, nil)
			req.Header.Set("Authorization", "Bearer "+writeTok)
			type answer struct {
				code int
				body string
				err  error
			}
			done := make(chan answer, 1)
			opened := make(chan struct{})
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				if stream {
					if line, _ := br.ReadString('\n'); line != "event: deployment\n" {
						done <- answer{err: fmt.Errorf("stream began with %q", line)}
						return
					}
				}
				close(opened)
				b, err := io.ReadAll(br)
				done <- answer{resp.StatusCode, string(b), err}
			}()
			if stream {
				select {
				case <-opened:
				case a := <-done:
					t.Fatalf("the stream did not open: %+v", a)
				case <-time.After(5 * time.Second):
					t.Fatal("the stream did not open")
				}
			} else {
				time.Sleep(300 * time.Millisecond) // the command waits on the bus
			}
			tokens.set(writeTok, tt.then)
			changed := time.Now()
			select {
			case a := <-done:
				if !tt.ends {
					t.Fatalf("ended when it should go on: %+v", a)
				}
				if took := time.Since(changed); took > time.Second {
					t.Fatalf("ended %v after the change", took)
				}
				if !stream && (a.code != http.StatusUnauthorized || !strings.Contains(a.body, "revoked")) {
					t.Fatalf("answer: %+v", a)
				}
			case <-time.After(1500 * time.Millisecond):
				if tt.ends {
					t.Fatal("still running 1.5 s after the change")
				}
			}
		})
	}
}

// runningDeployment answers every GET of a deployment on nc with id,
// running.
func runningDeployment(t *testing.T, nc *nats.Conn, id string) {
	t.Helper()
	running, _ := json.Marshal(contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: id, State: "running"}})
	sub, err := nc.Subscribe(subject.DeployGet(), func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "200")
		r.Data = running
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}
