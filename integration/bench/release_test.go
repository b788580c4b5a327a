package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/planner/release/releasetest"
)

// The release benchmark's work, as its packaging scripts and job declare
// it: twelve independent packages and one that depends on them all, each
// compile sleeping compileSleep, and a job that runs a process.
const (
	relPackages  = 13
	compileSleep = 300 * time.Millisecond
	relProcess   = "sleep 1000007"
)

// compileCount is the file on a node where each package compiled there
// leaves a line: a package fetched compiled from the engine leaves none.
const compileCount = "/var/vcap/data/bench-compiles"

// relWork is the release: packages p01…p12 independent, p13 on all of
// them, and job app, which needs p13.
func relWork() releasetest.Release {
	var pkgs []releasetest.Package
	var deps []string
	// Each compile leaves a line on its node (compileCount reads them).
	sleep := fmt.Sprintf("sleep %.1f\necho $BOSH_PACKAGE_NAME >> %s\n", compileSleep.Seconds(), compileCount)
	for i := 1; i < relPackages; i++ {
		name := fmt.Sprintf("p%02d", i)
		deps = append(deps, name)
		pkgs = append(pkgs, releasetest.Package{Name: name, Files: map[string]string{
			"packaging": sleep + "cp src/" + name + " ${BOSH_INSTALL_TARGET}/\n", "src/" + name: name + "\n"}})
	}
	last := fmt.Sprintf("p%02d", relPackages)
	pkgs = append(pkgs, releasetest.Package{Name: last, Deps: deps, Files: map[string]string{
		"packaging": sleep + "cat ${BOSH_PACKAGES_DIR}/p*/p* > ${BOSH_INSTALL_TARGET}/all\n"}})
	return releasetest.Release{Name: "bench13", Version: "1", Packages: pkgs, Jobs: []releasetest.Job{{Name: "app",
		Spec:  "---\nname: app\ntemplates: {ctl: bin/ctl}\npackages: [" + last + "]\nproperties: {}\n",
		Monit: "check process app\n  with pidfile /var/vcap/sys/run/app/pid\n  start program \"/var/vcap/jobs/app/bin/ctl start\"\n  stop program \"/var/vcap/jobs/app/bin/ctl stop\"\n",
		Templates: map[string]string{"ctl": "#!/bin/bash\nrun=/var/vcap/sys/run/app\nmkdir -p $run\ncase $1 in\n" +
			"  start) [ -s /var/vcap/packages/" + last + "/all ] || exit 1; ( exec -a sleep " + relProcess + " ) >/dev/null 2>&1 &\n    echo $! > $run/pid ;;\n" +
			"  stop) kill $(cat $run/pid) 2>/dev/null; rm -f $run/pid ;;\nesac\n"}}}}
}

// relRow is one run of the release benchmark.
type relRow struct {
	N int
	// Wall is from the deploy's request to its last step's end; Compile
	// the time from the first compile's start to the last one's end on
	// the slowest node; Limit the compiles' declared sleeps as a node of
	// its CPUs can run them (compileLimit).
	Wall, Compile, Limit time.Duration
	Steps                int
	// Compiles counts the packages compiled on every node together: 13
	// when each is compiled once and fetched by the other nodes.
	Compiles int
}

// compileLimit is what the release's compiles declare on a node of cpus
// CPUs, which compiles that many packages at once: the twelve independent
// ones in ceil(12/cpus) rounds, then the one on them all.
func compileLimit(cpus int) time.Duration {
	rounds := (relPackages - 1 + cpus - 1) / cpus
	return time.Duration(rounds+1) * compileSleep
}

// BenchmarkRelease uploads the 13-package release and deploys its job on
// 3 fresh nodes with the engine's defaults (agents on). Its physical
// limit is the compiles' declared sleeps as a node compiles them, as many
// at once as it has CPUs (compileLimit: 2.1 s on 2 CPUs); compiled one
// after another they declare 13 × 0.3 s = 3.9 s per node.
func BenchmarkRelease(b *testing.B) {
	if err := testbed.Check(); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		r := releaseRun(b, 3)
		b.ReportMetric(r.Wall.Seconds(), "wall-s")
		b.ReportMetric(r.Compile.Seconds(), "compile-s")
		b.ReportMetric(r.Limit.Seconds(), "compile-limit-s")
		b.ReportMetric(float64(r.Steps), "steps")
		b.ReportMetric(float64(r.Compiles), "compiles")
	}
}

// TestReleaseSmoke runs the release benchmark once on one node, so that
// `make test` keeps it working; its figures are not judged here.
func TestReleaseSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test bed")
	}
	if err := testbed.Check(); err != nil {
		t.Fatal(err)
	}
	r := releaseRun(t, 1)
	if r.Compile < r.Limit {
		t.Errorf("the compiles took %s, less than their declared %s: the limit is wrong", r.Compile, r.Limit)
	}
	t.Logf("1 node: %s, compiles %s, %d steps", r.Wall, r.Compile, r.Steps)
}

func releaseRun(tb testing.TB, n int) relRow {
	ctx := context.Background()
	bed, down := freshBed(ctx, tb, n)
	defer down()
	e := harness.Start(tb, harness.Options{})
	defer e.Stop()
	if code, body := e.Do("POST", "/deployment-engine/releases", releasetest.Build(relWork())); code != 201 {
		tb.Fatalf("upload: %d %s", code, body)
	}
	cfg := map[string]any{"components": map[string][]string{"app": ips(bed)}, "properties": map[string]any{
		"catalog": "bosh", "release": "bench13/1", "domain": "bench.local", "home": bed.Home, "key": bed.KeyPath, "adduser": 0}}
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		tb.Fatalf("config: %d %s", code, body)
	}
	d, requested := deploy(tb, e)
	r := relRow{N: n, Wall: d.Finished.Sub(requested), Steps: len(d.Steps)}
	for _, node := range ips(bed) {
		var first, last time.Time
		for _, st := range d.Steps {
			if st.Node != node || st.Action != "compile" || st.Started == nil || st.Finished == nil {
				continue
			}
			if first.IsZero() || st.Started.Before(first) {
				first = *st.Started
			}
			if st.Finished.After(last) {
				last = *st.Finished
			}
		}
		r.Compile = max(r.Compile, last.Sub(first))
	}
	if n == 1 {
		logSteps(tb, d, requested)
	}
	for _, node := range bed.Nodes {
		out, err := node.Exec(ctx, "nproc")
		cpus, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || cpus < 1 {
			tb.Fatalf("%s: nproc: %q %v", node.IP, out, err)
		}
		r.Limit = max(r.Limit, compileLimit(cpus))
		out, err = node.Exec(ctx, "cat "+compileCount+" 2>/dev/null || true")
		if err != nil {
			tb.Fatalf("%s: %s: %v", node.IP, compileCount, err)
		}
		r.Compiles += len(strings.Fields(string(out)))
		if out, err := node.Exec(ctx, "pgrep -fx '"+relProcess+"' >/dev/null && echo running; pkill -KILL -fx '"+relProcess+"' || true"); err != nil || !strings.Contains(string(out), "running") {
			tb.Errorf("%s: the job's process does not run: %s %v", node.IP, out, err)
		}
	}
	if r.Compiles != relPackages {
		tb.Errorf("%d packages compiled on %d nodes together, want each of the %d once", r.Compiles, n, relPackages)
	}
	tb.Logf("N=%d: the 13-package release in %s (compiles %s on the slowest node; their declared sleeps %s), %d steps, %d packages compiled",
		n, r.Wall.Round(time.Millisecond), r.Compile.Round(time.Millisecond), r.Limit, r.Steps, r.Compiles)
	return r
}
