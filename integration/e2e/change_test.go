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
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
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

// pageWithin waits until ip serves version want, and returns what it
// serves then.
func pageWithin(t *testing.T, ip, want string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := page(t, ip)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
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

// storeState digests the engine's config, deployments and scheduler buckets on disk
// (their block files): a write to either changes it.
func storeState(t *testing.T, e *harness.Engine) string {
	t.Helper()
	h := sha256.New()
	var files []string
	_ = filepath.WalkDir(e.Data, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.Contains(p, "KV_DE_CONFIG") || strings.Contains(p, "KV_DE_DEPLOYMENTS") || strings.Contains(p, "KV_DE_SCHEDULER")) {
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

// starterCatalog copies the starter catalog into a directory of its own,
// without SHA256SUMS (the engine then holds it to what it read at start),
// so that a test can give web's page a new version.
func starterCatalog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, _ := filepath.Abs("../../planner/catalog/catalogs/starter")
	if out, err := exec.Command("cp", "-r", src, filepath.Join(dir, "starter")).CombinedOutput(); err != nil {
		t.Fatalf("copy catalog: %v %s", err, out)
	}
	_ = os.Remove(filepath.Join(dir, "starter", "SHA256SUMS"))
	return dir
}

// setPage gives web's page template a version: the engine reads it when it
// starts again.
func setPage(t *testing.T, e *harness.Engine, dir, version string) {
	t.Helper()
	tmpl := "<!doctype html>\n<title>web {{.Index}}</title>\n<h1>web {{.Index}} on {{.Node}} ({{.Node}})</h1>\n"
	if version != "v1" {
		tmpl += "<p>page " + version + "</p>\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "starter", "templates", "web-index.html"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	e.Restart()
}

// planCLI is `deployment-engine plan` against e.
func planCLI(e *harness.Engine) *exec.Cmd {
	cmd := exec.Command(e.Bin, "plan", "--server", "http://"+e.Addr)
	cmd.Env = append(os.Environ(), "DE_API_TOKEN="+e.Token)
	return cmd
}

// Changing a running cluster safely: a plan shows what a deploy would do
// and changes nothing; a stale plan refuses to deploy; changes roll out
// behind haproxy while a client keeps asking it.
func TestChangeSafely(t *testing.T) {
	dir := starterCatalog(t)
	e := engine(t, "--no-agents", "--catalog", dir)
	web, lb := ips(0, 1, 2), bed.Nodes[3].IP
	comps := map[string][]string{"web": web, "haproxy": {lb}}
	cfg := config("starter", comps)
	if code, body := e.Do("POST", "/deployment-engine/config", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	if d := wait(t, e, deploy(t, e), 8*time.Minute); d.State != "succeeded" {
		t.Fatalf("first deployment:\n%s", failures(d))
	}
	l := startLoop("http://" + lb + "/")
	defer l.end()
	// haproxy's checks (every 1 s) find every backend.
	time.Sleep(3 * time.Second)

	t.Run("plan of an unchanged cluster", func(t *testing.T) {
		p := getPlan(t, e, nil)
		if p.Changes != 0 || p.Drifted != 0 {
			t.Errorf("plan of the deployed config: %d actions, %d drifted: %+v", p.Changes, p.Drifted, p.Nodes)
		}
		out, err := planCLI(e).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "no changes") {
			t.Errorf("CLI plan of no change: %v\n%s", err, out)
		}
	})

	var v2 string
	t.Run("plan of a new page", func(t *testing.T) {
		setPage(t, e, dir, "v2")
		nodes, store := nodeState(t), storeState(t, e)
		p := getPlan(t, e, nil)
		v2 = p.ID
		for _, n := range p.Nodes {
			isWeb := n.IP != lb
			if isWeb != (len(n.Actions) > 0) {
				t.Errorf("node %s (web: %v) has %d actions: %+v", n.IP, isWeb, len(n.Actions), n.Actions)
			}
			var diffs []string
			for _, a := range n.Actions {
				if a.Component != "web" {
					t.Errorf("node %s: action on %s: %+v", n.IP, a.Component, a)
				}
				for _, f := range a.Files {
					diffs = append(diffs, f.Path)
					if !strings.Contains(f.Diff, "+<p>page v2</p>") || !strings.HasPrefix(f.Diff, "--- a/var/www/de-web/index.html") {
						t.Errorf("node %s: diff of %s:\n%s", n.IP, f.Path, f.Diff)
					}
				}
			}
			if isWeb && strings.Join(diffs, " ") != "/var/www/de-web/index.html" {
				t.Errorf("node %s: files in the plan %v, want the page only", n.IP, diffs)
			}
		}
		out, err := planCLI(e).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 10 || !strings.Contains(string(out), "+<p>page v2</p>") {
			t.Errorf("CLI plan of pending changes: %v (want exit 10)\n%s", err, out)
		}
		if nodeState(t) != nodes {
			t.Errorf("the plan changed files on the nodes")
		}
		if storeState(t, e) != store {
			t.Errorf("the plan wrote to the config or deployments bucket")
		}
		for _, ip := range web {
			if got := page(t, ip); got != "v1" {
				t.Errorf("%s serves %s after a plan", ip, got)
			}
		}
	})

	t.Run("drift", func(t *testing.T) {
		n := node(web[1])
		if _, err := n.Exec(context.Background(), "echo '# changed by hand' >> /etc/de-web/nginx.conf"); err != nil {
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
		if !found || p.Drifted != 1 {
			t.Errorf("the hand-edited file is not in the plan's drift: %+v", p.Nodes)
		}
		if p.ID == v2 {
			t.Errorf("the plan id did not change with the node's files")
		}
		v2 = p.ID
	})

	t.Run("stale plan", func(t *testing.T) {
		changed := config("starter", comps)
		changed["properties"].(map[string]any)["disksize"] = "2"
		if code, body := e.Do("POST", "/deployment-engine/config?check=0", changed); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		code, body := e.Do("POST", "/deployment-engine/deploy?plan="+v2, nil)
		if code != 409 || !strings.Contains(string(body), "stale") {
			t.Errorf("deploy of a stale plan: %d %s, want 409", code, body)
		}
		if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		if code, body := e.Do("GET", "/deployment-engine/deploy?plan=zz", nil); code != 400 {
			t.Errorf("deploy?plan=zz: %d %s, want 400", code, body)
		}
	})

	t.Run("deploy the plan", func(t *testing.T) {
		_, _, _ = l.counts()
		p := getPlan(t, e, nil)
		code, body := e.Do("GET", "/deployment-engine/deploy?plan="+p.ID, nil)
		if code != 202 {
			t.Fatalf("deploy?plan: %d %s", code, body)
		}
		var r struct{ ID string }
		_ = json.Unmarshal(body, &r)
		d := wait(t, e, r.ID, 5*time.Minute)
		if d.State != "succeeded" {
			t.Fatalf("deployment of the new page:\n%s", failures(d))
		}
		for _, ip := range web {
			if got := pageWithin(t, ip, "v2", 10*time.Second); got != "v2" {
				t.Errorf("%s serves %s, want v2", ip, got)
			}
		}
		served, failed, pages := l.counts()
		t.Logf("during the deployment: %d served, %d failed, pages %v", served, failed, pages)
		if p := getPlan(t, e, nil); p.Changes != 0 || p.Drifted != 0 {
			t.Errorf("plan after the deployment: %d actions, %d drifted: %+v", p.Changes, p.Drifted, p.Nodes)
		}
	})
}
