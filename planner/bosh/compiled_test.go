package bosh

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // the release format's checksum
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// engineCache stands in for the engine's /compiled/ routes (the real ones
// are api's, tested there and end to end): it serves what was put, and
// takes a put with the token and node it expects.
type engineCache struct {
	mu    sync.Mutex
	files map[string][]byte
	puts  []string // node of each put taken
}

func (c *engineCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		b, ok := c.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	case http.MethodPut:
		if r.Header.Get("Authorization") != "Bearer tok-"+r.Header.Get("X-DE-Node") {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		c.files[r.URL.Path] = b
		c.puts = append(c.puts, r.Header.Get("X-DE-Node"))
		w.WriteHeader(http.StatusCreated)
	}
}

// A package compiled on one node is put on the engine, and another node
// of the same OS unpacks it instead of compiling; a node whose upload
// token is refused still compiles, and says the put failed; a compiled
// package on the engine that does not unpack is compiled instead.
func TestCompiledPackagesShared(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sha1sum", "tar", "nproc", "uname"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	cache := &engineCache{files: map[string][]byte{}}
	srv := httptest.NewServer(cache)
	defer srv.Close()
	src, runs := t.TempDir(), filepath.Join(t.TempDir(), "runs")
	tgz := releasetest.TarGz(map[string]string{"packaging": "echo x >> " + runs + "\nmkdir -p $BOSH_INSTALL_TARGET/bin\necho built > $BOSH_INSTALL_TARGET/bin/tool\n"})
	if err := os.WriteFile(filepath.Join(src, "p.tgz"), tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(tgz) //nolint:gosec
	p := release.Package{Name: "p", Version: "1", SHA1: hex.EncodeToString(sum[:])}
	fp := "00112233445566778899aabbccddeeff"
	node := func(t *testing.T, ip, token string) (string, string) {
		root := t.TempDir()
		for _, d := range []string{"packages", "data/packages", "data/compile"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		script := compileScript(ip, [][]release.Package{{p}}, func(release.Package) string { return "file://" + filepath.Join(src, "p.tgz") },
			func(release.Package) string { return srv.URL + "/compiled/" + fp })
		cmd := exec.Command("bash", "-c", strings.ReplaceAll(script, VcapDir, root))
		cmd.Env = append(os.Environ(), "DE_SECRET_UPLOAD="+token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", ip, err, out)
		}
		if b, err := os.ReadFile(filepath.Join(root, "packages", "p", "bin", "tool")); err != nil || string(b) != "built\n" {
			t.Fatalf("%s: the package through its link: %q %v\n%s", ip, b, err, out)
		}
		return root, string(out)
	}
	compiles := func() int { b, _ := os.ReadFile(runs); return bytes.Count(b, []byte("x")) }

	_, out := node(t, "10.0.0.1", "wrong")
	if compiles() != 1 || !strings.Contains(out, "could not put p/1 compiled for") || len(cache.puts) != 0 {
		t.Fatalf("a refused token: %d compiles, puts %v\n%s", compiles(), cache.puts, out)
	}
	_, out = node(t, "10.0.0.1", "tok-10.0.0.1")
	if compiles() != 2 || !strings.Contains(out, "put p/1 compiled for") || len(cache.puts) != 1 || cache.puts[0] != "10.0.0.1" {
		t.Fatalf("the first node: %d compiles, puts %v\n%s", compiles(), cache.puts, out)
	}
	if strings.Contains(out, "tok-10.0.0.1") {
		t.Errorf("the upload token is in the step's output:\n%s", out)
	}
	_, out = node(t, "10.0.0.2", "tok-10.0.0.2")
	if compiles() != 2 || !strings.Contains(out, "fetched p/1 compiled for") || len(cache.puts) != 1 {
		t.Fatalf("the second node compiled again (%d compiles, puts %v):\n%s", compiles(), cache.puts, out)
	}
	cache.mu.Lock()
	for k := range cache.files {
		cache.files[k] = []byte("not a tarball")
	}
	cache.mu.Unlock()
	_, out = node(t, "10.0.0.3", "tok-10.0.0.3")
	if compiles() != 3 || !strings.Contains(out, "does not unpack: compiling it here") {
		t.Fatalf("a broken compiled package: %d compiles\n%s", compiles(), out)
	}
}

// Each package has one compiling step: app's first node compiles base
// with libapp and app; db's nodes, which need base alone, wait for that
// step and fetch it, as db's second node waits for nothing else; a job
// of packages no earlier step has compiles on its first node, and its
// other nodes wait for that one.
func TestCompileOnceOrdersByPackage(t *testing.T) {
	needRuby(t)
	pkg := func(name string, deps ...string) releasetest.Package {
		return releasetest.Package{Name: name, Deps: deps, Files: map[string]string{"packaging": "true\n"}}
	}
	job := func(name string, pkgs string) releasetest.Job {
		return releasetest.Job{Name: name, Spec: "---\nname: " + name + "\ntemplates: {}\npackages: [" + pkgs + "]\n", Monit: ""}
	}
	rel := load(t, releasetest.Release{Name: "chain", Version: "1",
		Packages: []releasetest.Package{pkg("base"), pkg("libapp", "base"), pkg("app", "libapp"), pkg("tool")},
		Jobs:     []releasetest.Job{job("app", "app"), job("db", "base"), job("zz", "tool")}})
	d, ps := NewDeployment(rel, cfgOf(map[string][]string{"app": {"10.0.0.3"}, "db": {"10.0.0.1", "10.0.0.2"}, "zz": {"10.0.0.2", "10.0.0.1"}}, nil, nil))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	plan, err := MakePlan(context.Background(), PlanInput{Deployment: d, NodeComponent: "_node", Base: map[string]string{},
		PackageURL:  func(p release.Package) string { return "http://h/" + p.Name },
		CompiledURL: func(fp string) string { return "http://h/compiled/" + fp }})
	if err != nil {
		t.Fatal(err)
	}
	waits := map[string][]string{}
	for _, s := range plan.Steps {
		if s.Spec.Action != "compile" {
			continue
		}
		for _, a := range s.After {
			if strings.HasSuffix(a, "/compile") {
				waits[s.Spec.ID] = append(waits[s.Spec.ID], a)
			}
		}
		if !slices.Equal(s.Spec.SecretEnv, []string{"upload"}) {
			t.Errorf("%s: secrets %v, want the upload token", s.Spec.ID, s.Spec.SecretEnv)
		}
	}
	want := map[string][]string{
		"10.0.0.1/db/compile": {"10.0.0.3/app/compile"},
		"10.0.0.2/db/compile": {"10.0.0.3/app/compile"},
		"10.0.0.1/zz/compile": {"10.0.0.2/zz/compile"},
	}
	if len(waits) != len(want) {
		t.Errorf("compile steps wait for %v, want %v", waits, want)
	}
	for id, w := range want {
		if !slices.Equal(waits[id], w) {
			t.Errorf("%s waits for %v, want %v", id, waits[id], w)
		}
	}
}
