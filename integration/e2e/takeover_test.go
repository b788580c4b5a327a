package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
)

// Nodes an engine that is gone claimed stay its own until an operator
// takes them over through the API: only that engine's claim is cleared,
// the audit names who did it, and the next deploy claims the nodes.
func TestTakeover(t *testing.T) {
	first := engine(t, "--no-agents", "--catalog", catalogDir(t))
	n := bed.Nodes[2]
	setSleep(t, 0, n)
	storeE2E(t, first, map[string][]string{"alpha": ips(2)})
	if d := wait(t, first, deploy(t, first), 3*time.Minute); d.State != "succeeded" {
		t.Fatalf("first engine's deployment: %s\n%s", d.State, failures(d))
	}
	first.Stop()

	next := harness.Start(t, harness.Options{Args: []string{"--no-agents", "--catalog", catalogDir(t)}})
	storeE2E(t, next, map[string][]string{"alpha": ips(2)})
	code, body := next.Do("GET", "/deployment-engine/deploy", nil)
	m := regexp.MustCompile(`owned by engine (e-[0-9a-z-]+)`).FindSubmatch(body)
	if code != 409 || m == nil || !strings.Contains(string(body), "/deployment-engine/takeover") {
		t.Fatalf("deploy onto the gone engine's node: %d %s (want 409 naming the engine and the takeover)", code, body)
	}
	gone := string(m[1])

	type reply struct {
		From    string
		Cleared int
		Nodes   []struct {
			IP, Owner, Error string
			Cleared          bool
		}
	}
	takeover := func(from string) (int, reply) {
		code, body := next.Do("POST", "/deployment-engine/takeover", map[string]any{"from": from})
		var r reply
		if code == 200 {
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("takeover reply %s: %v", body, err)
			}
		}
		return code, r
	}
	// Another engine's id leaves the node as it is; a malformed one and a
	// node outside the config are refused.
	if code, r := takeover("e-000000000000"); code != 200 || r.Cleared != 0 || len(r.Nodes) != 1 || r.Nodes[0].Owner != gone || r.Nodes[0].Cleared {
		t.Fatalf("takeover from an engine that owns nothing: %d %+v", code, r)
	}
	if owner := nodeOwner(t, n); owner != gone {
		t.Fatalf("the node's owner after a takeover from another engine: %q, want %q", owner, gone)
	}
	for _, bad := range []map[string]any{{"from": "e-x; rm -rf /"}, {"from": ""}, {"from": gone, "nodes": []string{"127.0.0.1"}}} {
		if code, body := next.Do("POST", "/deployment-engine/takeover", bad); code != 400 {
			t.Errorf("takeover %v: %d %s, want 400", bad, code, body)
		}
	}
	if code, r := takeover(gone); code != 200 || r.Cleared != 1 || !r.Nodes[0].Cleared || r.Nodes[0].Owner != gone {
		t.Fatalf("takeover from the gone engine: %d %+v", code, r)
	}
	if owner := nodeOwner(t, n); owner != "" {
		t.Fatalf("the node still names %q after the takeover", owner)
	}
	found := false
	for _, a := range audit(t, next, "action=takeover") {
		found = found || (a.Actor != "" && a.Code == 200)
	}
	if !found {
		t.Errorf("no audit entry of the takeover with its actor: %+v", audit(t, next, "action=takeover"))
	}
	if d := wait(t, next, deploy(t, next), 3*time.Minute); d.State != "succeeded" {
		t.Fatalf("deployment after the takeover: %s\n%s", d.State, failures(d))
	}
	if owner := nodeOwner(t, n); owner == "" || owner == gone {
		t.Errorf("after the deploy the node names %q, want the new engine", owner)
	}
}
