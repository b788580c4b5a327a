package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
)

// patchPackage is the package patchRolls upgrades on every node.
const patchPackage = "de-e2e-patch"

// patchRolls patches the starter nodes one at a time while a client
// keeps asking haproxy: every node's package goes from 1.0 to 1.1 from
// the engine's mirror; the web node that asks for a reboot reboots (its
// /run emptied), the others do not; no request fails; every instance
// runs after, and haproxy reaches both web nodes again.
func patchRolls(t *testing.T, e *harness.Engine, comps map[string][]string) {
	t.Helper()
	ctx := context.Background()
	src := t.TempDir()
	mirror := func(args ...string) {
		t.Helper()
		out, err := exec.Command(harness.Binary(t), append(append([]string{"mirror"}, args...), "--data", e.Data)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mirror %v: %v\n%s", args, err, out)
		}
	}
	mirror("add", buildDeb(t, src, patchPackage, "1.0"))
	all := ips(0, 1, 2, 3)
	t.Cleanup(func() {
		mirror("remove", patchPackage)
		for _, n := range bed.Nodes {
			_, _ = n.Exec(ctx, "dpkg --purge "+patchPackage+" >/dev/null 2>&1; rm -f /run/de-e2e-before-patch")
		}
	})
	// Every node has 1.0, installed through the engine's exec.
	code, body := e.Do("POST", "/deployment-engine/exec", map[string]any{"nodes": all, "max_in_flight": "100%", "timeout": 300,
		"command": "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq " + patchPackage})
	var started struct{ ID string }
	if code != 202 || json.Unmarshal(body, &started) != nil {
		t.Fatalf("exec: %d %s", code, body)
	}
	if d := wait(t, e, started.ID, 5*time.Minute); d.State != contract.DeploySucceeded {
		t.Fatalf("installing %s 1.0: %s\n%s", patchPackage, d.State, failures(d))
	}
	mirror("add", buildDeb(t, src, patchPackage, "1.1"))

	rebooted := comps["web"][0]
	for _, n := range bed.Nodes {
		script := ": > /run/de-e2e-before-patch"
		if n.IP == rebooted {
			script += "; echo linux-image-e2e > /var/run/reboot-required.pkgs; : > /var/run/reboot-required"
		}
		if out, err := n.Exec(ctx, script); err != nil {
			t.Fatalf("%s: %v %s", n.IP, err, out)
		}
	}

	load := hammer("http://" + bed.Nodes[0].IP + "/")
	code, body = e.Do("POST", "/deployment-engine/patch", map[string]any{"max_in_flight": 1})
	var p contract.PatchStarted
	if code != 202 || json.Unmarshal(body, &p) != nil || len(p.Nodes) != 4 || p.Batches != 4 {
		load.stop()
		t.Fatalf("patch: %d %s", code, body)
	}
	start := time.Now()
	d := wait(t, e, p.ID, 12*time.Minute)
	served, failed, why := load.stop()
	if d.State != contract.DeploySucceeded || d.Kind != contract.KindPatch {
		t.Fatalf("patch: %s %s\n%s\nengine log:\n%s", d.Kind, d.State, failures(d), tail(e.Log(), 40))
	}
	t.Logf("patch of 4 nodes, one rebooted: %s; %d requests through haproxy served, %d failed", time.Since(start).Round(100*time.Millisecond), served, failed)
	if failed > 0 || served < 20 {
		t.Errorf("during the patch: %d requests failed, %d served: %s", failed, served, strings.Join(why, "; "))
	}
	for _, n := range bed.Nodes {
		out, err := n.Exec(ctx, "dpkg-query -W -f '${Version}' "+patchPackage+"; echo; [ -e /run/de-e2e-before-patch ] && echo kept || echo emptied; [ -e /var/run/reboot-required ] && echo asks || echo content")
		got := strings.Fields(string(out))
		want := []string{"1.1", "kept", "content"}
		if n.IP == rebooted {
			want[1] = "emptied"
		}
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s after the patch: %q (%v), want %v", n.IP, got, err, want)
		}
	}
	var reboots int
	for _, st := range d.Steps {
		if st.Action == "patch-back" && st.Node == rebooted && st.State != contract.StateSucceeded {
			t.Errorf("the rebooted node's wait: %+v", st)
		}
		if st.Action == "patch-reboot" {
			reboots++
		}
	}
	if reboots != 4 {
		t.Errorf("%d reboot steps, want one a node", reboots)
	}
	want := map[string]string{}
	for comp, list := range comps {
		for _, ip := range list {
			want[comp+"@"+ip] = "RUNNING"
		}
	}
	waitStatus(t, e, want)
	if got := backendsWithin("http://"+bed.Nodes[0].IP+"/", func(got map[string]bool) bool { return len(got) == 2 }); len(got) != 2 {
		t.Errorf("after the patch haproxy reaches %v, want both web nodes", got)
	}
}

// buildDeb makes a small Debian package of name and version in dir.
func buildDeb(t *testing.T, dir, name, version string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pkg")
	files := map[string]string{
		"DEBIAN/control":                 fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: e2e <e2e@example.invalid>\nDescription: a package the e2e patch upgrades\n", name, version),
		"usr/share/" + name + "/version": version + "\n",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, name+"-"+version+".deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, b)
	}
	return out
}

// load is a client asking a URL every 50 ms until stopped.
type load struct {
	done, quit   chan struct{}
	mu           sync.Mutex
	served, fail int
	why          []string // the first failures, each with its time
}

// hammer starts asking url; stop ends it and says how it went.
func hammer(url string) *load {
	l := &load{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(l.done)
		// Generous: the machine runs other suites beside this one, and a
		// request it is slow to carry is not one haproxy failed.
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-l.quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
			asked := time.Now()
			resp, err := client.Get(url)
			l.mu.Lock()
			if err != nil || resp.StatusCode != 200 {
				l.fail++
				if len(l.why) < 5 {
					what := fmt.Sprint(err)
					if err == nil {
						what = resp.Status
					}
					l.why = append(l.why, fmt.Sprintf("%s (asked at %s, after %s)", what, asked.Format("15:04:05.000"), time.Since(asked).Round(time.Millisecond)))
				}
			} else {
				l.served++
			}
			l.mu.Unlock()
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	return l
}

// stop ends the client (once) and answers the requests served, failed,
// and the first failures.
func (l *load) stop() (served, failed int, why []string) {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served, l.fail, l.why
}
