package bosh

import (
	"crypto/sha1" //nolint:gosec // the release format's checksum
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/planner/release/releasetest"
	"github.com/deployment-engine/engine/services/monittest"
	"github.com/deployment-engine/engine/services/nodefs"
)

// runCompile runs the compile script of a package whose packaging script
// is packaging, with BOSH's layout under root instead of /var/vcap and the
// package fetched from a file: URL.
func runCompile(t *testing.T, root, version, packaging string) (string, error) {
	t.Helper()
	return runPackage(t, root, release.Package{Name: "web-server", Version: version}, releasetest.TarGz(map[string]string{"packaging": packaging}))
}

// runPackage runs the compile script of p, whose tarball is tgz, as
// runCompile does.
func runPackage(t *testing.T, root string, p release.Package, tgz []byte) (string, error) {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "sha1sum", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	file := filepath.Join(t.TempDir(), "pkg.tgz")
	if err := os.WriteFile(file, tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(tgz) //nolint:gosec
	p.SHA1 = hex.EncodeToString(sum[:])
	script := strings.ReplaceAll(packageScript(p, "file://"+file, ""), VcapDir, root)
	for _, d := range []string{"packages", "data/packages", "data/compile"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	return string(out), err
}

// A package of a compiled release is unpacked into its versioned
// directory, no packaging script run (it has none), and linked; one whose
// tarball does not unpack leaves the link on the version before.
func TestCompiledPackageUnpacks(t *testing.T) {
	root := t.TempDir()
	link := filepath.Join(root, "packages", "web-server")
	v1 := release.Package{Name: "web-server", Version: "1", Stemcell: "ubuntu-jammy/1.18"}
	out, err := runPackage(t, root, v1, releasetest.TarGz(map[string]string{"bin/web": "compiled v1\n"}))
	if err != nil || !strings.Contains(out, "as compiled on 'ubuntu-jammy/1.18'") {
		t.Fatalf("v1: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(link, "bin", "web")); err != nil || string(b) != "compiled v1\n" {
		t.Fatalf("the compiled file through the link: %q %v", b, err)
	}
	v2 := release.Package{Name: "web-server", Version: "2", Stemcell: "ubuntu-jammy/1.18"}
	if out, err := runPackage(t, root, v2, []byte("not a tarball")); err == nil || !strings.Contains(out, "does not unpack") {
		t.Fatalf("v2, not a tarball: %v\n%s", err, out)
	}
	if got, _ := os.Readlink(link); got != filepath.Join(root, "data", "packages", "web-server", "1") {
		t.Errorf("a failed install moved the link to %q", got)
	}
}

// A compile whose packaging fails leaves the package's link on the version
// that compiled before, with its files: the job that runs it can restart.
// The version that compiles is linked only once packaging succeeded, and
// its packaging saw its own versioned directory as the install target.
func TestCompileSwitchesTheLinkOnlyOnSuccess(t *testing.T) {
	root := t.TempDir()
	link := filepath.Join(root, "packages", "web-server")
	if out, err := runCompile(t, root, "1", "echo v1 > \"$BOSH_INSTALL_TARGET/bin\"\n"); err != nil {
		t.Fatalf("v1: %v\n%s", err, out)
	}
	v1 := filepath.Join(root, "data", "packages", "web-server", "1")
	if got, _ := os.Readlink(link); got != v1 {
		t.Fatalf("after v1 the link is %q, want %q", got, v1)
	}
	out, err := runCompile(t, root, "2", "echo half > \"$BOSH_INSTALL_TARGET/bin\"\necho this failed >&2\nexit 3\n")
	if err == nil || !strings.Contains(out, "this failed") || !strings.Contains(out, "unchanged") {
		t.Fatalf("v2's failing packaging: %v\n%s", err, out)
	}
	if got, _ := os.Readlink(link); got != v1 {
		t.Errorf("a failed compile moved the link to %q; it must stay on %q", got, v1)
	}
	if b, err := os.ReadFile(filepath.Join(link, "bin")); err != nil || string(b) != "v1\n" {
		t.Errorf("the running version's file through the link: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "packages", "web-server", "2")); !os.IsNotExist(err) {
		t.Errorf("the failed version's directory is left: %v", err)
	}
	if out, err := runCompile(t, root, "3", "echo v3 > \"$BOSH_INSTALL_TARGET/bin\"\n"); err != nil {
		t.Fatalf("v3: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(link, "bin")); string(b) != "v3\n" {
		t.Errorf("after v3 compiled the link reads %q", b)
	}
}

// NotDown fails only when monit reports a process gone or its start
// failed: a running process, one someone stopped and a monit that does
// not answer hold. A job without a process has nothing to check.
func TestNotDown(t *testing.T) {
	if NotDown() != "" || NotDown("") != "" {
		t.Fatal("a check for no process")
	}
	dir := t.TempDir()
	fake := `#!/bin/sh
case "$2" in
up) printf "Process 'up'\n  status                       OK\n" ;;
off) printf "Process 'off'\n  status                       Not monitored\n" ;;
gone) printf "Process 'gone'\n  status                       Does not exist\n" ;;
failed) printf "Process 'failed'\n  status                       Execution failed | Does not exist\n" ;;
*) echo "Cannot connect to [localhost]:2812" >&2; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "monit"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		procs []string
		holds bool
	}{
		{[]string{"up"}, true}, {[]string{"off"}, true}, {[]string{"silent"}, true}, {[]string{"up", "off"}, true},
		{[]string{"gone"}, false}, {[]string{"failed"}, false}, {[]string{"up", "gone"}, false},
	} {
		// No monit listens where bash asks first: both shells use the client.
		script := strings.ReplaceAll(NotDown(tc.procs...), "/dev/tcp/"+nodefs.MonitHTTP, "/dev/tcp/127.0.0.1/1")
		for _, sh := range []string{"sh", "bash"} {
			cmd := exec.Command(sh, "-c", script)
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			if err := cmd.Run(); (err == nil) != tc.holds {
				t.Errorf("%s: %v: holds %v, want %v", sh, tc.procs, err == nil, tc.holds)
			}
		}
	}
}

// In bash NotDown asks a real monit's HTTP interface, never its client: a
// running process holds, one gone does not, one monit does not know holds.
func TestNotDownAgainstRealMonit(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "self.pid")
	if err := os.WriteFile(self, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port := monittest.Start(t, dir, fmt.Sprintf("check process up with pidfile %s\ncheck process gone with pidfile %s/none.pid\n", self, dir))
	// The client must not run: it says so and fails.
	if err := os.WriteFile(filepath.Join(dir, "monit"), []byte("#!/bin/sh\necho client >> "+dir+"/asked\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(procs ...string) bool {
		script := strings.ReplaceAll(NotDown(procs...), "/dev/tcp/"+nodefs.MonitHTTP, fmt.Sprintf("/dev/tcp/127.0.0.1/%d", port))
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		return cmd.Run() == nil
	}
	// monit tells a process gone once its first cycle has looked.
	for deadline := time.Now().Add(20 * time.Second); run("gone"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("monit never reported gone as down")
		}
	}
	for _, tc := range []struct {
		procs []string
		holds bool
	}{{[]string{"up"}, true}, {[]string{"unknown"}, true}, {[]string{"gone"}, false}, {[]string{"up", "gone"}, false}} {
		if got := run(tc.procs...); got != tc.holds {
			t.Errorf("%v: holds %v, want %v", tc.procs, got, tc.holds)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "asked")); err == nil {
		t.Errorf("monit's client ran %d times", strings.Count(string(b), "\n"))
	}
}

// A job's packages compile level by level, a level's at once: a and b,
// which depend on nothing, each wait (up to 20 s) for the other to have
// begun, which they can only both do at once; c, on both, compiles after
// them. A package that fails ends the step, named on stderr with its
// output's end, and the level after it is not begun, while the package
// beside it is compiled and linked.
func TestCompileLevelsAtOnce(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sha1sum", "tar", "nproc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	run := func(t *testing.T, packaging map[string]string) (string, string, error) {
		root, dir := t.TempDir(), t.TempDir()
		for _, d := range []string{"packages", "data/packages", "data/compile"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		pkgs := map[string]release.Package{}
		for _, name := range []string{"a", "b", "c"} {
			tgz := releasetest.TarGz(map[string]string{"packaging": strings.ReplaceAll(packaging[name], "SYNC", dir)})
			file := filepath.Join(dir, name+".tgz")
			if err := os.WriteFile(file, tgz, 0o644); err != nil {
				t.Fatal(err)
			}
			sum := sha1.Sum(tgz) //nolint:gosec
			pkgs[name] = release.Package{Name: name, Version: "1", SHA1: hex.EncodeToString(sum[:])}
		}
		c := pkgs["c"]
		c.Dependencies = []string{"a", "b"}
		levels := packageLevels([]release.Package{pkgs["a"], pkgs["b"], c})
		script := compileScript("10.0.0.1", levels, func(p release.Package) string { return "file://" + filepath.Join(dir, p.Name+".tgz") }, func(release.Package) string { return "" })
		// Two at once, whatever this machine's CPUs.
		script = strings.Replace(strings.ReplaceAll(script, VcapDir, root), "max=$(nproc 2>/dev/null || echo 1)", "max=2", 1)
		var stdout, stderr strings.Builder
		cmd := exec.Command("bash", "-c", script)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return root, stdout.String() + "\n--- stderr\n" + stderr.String(), err
	}
	// Each of a and b marks that it began, then waits for the other's mark.
	meet := func(me, other string) string {
		return "touch SYNC/" + me + ".began\nfor i in $(seq 200); do [ -e SYNC/" + other + ".began ] && break; sleep 0.1; done\n" +
			"[ -e SYNC/" + other + ".began ] || { echo " + me + " compiled alone >&2; exit 1; }\necho " + me + " > ${BOSH_INSTALL_TARGET}/out\n"
	}
	root, out, err := run(t, map[string]string{"a": meet("a", "b"), "b": meet("b", "a"),
		"c": "cat ${BOSH_PACKAGES_DIR}/a/out ${BOSH_PACKAGES_DIR}/b/out > ${BOSH_INSTALL_TARGET}/out\n"})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "packages", "c", "out")); err != nil || string(b) != "a\nb\n" {
		t.Fatalf("c: %q %v\n%s", b, err, out)
	}
	if !strings.Contains(out, "[a] compiled a/1 into") || !strings.Contains(out, "[c] compiled c/1 into") {
		t.Errorf("the output, each line named by its package:\n%s", out)
	}

	root, out, err = run(t, map[string]string{"a": "echo a > ${BOSH_INSTALL_TARGET}/out\n", "b": "echo b-broke >&2\nexit 3\n", "c": "touch SYNC/c.began\n"})
	if err == nil {
		t.Fatalf("a failed package's step succeeded:\n%s", out)
	}
	_, stderr, _ := strings.Cut(out, "--- stderr\n")
	if !strings.Contains(stderr, "[b] b-broke") || !strings.HasSuffix(strings.TrimSpace(stderr), "package b failed to compile") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "packages", "a", "out")); err != nil {
		t.Errorf("a, beside the failed b, is not compiled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "packages", "c")); err == nil {
		t.Error("c, after the failed b, was compiled")
	}
}
