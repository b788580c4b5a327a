package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

// prod is where the routes of the tests' named cluster are.
const prod = "/deployment-engine/clusters/prod"

// withProd starts an engine on the catalogs of dir, with a named cluster
// prod beside the default one, whose log the test shows if it fails.
func withProd(t *testing.T, dir string) *harness.Engine {
	t.Helper()
	e := engine(t, "--catalog", dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 80))
		}
	})
	if code, body := e.Do("POST", "/deployment-engine/clusters", map[string]any{"name": "prod"}); code != http.StatusCreated {
		t.Fatalf("make prod: %d %s", code, body)
	}
	return e
}

// withStarter is the e2e catalogs and the starter stack's, in one
// directory for --catalog.
func withStarter(t *testing.T) string {
	t.Helper()
	dir := e2eCatalogs(t)
	src, _ := filepath.Abs("../../planner/catalog/catalogs/starter")
	if out, err := exec.Command("cp", "-r", src, filepath.Join(dir, "starter")).CombinedOutput(); err != nil {
		t.Fatalf("copy the starter catalog: %v %s", err, out)
	}
	return dir
}

// Two clusters on one engine, as users run it (agents on): the default
// one runs the whole starter stack on two of the bed's nodes, prod a BOSH
// release on the two others; both deployed at the same time. Each one's
// deployment touched its own nodes only, each one's status and logs show
// its own instances only, each node's agent reports to the cluster that
// holds it and says so on disk; a node named by both is refused naming
// the cluster holding it; the manual's routes act on the default one.
func TestTwoClusters(t *testing.T) {
	// The whole starter stack on the bed's first two nodes.
	stack := map[string][]string{
		"haproxy": ips(0), "etcd": ips(0), "nats": ips(0),
		"web": ips(1), "redis": ips(1), "database": ips(1),
	}
	e := withProd(t, withStarter(t))
	defer resetBosh(t, "dummy_with_properties", "dummy_with_package")
	setSleep(t, 0, bed.Nodes...)
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", config("starter", stack)); code != http.StatusCreated {
		t.Fatalf("the default cluster's config: %d %s", code, body)
	}
	code, body := e.Do("POST", prod+"/config?check=0", config("e2e", map[string][]string{"delta": ips(1, 2, 3)}))
	if code != http.StatusBadRequest || !strings.Contains(string(body), "node "+ips(1)[0]+" belongs to cluster default") {
		t.Fatalf("prod's config naming a node of the default cluster: %d %s", code, body)
	}
	dummy, err := os.ReadFile(filepath.Join(sharedReleases, "dummy-release.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	// Releases are the engine's, as a BOSH director's are: each cluster's
	// config names the one it runs.
	if code, body := e.Do("POST", prod+"/releases", dummy); code != http.StatusCreated {
		t.Fatalf("prod's release: %d %s", code, body)
	}
	jobs := map[string]any{"dummy_with_properties": map[string]any{"dummy_with_properties": map[string]any{"echo_value": "prod"}}}
	if code, body := e.Do("POST", prod+"/config?check=0", boshConfig("dummy", map[string][]string{"dummy_with_package": ips(2), "dummy_with_properties": ips(3)}, jobs)); code != http.StatusCreated {
		t.Fatalf("prod's config: %d %s", code, body)
	}

	// A subscriber follows each cluster with one subscription.
	seen := followSteps(t, e, map[string]string{"/deployment-engine": subject.AllDeploySteps,
		prod: "de.cluster.prod.evt.deploy.*." + string(subject.DeployStep)})

	// Both at once.
	ended := waitAll(t, e, deployAll(t, e, "/deployment-engine", prod), 8*time.Minute)
	ids := map[string]string{}
	for p, d := range ended {
		ids[p] = d.ID
	}
	own := map[string][]string{"/deployment-engine": ips(0, 1), prod: ips(2, 3)}
	for p, d := range ended {
		if d.State != contract.DeploySucceeded {
			t.Fatalf("deployment of %s: %s\n%s", p, d.State, failures(d))
		}
		for _, s := range d.Steps {
			if !slices.Contains(own[p], s.Node) {
				t.Errorf("the deployment of %s ran step %s on %s, not its node", p, s.ID, s.Node)
			}
		}
	}
	// Each cluster's step events name its deployment and its nodes alone.
	for p, d := range ended {
		var got []contract.StepEvent
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if got = seen(p); len(got) >= len(d.Steps) || time.Now().After(deadline) {
				break
			}
		}
		if len(got) < len(d.Steps) {
			t.Errorf("the subscriber of %s saw %d step events, want at least one per step (%d)", p, len(got), len(d.Steps))
		}
		for _, ev := range got {
			if ev.Deployment != d.ID || !slices.Contains(own[p], ev.Node) {
				t.Errorf("the subscriber of %s saw a step event of deployment %s on %s, not its own", p, ev.Deployment, ev.Node)
			}
		}
	}
	// Each node says which engine and which cluster hold it.
	for i, want := range []string{"default", "default", "prod", "prod"} {
		if got := inNode(t, i, "cat "+nodefs.Cluster); strings.TrimSpace(got) != want {
			t.Errorf("node %s says it belongs to cluster %q, want %s", ips(i)[0], got, want)
		}
	}
	if got := backendsWithin("http://"+bed.Nodes[0].IP+"/", func(got map[string]bool) bool { return got[ips(1)[0]] }); !got[ips(1)[0]] {
		t.Errorf("the default cluster's haproxy reaches %v, want its web node %s", got, ips(1)[0])
	}
	// Each cluster's deployments are its own.
	if code, body := e.Do("GET", "/deployment-engine/deployments/"+ids[prod], nil); code != http.StatusNotFound {
		t.Errorf("prod's deployment through the default cluster's route: %d %s", code, body)
	}

	// Each status shows its own cluster's instances, running; each node's
	// agent reports to its cluster.
	var mine []string
	for comp, nodes := range stack {
		mine = append(mine, comp+" "+nodes[0])
	}
	slices.Sort(mine)
	want := map[string][]string{"/deployment-engine": mine,
		prod: {"dummy_with_package " + ips(2)[0], "dummy_with_properties " + ips(3)[0]}}
	for p, w := range want {
		var got []string
		var st []statusEntry
		for deadline := time.Now().Add(reportWithin); ; time.Sleep(time.Second) {
			code, body := e.Do("GET", p+"/status", nil)
			st = nil
			if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
				t.Fatalf("status of %s: %d %s", p, code, body)
			}
			got = nil
			for _, s := range st {
				if s.Status == contract.StatusRunning {
					got = append(got, s.Comp+" "+s.Ip)
				}
			}
			slices.Sort(got)
			if slices.Equal(got, w) || time.Now().After(deadline) {
				break
			}
		}
		if len(st) != len(w) || !slices.Equal(got, w) {
			t.Errorf("status of %s: %+v, want %v RUNNING alone", p, st, w)
		}
	}
	// Each cluster's logs are its own.
	for p, w := range map[string][2]string{"/deployment-engine": {"web_", "dummy_"}, prod: {"dummy_", "web_"}} {
		code, body := e.Do("GET", p+"/download", nil)
		var names []string
		if code != http.StatusOK || json.Unmarshal(body, &names) != nil {
			t.Fatalf("logs of %s: %d %s", p, code, body)
		}
		own, other := false, false
		for _, n := range names {
			own = own || strings.HasPrefix(n, w[0])
			other = other || strings.HasPrefix(n, w[1])
		}
		if !own || other {
			t.Errorf("logs of %s: %v, want %s* and no %s*", p, names, w[0], w[1])
		}
	}
	for deadline := time.Now().Add(reportWithin); ; time.Sleep(time.Second) {
		up := nodesUp(t, e)
		want := map[string]string{ips(0)[0]: "default", ips(1)[0]: "default", ips(2)[0]: "prod", ips(3)[0]: "prod"}
		if len(up) == len(want) && func() bool {
			for ip, c := range want {
				if up[ip] != c {
					return false
				}
			}
			return true
		}() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents reporting, by node: %v, want %v", up, want)
		}
	}

	// Prometheus finds each cluster's node targets labelled with it.
	code, body = e.Do("GET", prod+"/prometheus/targets", nil)
	var targets []contract.SDTarget
	if code != http.StatusOK || json.Unmarshal(body, &targets) != nil || len(targets) != 2 {
		t.Fatalf("prod's targets: %d %s", code, body)
	}
	for _, tg := range targets {
		if tg.Labels["cluster"] != "prod" || !slices.Contains(ips(2, 3), tg.Labels["node"]) {
			t.Errorf("prod's target %+v", tg)
		}
	}

	// The list of clusters says which holds what.
	code, body = e.Do("GET", "/deployment-engine/clusters", nil)
	var cs []contract.Cluster
	if code != http.StatusOK || json.Unmarshal(body, &cs) != nil || len(cs) != 2 ||
		cs[0].Name != "default" || !slices.Equal(sorted(cs[0].Nodes), ips(0, 1)) || cs[1].Name != "prod" || !slices.Equal(sorted(cs[1].Nodes), ips(2, 3)) {
		t.Errorf("clusters: %d %s", code, body)
	}
}

// followSteps subscribes as the NATS observer to each subject (by its
// cluster's prefix) and returns what each subscription has received.
func followSteps(t *testing.T, e *harness.Engine, subjects map[string]string) func(prefix string) []contract.StepEvent {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(e.Data, "nats-observer"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://%s:4222", bed.Home), nats.UserInfo("observer", strings.TrimSpace(string(pw))),
		nats.RootCAs(filepath.Join(e.Data, "tls", "cert.pem")))
	if err != nil {
		t.Fatalf("observer connect: %v", err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	got := map[string][]contract.StepEvent{}
	for p, subj := range subjects {
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) {
			var ev contract.StepEvent
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Errorf("a step event on %s: %v %s", m.Subject, err, m.Data)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			got[p] = append(got[p], ev)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func(p string) []contract.StepEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got[p])
	}
}

// sorted is a sorted copy of s.
func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// deployAll starts a deployment of each cluster (its routes' prefix), at
// once, and returns their ids by prefix.
func deployAll(t *testing.T, e *harness.Engine, prefixes ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, p := range prefixes {
		code, body := e.Do("POST", p+"/deploy", nil)
		var d struct{ ID string }
		if code != http.StatusAccepted || json.Unmarshal(body, &d) != nil || d.ID == "" {
			t.Fatalf("deploy %s: %d %s", p, code, body)
		}
		ids[p] = d.ID
	}
	return ids
}

// waitAll waits for every deployment of ids (by their cluster's prefix)
// to end, within.
func waitAll(t *testing.T, e *harness.Engine, ids map[string]string, within time.Duration) map[string]contract.Deployment {
	t.Helper()
	ended := map[string]contract.Deployment{}
	for deadline := time.Now().Add(within); len(ended) < len(ids); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("deployments not ended within %s: %v", within, ids)
		}
		for p, id := range ids {
			code, body, err := e.DoErr(context.Background(), "GET", p+"/deployments/"+id, nil)
			if err != nil {
				continue // the engine is starting again
			}
			var d contract.Deployment
			if code != http.StatusOK || json.Unmarshal(body, &d) != nil {
				t.Fatalf("deployment %s of %s: %d %s", id, p, code, body)
			}
			if d.State != contract.DeployRunning && d.State != contract.DeployPending {
				ended[p] = d
			}
		}
	}
	return ended
}

// An engine stopped (kill -9) in the middle of deployments of two
// clusters resumes both, and every step ran once on its node.
func TestTwoClustersResume(t *testing.T) {
	e := withProd(t, catalogDir(t))
	setSleep(t, 2, bed.Nodes...)
	storeE2E(t, e, map[string][]string{"alpha": ips(0, 1)})
	if code, body := e.Do("POST", prod+"/config?check=0", config("e2e", map[string][]string{"alpha": ips(2, 3), "beta": ips(3)})); code != http.StatusCreated {
		t.Fatalf("prod's config: %d %s", code, body)
	}
	ids := deployAll(t, e, "/deployment-engine", prod)
	time.Sleep(3 * time.Second)
	e.Kill9()
	e.Restart()
	for p, d := range waitAll(t, e, ids, 5*time.Minute) {
		if d.State != contract.DeploySucceeded {
			t.Fatalf("the resumed deployment of %s: %s\n%s", p, d.State, failures(d))
		}
	}
	for i, n := range bed.Nodes {
		want := "alpha install\n"
		if i == 3 {
			want += "beta install\n"
		}
		if got := runs(t, n); got != want {
			t.Errorf("%s ran %q, want %q (a step ran twice or not at all)", n.IP, got, want)
		}
	}
}

// nodesUp are the nodes whose agent reported, each with the cluster whose
// monitor saw it (de_node_up's cluster label).
func nodesUp(t *testing.T, e *harness.Engine) map[string]string {
	t.Helper()
	resp, err := http.Get(e.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if f := families["de_node_up"]; f != nil {
		for _, m := range f.Metric {
			if m.GetGauge().GetValue() != 1 {
				continue
			}
			var node, cluster string
			for _, l := range m.Label {
				switch l.GetName() {
				case "node":
					node = l.GetValue()
				case "cluster":
					cluster = l.GetValue()
				}
			}
			out[node] = cluster
		}
	}
	return out
}

// Deleting a cluster drains and removes each of its instances and takes
// the engine off its nodes — no monit check, file, marker, claim or agent
// of the engine is left there — and forgets the cluster, while the other
// cluster runs on: the starter stack's haproxy and web, whose instances
// never go down and through whose haproxy no request fails meanwhile.
func TestDeleteCluster(t *testing.T) {
	e := withProd(t, withStarter(t))
	setSleep(t, 0, bed.Nodes...)
	starter := func(web ...int) map[string]any {
		return config("starter", map[string][]string{"haproxy": ips(0), "web": ips(web...)})
	}
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", starter(1)); code != http.StatusCreated {
		t.Fatalf("the default cluster's config: %d %s", code, body)
	}
	if code, body := e.Do("POST", prod+"/config?check=0", config("e2e", map[string][]string{"delta": ips(2, 3)})); code != http.StatusCreated {
		t.Fatalf("prod's config: %d %s", code, body)
	}
	for p, d := range waitAll(t, e, deployAll(t, e, "/deployment-engine", prod), 8*time.Minute) {
		if d.State != contract.DeploySucceeded {
			t.Fatalf("deployment of %s: %s\n%s", p, d.State, failures(d))
		}
	}
	running := func(st []statusEntry) bool {
		n := 0
		for _, s := range st {
			if s.Status == contract.StatusRunning {
				n++
			}
		}
		return len(st) == 2 && n == 2
	}
	waitFor(t, e, reportWithin, "the default cluster's haproxy and web RUNNING", running)
	pids := func() string { return inNode(t, 0, "pgrep -o -x haproxy") + inNode(t, 1, "pgrep -o -x nginx") }
	before := pids()
	haproxy := "http://" + bed.Nodes[0].IP + "/"
	if got := backendsWithin(haproxy, func(got map[string]bool) bool { return got[ips(1)[0]] }); !got[ips(1)[0]] {
		t.Fatalf("haproxy reaches %v before prod's delete, want the web node %s", got, ips(1)[0])
	}
	load := hammer(haproxy)
	defer load.stop()

	code, body := e.Do("DELETE", "/deployment-engine/clusters/prod", nil)
	var del contract.ClusterDeleted
	if code != http.StatusAccepted || json.Unmarshal(body, &del) != nil || del.ID == "" {
		t.Fatalf("delete prod: %d %s", code, body)
	}
	if code, body := e.Do("GET", "/deployment-engine/clusters/prod", nil); code != http.StatusOK || !strings.Contains(string(body), `"deleting":"`+del.ID+`"`) {
		t.Errorf("prod while it is deleted: %d %s", code, body)
	}
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if st := status(t, e); !running(st) {
			t.Fatalf("the default cluster's instances during prod's delete: %+v", st)
		}
		code, _ := e.Do("GET", "/deployment-engine/clusters/prod", nil)
		if code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prod not gone within 4 min of its delete")
		}
	}
	for _, i := range []int{2, 3} {
		left := inNode(t, i, `found=""
for p in /etc/monit/conf.d/delta /etc/monit/conf.d/de-agent /etc/e2e/delta.conf /var/lib/deployment-engine /usr/local/bin/de-agent; do [ -e "$p" ] && found="$found $p"; done
pgrep -f '^/usr/local/bin/de-agen[t] ' >/dev/null && found="$found agent-process"
pgrep -f '^/bin/slee[p] 100002$' >/dev/null && found="$found delta-process"
monit summary 2>/dev/null | grep -q delta && found="$found monit:delta"
echo "$found"`)
		if strings.TrimSpace(left) != "" {
			t.Errorf("node %s after prod's delete still holds:%s", ips(i)[0], left)
		}
	}
	served, failed, why := load.stop()
	t.Logf("through the default cluster's haproxy during prod's delete: %d requests served, %d failed", served, failed)
	if failed != 0 || served == 0 {
		t.Errorf("during prod's delete %d requests through the default cluster's haproxy failed (%d served): %v", failed, served, why)
	}
	if got := pids(); got != before {
		t.Errorf("the default cluster's haproxy or web restarted during prod's delete: pids %q, then %q", before, got)
	}
	// The nodes are free: the default cluster may take them.
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", starter(1, 2)); code != http.StatusCreated {
		t.Errorf("the default cluster's config with a node of the deleted cluster: %d %s", code, body)
	}
}
