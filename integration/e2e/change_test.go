package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
)

// plan is the part of a plan the tests read.
type plan struct {
	ID      string `json:"id"`
	Changes int    `json:"changes"`
	Drifted int    `json:"drifted"`
	Nodes   []struct {
		IP      string `json:"ip"`
		Error   string `json:"error"`
		Actions []struct {
			Component, Action, Why string
			Files                  []struct{ Path, Diff string }
		} `json:"actions"`
		Drift []struct{ Component, Path, Want, Found, Diff string } `json:"drift"`
	} `json:"nodes"`
}

func getPlan(t *testing.T, e *harness.Engine, body any) plan {
	t.Helper()
	code, b := e.Do("POST", "/deployment-engine/plan", body)
	if code != 200 {
		t.Fatalf("plan: %d %s", code, b)
	}
	var p plan
	if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
		t.Fatalf("plan reply %s", b)
	}
	for _, n := range p.Nodes {
		if n.Error != "" {
			t.Errorf("plan could not read %s: %s", n.IP, n.Error)
		}
	}
	return p
}

// loop asks haproxy for the page every 20 ms and counts what fails.
type loop struct {
	url            string
	mu             sync.Mutex
	served, failed int
	pages          map[string]int
	stop, done     chan struct{}
}

func startLoop(url string) *loop {
	l := &loop{url: url, pages: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		client := &http.Client{Timeout: 3 * time.Second}
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			resp, err := client.Get(l.url)
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			l.mu.Lock()
			if err != nil || resp.StatusCode != 200 {
				l.failed++
			} else {
				l.served++
				l.pages[pageVersion(string(body))]++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// counts returns what the loop saw since the last call, and resets it.
func (l *loop) counts() (served, failed int, pages map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	served, failed, pages = l.served, l.failed, l.pages
	l.served, l.failed, l.pages = 0, 0, map[string]int{}
	return
}

func (l *loop) end() { close(l.stop); <-l.done }

func pageVersion(body string) string {
	for _, v := range []string{"v2", "v3"} {
		if strings.Contains(body, "page "+v) {
			return v
		}
	}
	return "v1"
}

// page reads one web node's page straight from nginx.
func page(t *testing.T, ip string) string {
	t.Helper()
	resp, err := http.Get("http://" + ip + ":8080/")
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return pageVersion(string(b))
}

// nodeState digests what a plan must leave alone on every node: the
// engine's markers and the files it renders.
func nodeState(t *testing.T) string {
	t.Helper()
	const script = `find /var/lib/deployment-engine/applied /etc/de-web /var/www/de-web /etc/haproxy /etc/monit/conf.d -type f 2>/dev/null | sort | xargs -r sha256sum`
	var b strings.Builder
	for _, n := range bed.Nodes {
		out, err := n.Exec(context.Background(), script)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(n.IP + "\n" + string(out))
	}
	return b.String()
}

// storeState digests the engine's config and deployments buckets on disk
// (their message blocks, which a write to either changes), and what the
// scheduler bucket holds of deployments and configs as the API lists them.
// Left out: the streams' index.db, which JetStream rewrites on a timer, and
// the scheduler bucket's files, where the schedules' lease is renewed every
// few seconds (a CI run saw one of them land between two reads).
func storeState(t *testing.T, e *harness.Engine) string {
	t.Helper()
	h := sha256.New()
	for _, path := range []string{"/deployment-engine/deployments", "/deployment-engine/config/history"} {
		code, body := e.Do("GET", path, nil)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		h.Write(body)
	}
	var files []string
	_ = filepath.WalkDir(e.Data, func(p string, d fs.DirEntry, err error) error {
		bucket := strings.Contains(p, "KV_DE_CONFIG") || strings.Contains(p, "KV_DE_DEPLOYMENTS")
		if err == nil && !d.IsDir() && bucket && strings.HasSuffix(p, ".blk") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		h.Write([]byte(f))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// starterCatalogs copies the starter catalog into a directory of its own
// three times, without SHA256SUMS (the engine then holds each to what it
// read at start): starter as it ships, starter_v2 whose page says "page v2",
// and starter_v3 whose page says "page v3" and whose nginx config fails.
// A config picks the version with its catalog property.
func starterCatalogs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, _ := filepath.Abs("../../planner/catalog/catalogs/starter")
	for _, v := range []string{"starter", "starter_v2", "starter_v3"} {
		dst := filepath.Join(dir, v)
		if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("copy catalog: %v %s", err, out)
		}
		_ = os.Remove(filepath.Join(dst, "SHA256SUMS"))
		cj := filepath.Join(dst, "catalog.json")
		b, _ := os.ReadFile(cj)
		b = []byte(strings.Replace(string(b), `"name": "starter"`, `"name": "`+v+`"`, 1))
		if err := os.WriteFile(cj, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if v == "starter" {
			continue
		}
		version := strings.TrimPrefix(v, "starter_")
		tmpl := "<!doctype html>\n<title>web {{.Index}}</title>\n<h1>web {{.Index}} on {{.Node}} ({{.Node}})</h1>\n<p>page " + version + "</p>\n"
		if err := os.WriteFile(filepath.Join(dst, "templates", "web-index.html"), []byte(tmpl), 0o644); err != nil {
			t.Fatal(err)
		}
		if version == "v3" {
			conf := filepath.Join(dst, "templates", "web-nginx.conf")
			b, _ := os.ReadFile(conf)
			b = append(b, []byte("no_such_directive on;\n")...)
			if err := os.WriteFile(conf, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// planCLI is `deployment-engine plan [args]` against e.
func planCLI(e *harness.Engine, args ...string) *exec.Cmd {
	cmd := exec.Command(e.Bin, append([]string{"plan", "--server", "http://" + e.Addr}, args...)...)
	cmd.Env = append(os.Environ(), "DE_API_TOKEN="+e.Token)
	return cmd
}

// getDeployment reads a deployment with its batches.
func getDeployment(t *testing.T, e *harness.Engine, id string) contract.Deployment {
	t.Helper()
	d, _, err := e.Client().Deployment(context.Background(), id)
	if err != nil {
		t.Fatalf("deployment %s: %v", id, err)
	}
	return d
}

// started starts what method path answers 202 {"id"} for and waits for it.
func started(t *testing.T, e *harness.Engine, method, path string, body any) contract.Deployment {
	t.Helper()
	code, b := e.Do(method, path, body)
	if code != 202 {
		t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(b, &r)
	wait(t, e, r.ID, 5*time.Minute)
	return getDeployment(t, e, r.ID)
}

// oneAtATime checks that the instances of comp changed one after another:
// each instance's steps after every step of the one before.
func oneAtATime(t *testing.T, d contract.Deployment, comp string, want int) {
	t.Helper()
	steps := map[string]struct{ s, f *time.Time }{}
	for _, st := range d.Steps {
		steps[st.ID] = struct{ s, f *time.Time }{st.Started, st.Finished}
	}
	var prevEnd *time.Time
	n := 0
	for _, b := range d.Batches {
		if b.Component != comp {
			continue
		}
		n++
		if len(b.Nodes) != 1 || b.State != "healthy" {
			t.Errorf("batch %d of %s: %+v", b.Index, comp, b)
		}
		var first, last *time.Time
		for _, id := range b.Steps {
			st := steps[id]
			if st.s != nil && (first == nil || st.s.Before(*first)) {
				first = st.s
			}
			if st.f != nil && (last == nil || st.f.After(*last)) {
				last = st.f
			}
		}
		if prevEnd != nil && first != nil && first.Before(*prevEnd) {
			t.Errorf("batch %d of %s started at %s, before the batch before it ended (%s)", b.Index, comp, first, prevEnd)
		}
		prevEnd = last
	}
	if n != want {
		t.Errorf("%d batches of %s, want %d: %+v", n, comp, want, d.Batches)
	}
}

// Changing a running cluster safely: a plan shows what a deploy would do
// and changes nothing; a stale plan refuses to deploy; a change rolls out
// one instance at a time behind haproxy, a broken one halts after its
// canary (and reverts), a rollback restores the page before, and a rolling
// restart goes one instance at a time, all while a client keeps asking
// haproxy and no request fails.
func TestChangeSafely(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", starterCatalogs(t))
	web, lb := ips(0, 1, 2), bed.Nodes[3].IP
	comps := map[string][]string{"web": web, "haproxy": {lb}}
	cfgV := func(v string) map[string]any {
		c := config("starter", comps)
		if v != "v1" {
			c["properties"].(map[string]any)["catalog"] = "starter_" + v
		}
		return c
	}
	if code, body := e.Do("POST", "/deployment-engine/config", cfgV("v1")); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	if d := wait(t, e, deploy(t, e), 8*time.Minute); d.State != "succeeded" {
		t.Fatalf("first deployment:\n%s", failures(d))
	}
	l := startLoop("http://" + lb + "/")
	defer func() {
		if l != nil {
			l.end()
		}
	}()
	// haproxy's checks (every 1 s) find every backend.
	time.Sleep(3 * time.Second)
	noFailures := func(t *testing.T, what string, want ...string) {
		t.Helper()
		served, failed, pages := l.counts()
		t.Logf("%s: %d requests served, %d failed, pages %v", what, served, failed, pages)
		if failed != 0 || served == 0 {
			t.Errorf("%s: %d requests failed (%d served)", what, failed, served)
		}
		for p := range pages {
			if !slices.Contains(want, p) {
				t.Errorf("%s: haproxy served page %s (%d times), want only %v", what, p, pages[p], want)
			}
		}
	}
	_, _, _ = l.counts()

	t.Run("plan of an unchanged cluster", func(t *testing.T) {
		p := getPlan(t, e, nil)
		if p.Changes != 0 || p.Drifted != 0 {
			t.Errorf("plan of the deployed config: %d actions, %d drifted: %+v", p.Changes, p.Drifted, p.Nodes)
		}
		if out, err := planCLI(e).CombinedOutput(); err != nil || !strings.Contains(string(out), "no changes") {
			t.Errorf("CLI plan of no change: %v\n%s", err, out)
		}
	})

	t.Run("plan of a new page", func(t *testing.T) {
		nodes, store := nodeState(t), storeState(t, e)
		p := getPlan(t, e, cfgV("v2"))
		for _, n := range p.Nodes {
			var files []string
			for _, a := range n.Actions {
				if n.IP == lb && !strings.HasPrefix(a.Action, "drain-web-") && !strings.HasPrefix(a.Action, "ready-web-") {
					t.Errorf("haproxy's node: %+v, want only web's drains and readies", a)
				}
				if n.IP != lb && a.Component != "web" {
					t.Errorf("node %s: action on %s: %+v", n.IP, a.Component, a)
				}
				for _, f := range a.Files {
					files = append(files, f.Path)
					if !strings.Contains(f.Diff, "+<p>page v2</p>") || !strings.HasPrefix(f.Diff, "--- a/var/www/de-web/index.html") {
						t.Errorf("node %s: diff of %s:\n%s", n.IP, f.Path, f.Diff)
					}
				}
			}
			if want := map[bool]string{true: "", false: "/var/www/de-web/index.html"}[n.IP == lb]; strings.Join(files, " ") != want {
				t.Errorf("node %s: files in the plan %v, want %q", n.IP, files, want)
			}
		}
		f := filepath.Join(t.TempDir(), "v2.json")
		b, _ := json.Marshal(cfgV("v2"))
		_ = os.WriteFile(f, b, 0o600)
		out, err := planCLI(e, f).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 10 || !strings.Contains(string(out), "+<p>page v2</p>") {
			t.Errorf("CLI plan of pending changes: %v (want exit 10)\n%s", err, out)
		}
		if nodeState(t) != nodes {
			t.Errorf("the plan changed files on the nodes")
		}
		if storeState(t, e) != store {
			t.Errorf("the plan wrote to the config, deployments or scheduler bucket")
		}
		for _, ip := range web {
			if got := page(t, ip); got != "v1" {
				t.Errorf("%s serves %s after a plan", ip, got)
			}
		}
	})

	t.Run("drift", func(t *testing.T) {
		before := getPlan(t, e, nil)
		if _, err := node(web[1]).Exec(context.Background(), "echo '# changed by hand' >> /etc/de-web/nginx.conf"); err != nil {
			t.Fatal(err)
		}
		p := getPlan(t, e, nil)
		found := false
		for _, pn := range p.Nodes {
			for _, d := range pn.Drift {
				if pn.IP == web[1] && d.Path == "/etc/de-web/nginx.conf" && strings.Contains(d.Diff, "+# changed by hand") {
					found = true
				} else {
					t.Errorf("unexpected drift on %s: %+v", pn.IP, d)
				}
			}
		}
		if !found || p.Drifted != 1 || p.Changes != 0 {
			t.Errorf("the hand-edited file is not the plan's one drift: %+v", p.Nodes)
		}
		if p.ID == before.ID {
			t.Errorf("the plan id did not change with the node's files")
		}
	})

	t.Run("stale plan", func(t *testing.T) {
		if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfgV("v2")); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		p := getPlan(t, e, nil)
		changed := cfgV("v2")
		changed["properties"].(map[string]any)["disksize"] = "2"
		if code, body := e.Do("POST", "/deployment-engine/config?check=0", changed); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		code, body := e.Do("POST", "/deployment-engine/deploy?plan="+p.ID, nil)
		if code != 409 || !strings.Contains(string(body), "stale") {
			t.Errorf("deploy of a stale plan: %d %s, want 409", code, body)
		}
		if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfgV("v2")); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		for _, q := range []string{"plan=zz", "canaries=-1", "max_in_flight=0", "max_in_flight=101%25", "auto_revert=maybe"} {
			if code, body := e.Do("GET", "/deployment-engine/deploy?"+q, nil); code != 400 {
				t.Errorf("deploy?%s: %d %s, want 400", q, code, body)
			}
		}
	})

	t.Run("roll out the plan one at a time", func(t *testing.T) {
		_, _, _ = l.counts()
		p := getPlan(t, e, nil)
		d := started(t, e, "GET", "/deployment-engine/deploy?canaries=1&max_in_flight=1&plan="+p.ID, nil)
		if d.State != "succeeded" {
			t.Fatalf("deployment of the new page:\n%s", failures(d))
		}
		oneAtATime(t, d, "web", 3)
		if len(d.Batches) == 0 || !d.Batches[0].Canary {
			t.Errorf("no canary first: %+v", d.Batches)
		}
		for _, ip := range web {
			if got := page(t, ip); got != "v2" {
				t.Errorf("%s serves %s, want v2", ip, got)
			}
		}
		noFailures(t, "rollout of v2", "v1", "v2")
		if p := getPlan(t, e, nil); p.Changes != 0 || p.Drifted != 0 {
			t.Errorf("plan after the deployment: %d actions, %d drifted: %+v", p.Changes, p.Drifted, p.Nodes)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		d := started(t, e, "POST", "/deployment-engine/rollback", nil)
		if d.State != "succeeded" || d.Kind != "rollback" {
			t.Fatalf("rollback: %s %s\n%s", d.Kind, d.State, failures(d))
		}
		for _, ip := range web {
			if got := page(t, ip); got != "v1" {
				t.Errorf("%s serves %s after the rollback, want v1", ip, got)
			}
		}
		code, body := e.Do("GET", "/deployment-engine/config", nil)
		if code != 200 || !strings.Contains(string(body), `"catalog":"starter"`) {
			t.Errorf("stored config after the rollback: %d %s", code, body)
		}
		noFailures(t, "rollback", "v1", "v2")
	})

	canary := ""
	t.Run("a broken change halts after the canary", func(t *testing.T) {
		if code, body := e.Do("POST", "/deployment-engine/config", cfgV("v3")); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		d := started(t, e, "GET", "/deployment-engine/deploy", nil)
		if d.State != "failed" || !strings.Contains(d.Error, "halted: the canary of web") || !strings.Contains(d.Error, "left as they were") {
			t.Fatalf("a broken change: %s %q", d.State, d.Error)
		}
		canary = d.Batches[0].Nodes[0]
		for _, ip := range web {
			if ip != canary {
				if got := page(t, ip); got != "v1" {
					t.Errorf("%s serves %s after the halt, want v1", ip, got)
				}
			}
		}
		noFailures(t, "halted rollout", "v1")
	})

	t.Run("auto_revert", func(t *testing.T) {
		known := map[string]bool{}
		_, body := e.Do("GET", "/deployment-engine/deployments", nil)
		var before []struct{ ID string }
		_ = json.Unmarshal(body, &before)
		for _, x := range before {
			known[x.ID] = true
		}
		d := started(t, e, "GET", "/deployment-engine/deploy?auto_revert=true", nil)
		if d.State != "failed" || !strings.Contains(d.Error, "halted") {
			t.Fatalf("a broken change: %s %q", d.State, d.Error)
		}
		deadline := time.Now().Add(3 * time.Minute)
		var revert contract.Deployment
		for time.Now().Before(deadline) && revert.State != "succeeded" && revert.State != "failed" {
			time.Sleep(500 * time.Millisecond)
			_, body := e.Do("GET", "/deployment-engine/deployments", nil)
			var list []struct{ ID, Kind string }
			_ = json.Unmarshal(body, &list)
			for _, x := range list {
				if x.Kind == "revert" && !known[x.ID] {
					revert = getDeployment(t, e, x.ID)
				}
			}
		}
		if revert.State != "succeeded" {
			_, local := e.Do("GET", "/deployment-engine/logs/local.log", nil)
			t.Fatalf("no revert succeeded after the halt: %+v\nlocal.log:\n%s\nengine log:\n%s", revert, tail(string(local), 15), tail(e.Log(), 30))
		}
		if got := page(t, canary); got != "v1" {
			t.Errorf("the canary %s serves %s after the revert, want v1", canary, got)
		}
		time.Sleep(2 * time.Second) // haproxy's check takes the canary back
		noFailures(t, "halted rollout and its revert", "v1")
	})

	t.Run("rolling restart", func(t *testing.T) {
		pids := func() map[string]string {
			out := map[string]string{}
			for _, ip := range web {
				b, err := node(ip).Exec(context.Background(), "cat /run/de-web.pid")
				if err != nil {
					t.Fatal(err)
				}
				out[ip] = strings.TrimSpace(string(b))
			}
			return out
		}
		before := pids()
		d := started(t, e, "PUT", "/deployment-engine/restart", map[string]any{"name": "web", "ip": "0.0.0.0", "max_in_flight": 1})
		if d.State != "succeeded" || d.Kind != "restart" {
			t.Fatalf("rolling restart: %s %s\n%s", d.Kind, d.State, failures(d))
		}
		oneAtATime(t, d, "web", 3)
		after := pids()
		for _, ip := range web {
			if after[ip] == before[ip] || after[ip] == "" {
				t.Errorf("web on %s: pid %s before, %s after the restart", ip, before[ip], after[ip])
			}
		}
		noFailures(t, "rolling restart", "v1")
	})

	t.Run("history and stop of every instance", func(t *testing.T) {
		code, body := e.Do("GET", "/deployment-engine/config/history", nil)
		if code != 200 || strings.Contains(string(body), bed.KeyPath) || !strings.Contains(string(body), `"catalog":"starter_v3"`) || !strings.Contains(string(body), `"catalog":"starter_v2"`) {
			t.Errorf("history: %d %s", code, body)
		}
		// The client stops: every web instance goes.
		l.end()
		l = nil
		code, body = e.Do("PUT", "/deployment-engine/stop", map[string]string{"name": "web", "ip": "0.0.0.0"})
		if code != 200 || strings.Count(string(body), `"ok":true`) != 3 {
			t.Errorf("stop web 0.0.0.0: %d %s", code, body)
		}
	})
}
