package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// twoReleases colocates the dummy release's job with a job of a second
// release in one instance group; the ops file (twoReleasesOps) adds the
// second job and its generated password, CA and certificate.
const twoReleases = `
name: e2e-two
releases: [{name: dummy, version: 0.2-dev}, {name: side, version: "1"}, {name: bpm, version: "1"}]
stemcells: [{alias: default, os: ubuntu-noble, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: props
  instances: 2
  azs: [z1]
  networks: [{name: default}]
  jobs:
  - name: dummy_with_properties
    release: dummy
    properties: {dummy_with_properties: {echo_value: ((echo_pw))}}
  - {name: ticker, release: side, properties: {ticker: {word: "it's $(id) ok"}}}
  - {name: bpm, release: bpm}
variables:
- {name: echo_pw, type: password}
`

const twoReleasesOps = `
- type: replace
  path: /instance_groups/name=props/jobs/-
  value:
    name: sidecar
    release: side
    properties: {sidecar: {password: ((side_pw)), ca: ((side_tls.ca)), cert: ((side_tls.certificate)), key: ((side_tls.private_key))}}
- type: replace
  path: /variables/-
  value: {name: side_pw, type: password}
- type: replace
  path: /variables/-
  value: {name: side_ca, type: certificate, options: {is_ca: true, common_name: side-ca}}
- type: replace
  path: /variables/-
  value: {name: side_tls, type: certificate, options: {ca: side_ca, common_name: sidecar.e2e, alternative_names: [sidecar.e2e]}}
`

const sidecarProcess = "sleep 1000004"

// The processes of job ticker, as bpm runs them.
const (
	tickerProcess = "sleep 1000005"
	slowProcess   = "sleep 1000006"
)

// tickerJob is a job whose two processes bpm runs, as bpm-release's users
// have them: its monit file calls /var/vcap/jobs/bpm/bin/bpm, its
// config/bpm.yml gives each process its args, environment and a limit.
func tickerJob() []byte {
	return targz(map[string][]byte{
		"job.MF": []byte("---\nname: ticker\ntemplates: {bpm.yml.erb: config/bpm.yml}\npackages: []\nproperties:\n  ticker.word: {description: said at start}\n"),
		"monit": []byte(`check process ticker
  with pidfile /var/vcap/sys/run/bpm/ticker/ticker.pid
  start program "/var/vcap/jobs/bpm/bin/bpm start ticker"
  stop program "/var/vcap/jobs/bpm/bin/bpm stop ticker"
  group vcap
check process ticker-slow
  with pidfile /var/vcap/sys/run/bpm/ticker/slow.pid
  start program "/var/vcap/jobs/bpm/bin/bpm start ticker -p slow"
  stop program "/var/vcap/jobs/bpm/bin/bpm stop ticker -p slow"
  group vcap
`),
		"templates/bpm.yml.erb": []byte(`processes:
- name: ticker
  executable: /bin/bash
  args: [-c, 'echo "ticker says $1"; exec ` + tickerProcess + `', ticker, <%= p('ticker.word').to_json %>]
  env: {TICKER_WORD: <%= p('ticker.word').to_json %>, TICKER_ROLE: main}
  limits: {open_files: 777}
  ephemeral_disk: true
- name: slow
  executable: /bin/sleep
  args: ['` + strings.TrimPrefix(slowProcess, "sleep ") + `']
  env: {TICKER_ROLE: slow}
  shutdown_signal: INT
`),
	})
}

// bpmRelease is release bpm/1 with a job named bpm, as bpm-release has
// one: its own bin/bpm (which fails) is replaced by the engine's.
func bpmRelease() []byte {
	job := targz(map[string][]byte{
		"job.MF":        []byte("---\nname: bpm\ntemplates: {bpm: bin/bpm}\npackages: []\nproperties: {}\n"),
		"monit":         []byte(""),
		"templates/bpm": []byte("#!/bin/bash\necho 'the release's own bpm runs' >&2\nexit 3\n"),
	})
	mf := fmt.Sprintf("---\nname: bpm\nversion: '1'\npackages: []\njobs:\n- name: bpm\n  version: '1'\n  fingerprint: %s\n  sha1: %s\n", sha1hex(job), sha1hex(job))
	return targz(map[string][]byte{"release.MF": []byte(mf), "jobs/bpm.tgz": job})
}

// sideRelease is release side/1: job sidecar, whose process runs while
// its package's file is there, and which writes its TLS files, password
// and spec.release where a test reads them; and job ticker (tickerJob).
func sideRelease() []byte {
	pkg := targz(map[string][]byte{"packaging": []byte("echo side tool > ${BOSH_INSTALL_TARGET}/tool\n")})
	job := targz(map[string][]byte{
		"job.MF": []byte(`---
name: sidecar
templates: {ctl: bin/ctl, ca.erb: config/ca.crt, cert.erb: config/tls.crt, key.erb: config/tls.key, pw.erb: config/pw, release.erb: config/release}
packages: [sidetool]
properties:
  sidecar.password: {description: a secret}
  sidecar.ca: {description: the CA's certificate}
  sidecar.cert: {description: the certificate}
  sidecar.key: {description: its key}
`),
		"monit": []byte("check process sidecar\n  with pidfile /var/vcap/sys/run/sidecar/pid\n" +
			"  start program \"/var/vcap/jobs/sidecar/bin/ctl start\"\n  stop program \"/var/vcap/jobs/sidecar/bin/ctl stop\"\n"),
		"templates/ctl": []byte("#!/bin/bash\nrun=/var/vcap/sys/run/sidecar\nmkdir -p $run\ncase $1 in\n" +
			"  start) [ -f /var/vcap/packages/sidetool/tool ] || exit 1; ( exec -a sleep " + sidecarProcess + " ) >/dev/null 2>&1 &\n    echo $! > $run/pid ;;\n" +
			"  stop) kill $(cat $run/pid) 2>/dev/null; rm -f $run/pid ;;\nesac\n"),
		"templates/ca.erb":      []byte("<%= p('sidecar.ca') %>"),
		"templates/cert.erb":    []byte("<%= p('sidecar.cert') %>"),
		"templates/key.erb":     []byte("<%= p('sidecar.key') %>"),
		"templates/pw.erb":      []byte("<%= p('sidecar.password') %>"),
		"templates/release.erb": []byte("<%= spec.release.name %>/<%= spec.release.version %>"),
	})
	ticker := tickerJob()
	mf := fmt.Sprintf("---\nname: side\nversion: '1'\npackages:\n- name: sidetool\n  version: '1'\n  fingerprint: %s\n  sha1: %s\n  dependencies: []\n"+
		"jobs:\n- name: sidecar\n  version: '1'\n  fingerprint: %s\n  sha1: %s\n- name: ticker\n  version: '1'\n  fingerprint: %s\n  sha1: %s\n",
		sha1hex(pkg), sha1hex(pkg), sha1hex(job), sha1hex(job), sha1hex(ticker), sha1hex(ticker))
	return targz(map[string][]byte{"release.MF": []byte(mf), "packages/sidetool.tgz": pkg, "jobs/sidecar.tgz": job, "jobs/ticker.tgz": ticker})
}

// Two releases' jobs in one instance group from a manifest and an ops
// file: each job gets its own release's packages and spec.release; the
// generated password, CA and certificate are on both nodes, alike, the
// certificate signed by the CA; none of them is in an answer; a changed
// password rolls out canary first; a deploy of nothing new changes
// nothing.
func TestManifestTwoReleasesColocated(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer func() {
		resetBosh(t, "dummy_with_properties", "sidecar", "ticker", "bpm")
		for _, n := range bed.Nodes {
			_, _ = n.Exec(t.Context(), "pkill -KILL -fx '"+sidecarProcess+"' || true; pkill -KILL -fx '"+tickerProcess+"' || true; pkill -KILL -fx '/bin/"+slowProcess+"' || true")
		}
	}()
	dummy, err := os.ReadFile(filepath.Join(sharedReleases, "dummy-release.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	upload(t, e, dummy, 201)
	upload(t, e, sideRelease(), 201)
	upload(t, e, bpmRelease(), 201)
	cc := fmt.Sprintf("home: %s\nssh: {user: root, key: %s}\nazs:\n- {name: z1, machines: [%s, %s]}\n", bed.Home, bed.KeyPath, ips(0)[0], ips(1)[0])
	if code, out := e.Do("PUT", "/deployment-engine/cloud-config", cc); code != 200 {
		t.Fatalf("cloud config: %d %s", code, out)
	}
	body := map[string]any{"manifest": twoReleases, "ops": []string{twoReleasesOps}}
	var answers []string
	deployed := func() contract.Deployment {
		t.Helper()
		code, out := e.Do("POST", "/deployment-engine/manifest", body)
		var started contract.ManifestDeployed
		if code != 202 || json.Unmarshal(out, &started) != nil {
			t.Fatalf("manifest deploy: %d %s", code, out)
		}
		answers = append(answers, string(out))
		return wait(t, e, started.ID, 10*time.Minute)
	}
	d := deployed()
	if d.State != "succeeded" {
		t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	code, out := e.Do("GET", "/deployment-engine/config", nil)
	var cfg contract.Config
	if code != 200 || json.Unmarshal(out, &cfg) != nil || cfg.Properties.Release != "dummy/0.2-dev" || strings.Join(cfg.Properties.Releases, ",") != "side/1,bpm/1" {
		t.Fatalf("config: %d %s", code, out)
	}

	// On each node: its own release's package and spec.release, the
	// secrets alike on both, the certificate signed by the CA.
	read := "cd /var/vcap/jobs/sidecar/config && cat release; echo; cat /var/vcap/packages/sidetool/tool; cat pw; echo; " +
		"openssl verify -CAfile ca.crt tls.crt; openssl x509 -noout -subject -in tls.crt; sha256sum tls.key | cut -c1-64"
	n0, n1 := inNode(t, 0, read), inNode(t, 1, read)
	t.Logf("node 0:\n%s", n0)
	lines := strings.Split(strings.TrimSpace(n0), "\n")
	if n0 != n1 || len(lines) != 6 || lines[0] != "side/1" || lines[1] != "side tool" || len(lines[2]) != 20 ||
		lines[3] != "tls.crt: OK" || !strings.Contains(lines[4], "sidecar.e2e") {
		t.Fatalf("the nodes' sidecar:\n%s\n---\n%s", n0, n1)
	}
	password := lines[2]
	key := inNode(t, 0, "sed -n 2p /var/vcap/jobs/sidecar/config/tls.key")
	if got := inNode(t, 0, "cat /var/vcap/jobs/dummy_with_properties/bin/dummy_with_properties_ctl"); !strings.Contains(got, "echo '") {
		t.Errorf("the dummy job's ctl: %s", got)
	}
	waitStatus(t, e, map[string]string{"sidecar@" + ips(0)[0]: "RUNNING", "sidecar@" + ips(1)[0]: "RUNNING",
		"ticker@" + ips(0)[0]: "RUNNING", "ticker@" + ips(1)[0]: "RUNNING"})
	checkBPM(t, e)

	// The password generated anew changes the sidecar on both machines:
	// the rollout goes canary first, the second machine's apply after the
	// canary's start.
	if code, out := e.Do("POST", "/deployment-engine/manifest/variables/side_pw/regenerate", nil); code != 200 {
		t.Fatalf("regenerate side_pw: %d %s", code, out)
	}
	d = deployed()
	if d.State != "succeeded" {
		t.Fatalf("deployment after regenerate %s:\n%s", d.State, failures(d))
	}
	step := func(node, action string) *contract.StepStatus {
		for i, s := range d.Steps {
			if s.Component == "sidecar" && s.Node == node && s.Action == action {
				return &d.Steps[i]
			}
		}
		t.Fatalf("no sidecar %s step on %s", action, node)
		return nil
	}
	canary, next := step(ips(0)[0], "start"), step(ips(1)[0], "apply")
	if canary.Finished == nil || next.Started == nil || next.Started.Before(*canary.Finished) {
		t.Errorf("not canary first: the canary's start %+v, the next one's apply %+v", canary, next)
	}
	again0, again1 := inNode(t, 0, "cat /var/vcap/jobs/sidecar/config/pw"), inNode(t, 1, "cat /var/vcap/jobs/sidecar/config/pw")
	if again0 != again1 || len(again0) != 20 || again0 == password {
		t.Errorf("the regenerated password: %q and %q (it was %q)", again0, again1, password)
	}

	// Deployed again: nothing to do.
	if d := deployed(); d.State != "succeeded" || d.Changed != 0 {
		t.Errorf("third deployment: %s, changed %d:\n%s", d.State, d.Changed, failures(d))
	}
	for _, q := range []struct{ method, path string }{
		{"GET", "/deployment-engine/manifest/variables"}, {"GET", "/deployment-engine/instances"}, {"GET", "/deployment-engine/config"},
		{"GET", "/deployment-engine/deployments/" + d.ID}, {"POST", "/deployment-engine/plan"}, {"GET", "/deployment-engine/audit"},
		{"GET", "/deployment-engine/logs/local.log"},
	} {
		_, out := e.Do(q.method, q.path, nil)
		answers = append(answers, string(out))
	}
	key = strings.TrimSpace(key)
	for i, a := range answers {
		if strings.Contains(a, password) || strings.Contains(a, again0) || (len(key) > 40 && strings.Contains(a, key)) {
			t.Errorf("answer %d shows a generated secret: %s", i, tail(a, 20))
		}
	}
	if strings.Contains(e.Log(), password) || strings.Contains(e.Log(), again0) || strings.Contains(e.Log(), key) {
		t.Errorf("the engine's log shows a generated secret")
	}
}

// checkBPM: job ticker's two processes, which bpm runs (the engine's, in
// place of the bpm job's own bin/bpm), run on node 0 as vcap, each with
// its environment and args, its output in bpm's logs, its pid where its
// monit check reads it; monit sees both. A stop through the API stops
// both; a restart brings both back.
func checkBPM(t *testing.T, e *harness.Engine) {
	t.Helper()
	const look = `cd /var/vcap/sys/run/bpm/ticker
for p in ticker slow; do
  pid=$(cat $p.pid) || exit 1
  echo "$p $(stat -c %U /proc/$pid) sid=$(ps -o sid= -p $pid | tr -d ' ') pid=$pid $(tr '\0' '\n' </proc/$pid/environ | grep '^TICKER_' | sort | tr '\n' ' ')"
  grep 'Max open files' /proc/$pid/limits | awk '{print "'$p' open files " $4}'
done
cat /var/vcap/sys/log/ticker/ticker.stdout.log
for p in ticker ticker-slow; do monit status $p | awk -v p=$p '$1=="status" {$1=""; print p ":" $0}'; done
/var/vcap/jobs/bpm/bin/bpm list`
	got := inNode(t, 0, look)
	t.Logf("bpm on node 0:\n%s", got)
	pids := map[string]string{}
	for _, l := range strings.Split(got, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && strings.HasPrefix(f[3], "pid=") {
			pids[f[0]] = strings.TrimPrefix(f[3], "pid=")
			if f[1] != "vcap" || f[2] != "sid="+pids[f[0]] {
				t.Errorf("%s runs as %s in session %s, want vcap in its own", f[0], f[1], f[2])
			}
		}
	}
	for _, want := range []string{"TICKER_ROLE=main TICKER_WORD=it's $(id) ok ", "TICKER_ROLE=slow ", "ticker open files 777", "ticker says it's $(id) ok",
		"ticker: OK", "ticker-slow: OK", "ticker.slow " + pids["slow"] + " running"} {
		if !strings.Contains(strings.Join(strings.Fields(got), " "), strings.TrimSpace(want)) {
			t.Errorf("node 0 lacks %q", want)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("ticker's pids: %v", pids)
	}
	if code, body := e.Do("PUT", "/deployment-engine/stop", map[string]string{"name": "ticker", "ip": ips(0)[0]}); code != 200 {
		t.Fatalf("stop ticker: %d %s", code, body)
	}
	if left := inNode(t, 0, "for p in "+pids["ticker"]+" "+pids["slow"]+"; do ! kill -0 $p 2>/dev/null || echo $p alive; done; ls /var/vcap/sys/run/bpm/ticker/ 2>&1; true"); strings.Contains(left, "alive") || strings.Contains(left, ".pid") {
		t.Errorf("after a stop through the API, ticker's processes or pidfiles stay: %s", left)
	}
	if code, body := e.Do("PUT", "/deployment-engine/restart", map[string]string{"name": "ticker", "ip": ips(0)[0]}); code != 200 {
		t.Fatalf("restart ticker: %d %s", code, body)
	}
	waitStatus(t, e, map[string]string{"ticker@" + ips(0)[0]: "RUNNING"})
	if again := inNode(t, 0, "cd /var/vcap/sys/run/bpm/ticker && for p in ticker slow; do kill -0 $(cat $p.pid) && echo $p runs; done; true"); again != "ticker runs\nslow runs\n" {
		t.Errorf("after a restart, ticker's processes: %q", again)
	}
}
