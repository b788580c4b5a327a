package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Permit names what a grant lacks: the role, the cluster, or both.
func TestPermit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		g       Grant
		need    Role
		cluster string
		want    string // "" for permitted
	}{
		{"role held", Grant{Name: "a", Role: RoleDeploy}, RoleOperate, "default", ""},
		{"role exact", Grant{Name: "a", Role: RoleOperate}, RoleOperate, "default", ""},
		{"role missing", Grant{Name: "alice", Role: RoleRead}, RoleOperate, "default",
			"needs the operate role; token alice has read (tokens are set in <data>/api-tokens)"},
		{"admin below", Grant{Name: "bob", Role: RoleDeploy}, RoleAdmin, "default", "needs the admin role; token bob has deploy"},
		{"cluster reached", Grant{Name: "a", Role: RoleRead, Clusters: []string{"prod", "default"}}, RoleRead, "default", ""},
		{"cluster not reached", Grant{Name: "ci", Role: RoleAdmin, Clusters: []string{"prod", "stage"}}, RoleRead, "default",
			"acts on cluster default; token ci reaches only prod, stage (tokens are set in <data>/api-tokens)"},
		{"both", Grant{Name: "ci", Role: RoleRead, Clusters: []string{"prod"}}, RoleDeploy, "dev",
			"needs the deploy role; token ci has read, and acts on cluster dev; token ci reaches only prod"},
		{"no clusters at all", Grant{Name: "z", Role: RoleAdmin, Clusters: []string{}}, RoleRead, "default", "acts on cluster default"},
		{"no role", Grant{Name: "z"}, RoleRead, "default", "needs the read role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Permit(tc.need, tc.cluster)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// The roles' names read back; write, the role before there were four,
// reads as deploy.
func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(r.String()); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r, got, err)
		}
	}
	if got, err := ParseRole("write"); err != nil || got != RoleAdmin {
		t.Errorf("ParseRole(write) = %v, %v; want admin", got, err)
	}
	for _, bad := range []string{"", "Read", "root", "writer"} {
		if _, err := ParseRole(bad); err == nil || !strings.Contains(err.Error(), "want read, operate, deploy or admin") {
			t.Errorf("ParseRole(%q): %v", bad, err)
		}
	}
}

// Every route acts on the default cluster: a token that does not reach it
// gets 403 naming the cluster on every route, whatever its role; a token
// that reaches it is held to its role alone.
func TestReachGatesEveryRoute(t *testing.T) {
	ts, _, _, h := rolesServer(t)
	routes := tableRoutes(t, h)
	path := strings.NewReplacer("{id}", "d-1", "{name}", "local.log", "{ip}", "10.0.0.1", "{cluster}", contract.DefaultCluster)
	sent := sentChanges{}
	for route, need := range routes {
		if route == "GET /clusters" {
			continue // on no one cluster: TestClusterRoutesReach
		}
		method, p, _ := strings.Cut(route, " ")
		p = prefix + path.Replace(p)
		t.Run(route, func(t *testing.T) {
			sent.add(t, route, Grant{Name: "prod-ci"})
			resp, body := do(t, method, ts.URL+p, "{}", "Authorization", "Bearer "+prodTok)
			want := method + " " + p + " acts on cluster default; token prod-ci reaches only prod"
			if need > RoleDeploy {
				// An admin's route: the deploy token lacks the role too.
				want = " acts on cluster default; token prod-ci reaches only prod"
			}
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), want) {
				t.Errorf("a token on prod alone: %d %s, want 403 %q", resp.StatusCode, body, want)
			}
			if need > RoleRead && need <= RoleDeploy && strings.Contains(string(body), "role") {
				t.Errorf("a deploy token's refusal names a role: %s", body)
			}
			resp, body = do(t, method, ts.URL+p, "{}", "Authorization", "Bearer "+wideTok)
			switch {
			case need > RoleRead && (resp.StatusCode != http.StatusForbidden || strings.Contains(string(body), "acts on cluster")):
				t.Errorf("a read token on default and prod: %d %s, want 403 for its role alone", resp.StatusCode, body)
			case need == RoleRead && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized):
				t.Errorf("a read token on default and prod refused: %d %s", resp.StatusCode, body)
			}
		})
	}
	// The refusals are audited under the token's name.
	for _, e := range auditOfActor(t, ts, "prod-ci", sent["prod-ci"]) {
		if e.Code != http.StatusForbidden || !strings.Contains(e.Detail, "acts on cluster default") {
			t.Errorf("audit entry of a refused change: %+v", e)
		}
	}
}

// A token that does not reach the default cluster follows none of its
// deployments' events; one that reaches it sees them.
func TestReachHidesEvents(t *testing.T) {
	ts, nc, _, _ := rolesServer(t)
	runningDeployment(t, nc, "d-1")
	step, _ := json.Marshal(contract.StepEvent{V: contract.Version, Deployment: "d-1", ID: "s-1", Node: "10.0.0.1",
		Component: "web", Action: "install", State: "running", Attempt: 1})
	if err := nc.Publish(subject.DeployEvent("d-1", subject.DeployStep), step); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	follow := func(tok string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+prefix+"/deployments/d-1/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// Read until the step arrives or the time is up.
		var got strings.Builder
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			got.WriteString(line)
			if err != nil || line == "event: step\n" {
				if err != nil && err != io.EOF && ctx.Err() == nil {
					t.Fatal(err)
				}
				return resp.StatusCode, got.String()
			}
		}
	}
	if code, got := follow(wideTok); code != http.StatusOK || !strings.Contains(got, "event: step\n") {
		t.Errorf("a token on default and prod: %d %q, want the step", code, got)
	}
	code, got := follow(prodTok)
	if code != http.StatusForbidden || strings.Contains(got, "event:") || !strings.Contains(got, "cluster default") {
		t.Errorf("a token on prod alone: %d %q, want 403 and no event", code, got)
	}
}

// No token's secret reaches a log line, an answer or the audit trail, on
// the paths that handle tokens: accepted, refused for its role or its
// reach, and unknown.
func TestTokensStayOutOfLogsAndAudit(t *testing.T) {
	ts, _, _, _, logs := rolesServerLogged(t)
	const unknown = "not-a-token-0123456789"
	secrets := []string{adminTok, readTok, operateTok, writeTok, rootTok, prodTok, wideTok, unknown}
	var answers strings.Builder
	for _, tok := range secrets {
		for _, rq := range []struct{ method, path string }{
			{"PUT", "/restart"}, {"POST", "/deploy"}, {"GET", "/status"}, {"POST", "/config?check=0"}, {"GET", "/nosuchroute"},
		} {
			resp, body := do(t, rq.method, ts.URL+prefix+rq.path, "{}", "Authorization", "Bearer "+tok)
			answers.Write(body)
			for k, v := range resp.Header {
				answers.WriteString(k + ": " + strings.Join(v, ",") + "\n")
			}
		}
	}
	// Each token's three changes are in the audit: restart, deploy, config.
	for _, rt := range roleTokens {
		auditOfActor(t, ts, rt.grant.Name, 3)
	}
	auditOfActor(t, ts, "prod-ci", 3)
	auditOfActor(t, ts, "wide", 3)
	_, trail := do(t, "GET", ts.URL+prefix+"/audit", "", "Authorization", "Bearer "+adminTok)
	if !strings.Contains(string(trail), "token prod-ci reaches only prod") || !strings.Contains(logs.String(), "request failed") {
		t.Fatalf("the run left no trace to search: audit %s\nlog %s", trail, logs.String())
	}
	for _, secret := range secrets {
		for where, text := range map[string]string{"log": logs.String(), "answers": answers.String(), "audit": string(trail)} {
			if strings.Contains(text, secret) || strings.Contains(text, secret[:12]) {
				t.Errorf("the %s holds a token (%s…)", where, secret[:5])
			}
		}
	}
}
