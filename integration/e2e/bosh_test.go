package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1" //nolint:gosec // the release format's checksum
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// The BOSH project's own release tarballs, kept as the release store's
// test data.
const sharedReleases = "../../planner/release/testdata"

// boshConfig is a config that deploys an uploaded release.
func boshConfig(rel string, comps map[string][]string, jobs map[string]any) map[string]any {
	c := config("bosh", comps)
	props := c["properties"].(map[string]any)
	props["release"] = rel
	props["jobs"] = jobs
	props["checkdisk"] = 0
	return c
}

// resetBosh takes a release's jobs off the nodes, so that later tests
// start from nodes without them.
func resetBosh(t *testing.T, jobs ...string) {
	t.Helper()
	script := `for j in ` + strings.Join(jobs, " ") + `; do
  f=/etc/monit/conf.d/$j
  if [ -e $f ]; then for p in $(awk '$1=="check" && $2=="process" {print $3}' $f); do monit stop $p >/dev/null 2>&1 || true; done; rm -f $f; fi
done
monit reload >/dev/null 2>&1 || true
pkill -KILL -f '^sleep 1000001$' || true
rm -rf /var/vcap
userdel vcap >/dev/null 2>&1 || true
groupdel vcap >/dev/null 2>&1 || true`
	for _, n := range bed.Nodes {
		if _, err := n.Exec(context.Background(), script); err != nil {
			t.Errorf("reset %s: %v", n.Name, err)
		}
	}
}

func upload(t *testing.T, e *harness.Engine, body []byte, want int) []byte {
	t.Helper()
	code, out := e.Do("POST", "/deployment-engine/releases", body)
	if code != want {
		t.Fatalf("upload: %d %s, want %d", code, out, want)
	}
	return out
}

func inNode(t *testing.T, i int, script string) string {
	t.Helper()
	out, err := bed.Nodes[i].Exec(context.Background(), script)
	if err != nil {
		t.Fatalf("node %d: %v", i, err)
	}
	return string(out)
}

func stepOf(d contract.Deployment, id string) (state, errText string) {
	for _, s := range d.Steps {
		if s.ID == id {
			return s.State, s.Error
		}
	}
	return "absent", ""
}

// stepIn is the step of d with id, nil when d has none.
func stepIn(d contract.Deployment, id string) *contract.StepStatus {
	for i := range d.Steps {
		if d.Steps[i].ID == id {
			return &d.Steps[i]
		}
	}
	return nil
}

// status asks /status until every instance of want is in its state.
func waitStatus(t *testing.T, e *harness.Engine, want map[string]string) {
	t.Helper()
	var body []byte
	deadline := time.Now().Add(reportWithin)
	for time.Now().Before(deadline) {
		var code int
		code, body = e.Do("GET", "/deployment-engine/status", nil)
		var got []struct{ Comp, Ip, Status string }
		if code == 200 && json.Unmarshal(body, &got) == nil {
			ok := 0
			for _, g := range got {
				if want[g.Comp+"@"+g.Ip] == g.Status {
					ok++
				}
			}
			if ok == len(want) {
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("status never showed %v: %s", want, body)
}

// The dummy release of the BOSH project: uploaded with its sibling and
// refused when tampered; its jobs deployed with a property from the
// config; a job whose package fails to compile fails its step with the
// packaging script's output while the other nodes finish, and the fixed
// config deploys.
func TestBoshDummyRelease(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer resetBosh(t, "dummy_with_properties", "dummy_with_package", "dummy_with_bad_package", "job_1_with_pre_start_script")

	dummy, err := os.ReadFile(filepath.Join(sharedReleases, "dummy-release.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	pre, err := os.ReadFile(filepath.Join(sharedReleases, "release_with_prestart_script-1.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	// One job's bytes changed: refused, naming the job, and nothing stored.
	out := upload(t, e, tamper(t, dummy, "jobs/dummy_with_package.tgz"), 400)
	if !strings.Contains(string(out), "jobs/dummy_with_package.tgz") || !strings.Contains(string(out), "sha1") {
		t.Errorf("tampered upload answer: %s", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.Data, "releases")); len(entries) != 0 {
		t.Fatalf("a tampered release left %d entries in the store", len(entries))
	}
	upload(t, e, dummy, 201)
	upload(t, e, pre, 201)
	code, body := e.Do("GET", "/deployment-engine/releases", nil)
	if code != 200 || !strings.Contains(string(body), `"release_with_prestart_script"`) || !strings.Contains(string(body), `"dummy_package"`) {
		t.Fatalf("releases: %d %s", code, body)
	}

	// Unknown jobs and properties are named before anything runs.
	code, body = e.Do("POST", "/deployment-engine/config?check=0", boshConfig("dummy",
		map[string][]string{"no_such_job": ips(0)},
		map[string]any{"dummy_with_properties": map[string]any{"colour": "red"}}))
	if code != 400 || !strings.Contains(string(body), "no_such_job") || !strings.Contains(string(body), "colour") {
		t.Errorf("bad config: %d %s", code, body)
	}

	const value = "echo-value-from-the-config-42"
	jobs := map[string]any{"dummy_with_properties": map[string]any{"dummy_with_properties": map[string]any{"echo_value": value}}}
	comps := map[string][]string{"dummy_with_properties": ips(0), "dummy_with_package": ips(1)}
	if code, body := e.Do("POST", "/deployment-engine/config", boshConfig("dummy", comps, jobs)); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	d := wait(t, e, deploy(t, e), 10*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	ctl := inNode(t, 0, "cat /var/vcap/jobs/dummy_with_properties/bin/dummy_with_properties_ctl; stat -c %a /var/vcap/jobs/dummy_with_properties/bin/dummy_with_properties_ctl")
	for _, w := range []string{"echo '" + value + "'", "release_name=dummy", "release_version=0.2-dev", "\n755\n"} {
		if !strings.Contains(ctl, w) {
			t.Errorf("rendered ctl script lacks %q:\n%s", w, ctl)
		}
	}
	if got := inNode(t, 1, "cat /var/vcap/packages/dummy_package/dummy_package_file"); !strings.Contains(got, "dummy contents") {
		t.Errorf("package file on node 1: %q", got)
	}
	if got := inNode(t, 0, "test -e /var/vcap/packages/dummy_package/dummy_package_file && echo present || echo absent"); strings.TrimSpace(got) != "absent" {
		t.Errorf("dummy_package reached node 0, whose job does not need it: %s", got)
	}
	inNode(t, 0, "monit status dummy_with_properties >/dev/null")
	inNode(t, 1, "monit status dummy_with_package >/dev/null")
	waitStatus(t, e, map[string]string{"dummy_with_properties@" + ips(0)[0]: "RUNNING", "dummy_with_package@" + ips(1)[0]: "RUNNING"})

	// Deploying again changes nothing: no package is compiled again.
	d = wait(t, e, deploy(t, e), 6*time.Minute)
	if d.State != "succeeded" || d.Changed != 0 {
		t.Errorf("second deployment: %s, changed %d:\n%s", d.State, d.Changed, failures(d))
	}

	// A job whose package does not compile.
	comps["dummy_with_bad_package"] = ips(2)
	if code, body := e.Do("POST", "/deployment-engine/config", boshConfig("dummy", comps, jobs)); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	jobs["dummy_with_properties"] = map[string]any{"dummy_with_properties": map[string]any{"echo_value": value + "-2"}}
	if code, body := e.Do("POST", "/deployment-engine/config", boshConfig("dummy", comps, jobs)); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	d = wait(t, e, deploy(t, e), 10*time.Minute)
	if d.State != "failed" {
		t.Fatalf("deployment with bad_package: %s", d.State)
	}
	state, errText := stepOf(d, ips(2)[0]+"/dummy_with_bad_package/compile")
	if state != "failed" || !strings.Contains(errText, "this failed") {
		t.Errorf("bad_package step: %s %q, want failed with the packaging script's output", state, errText)
	}
	if state, _ := stepOf(d, ips(0)[0]+"/dummy_with_properties/start"); state != "succeeded" {
		t.Errorf("the other node's changed job: %s, want succeeded", state)
	}
	if got := inNode(t, 0, "cat /var/vcap/jobs/dummy_with_properties/bin/dummy_with_properties_ctl"); !strings.Contains(got, value+"-2") {
		t.Errorf("the other node did not get its change")
	}
	code, body = e.Do("GET", "/deployment-engine/logs/dummy_with_bad_package_0.log", nil)
	if code != 200 || !strings.Contains(string(body), "this failed") {
		t.Errorf("the job's log lacks the packaging output: %d %s", code, tail(string(body), 10))
	}
	// The fixed config deploys; what succeeded before is not done again,
	// and the job whose package failed, dropped, is removed from its node.
	delete(comps, "dummy_with_bad_package")
	if code, body := e.Do("POST", "/deployment-engine/config", boshConfig("dummy", comps, jobs)); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	d = wait(t, e, deploy(t, e), 6*time.Minute)
	removed := ""
	for _, st := range d.Steps {
		if st.State == "succeeded" {
			removed += st.Component + "/" + st.Action + " "
		}
	}
	if d.State != "succeeded" || d.Changed != 1 || removed != "dummy_with_bad_package/remove " {
		t.Errorf("fixed config: %s, changed %d (%s):\n%s", d.State, d.Changed, removed, failures(d))
	}

	// The pre-start release: pre-start runs with the config's value before
	// monit is asked to start the job. That start then fails: the release's
	// monit file names bin/job_1_with_pre_start_script_ctl, which its job
	// does not ship (it has bin/job_1_ctl), and the step says so at once.
	const msg = "pre-start-message-from-the-config"
	preJob := "job_1_with_pre_start_script"
	if code, body := e.Do("POST", "/deployment-engine/config", boshConfig("release_with_prestart_script/1",
		map[string][]string{preJob: ips(3)}, map[string]any{preJob: map[string]any{"pre_start_message_1": msg}})); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	d = wait(t, e, deploy(t, e), 10*time.Minute)
	var preDone, startBegan *time.Time
	for _, s := range d.Steps {
		switch s.ID {
		case ips(3)[0] + "/" + preJob + "/pre-start":
			if s.State != "succeeded" {
				t.Errorf("pre-start: %s %s", s.State, s.Error)
			}
			preDone = s.Finished
		case ips(3)[0] + "/" + preJob + "/start":
			if s.State != "failed" || !strings.Contains(s.Error, "Execution failed") {
				t.Errorf("start of the job whose monit names a missing script: %s %q", s.State, s.Error)
			}
			startBegan = s.Started
		}
	}
	if preDone == nil || startBegan == nil || startBegan.Before(*preDone) {
		t.Errorf("monit was asked to start the job (%v) before pre-start finished (%v)", startBegan, preDone)
	}
	// The dummy jobs this config no longer places are taken off their nodes.
	for i, job := range map[int]string{0: "dummy_with_properties", 1: "dummy_with_package"} {
		if state, errText := stepOf(d, ips(i)[0]+"/"+job+"/remove"); state != "succeeded" {
			t.Errorf("remove %s: %s %s", job, state, errText)
		}
		if got := inNode(t, i, "ls /etc/monit/conf.d/"+job+" /var/vcap/jobs/"+job+" 2>/dev/null || true"); strings.TrimSpace(got) != "" {
			t.Errorf("%s left on node %d: %s", job, i, got)
		}
	}
	logs := inNode(t, 3, "cat /var/vcap/sys/log/"+preJob+"/pre-start.stdout.log /var/vcap/sys/log/"+preJob+"/pre-start.stderr.log")
	for _, w := range []string{"template interpolation works in this script: " + msg, "message on stderr of job 1 pre-start script"} {
		if !strings.Contains(logs, w) {
			t.Errorf("pre-start logs lack %q:\n%s", w, logs)
		}
	}
}

// A release built here: a db job with a real daemon under monit and a
// pre-start, provided as a link to an app job on another node whose
// package chain (app → libapp → base) compiles in order.
func TestBoshLinksAndPackageChain(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer resetBosh(t, "db", "app")
	upload(t, e, linkedRelease("3", ""), 201)

	comps := map[string][]string{"db": ips(0, 1), "app": ips(2)}
	jobs := map[string]any{"app": map[string]any{"name": "shop"}, "db": map[string]any{"port": 6543}}
	cfg := boshConfig("linked/3", comps, jobs)
	cfg["properties"].(map[string]any)["azs"] = map[string][]string{"z2": ips(1)}
	if code, body := e.Do("POST", "/deployment-engine/config", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	d := wait(t, e, deploy(t, e), 10*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	conf := inNode(t, 2, "cat /var/vcap/jobs/app/config/app.conf")
	for _, w := range []string{
		"db: " + ips(0)[0] + " z1 true port=6543",
		"db: " + ips(1)[0] + " z2 false port=6543",
		"name=shop", "az=z1 bootstrap=true",
	} {
		if !strings.Contains(conf, w) {
			t.Errorf("app.conf lacks %q:\n%s", w, conf)
		}
	}
	// Each package's build saw its dependencies' (libapp's packaging reads
	// base's file; app's reads libapp's), and their times are in order.
	got := inNode(t, 2, "cat /var/vcap/packages/app/chain; for p in base libapp app; do cat /var/vcap/packages/$p/built; done")
	lines := strings.Fields(got)
	if len(lines) != 6 || lines[0] != "base" || lines[1] != "libapp" || lines[2] != "app" {
		t.Fatalf("package chain: %q", got)
	}
	if !(atoi(lines[3]) <= atoi(lines[4]) && atoi(lines[4]) <= atoi(lines[5])) {
		t.Errorf("packages compiled out of order: %v", lines[3:])
	}
	if got := inNode(t, 0, "ls /var/vcap/packages"); strings.TrimSpace(got) != "base" {
		t.Errorf("db's node has packages %q, want base only", got)
	}
	// pre-start ran, with its output kept, before monit started the daemon.
	for _, i := range []int{0, 1} {
		ts := strings.Fields(inNode(t, i, "cat /var/vcap/sys/run/db/prestart.ts /var/vcap/sys/run/db/start.ts; cat /var/vcap/sys/log/db/pre-start.stdout.log"))
		if len(ts) < 3 || atoi(ts[0]) > atoi(ts[1]) || !strings.Contains(strings.Join(ts[2:], " "), "pre-start of db 6543") {
			t.Errorf("node %d: pre-start then start: %v", i, ts)
		}
		inNode(t, i, "monit status db | grep -Eq '^[[:space:]]+status[[:space:]]+OK'")
	}
	waitStatus(t, e, map[string]string{"db@" + ips(0)[0]: "RUNNING", "db@" + ips(1)[0]: "RUNNING", "app@" + ips(2)[0]: "CONFIGURED"})
	// base was compiled once, by the first compile step that needs it
	// (app's, on node 2, which compiles libapp and app on it), and put on
	// the engine; db's two nodes fetched it after that step, compiling
	// nothing: each one's base holds node 2's build time.
	built := []string{inNode(t, 2, "cat /var/vcap/packages/base/built"), inNode(t, 0, "cat /var/vcap/packages/base/built"), inNode(t, 1, "cat /var/vcap/packages/base/built")}
	if built[0] != built[1] || built[0] != built[2] {
		t.Errorf("base was compiled more than once (built %q on node 2, %q and %q on db's nodes)", built[0], built[1], built[2])
		for _, log := range []string{"app_0.log", "db_0.log", "db_1.log"} {
			_, body := e.Do("GET", "/deployment-engine/logs/"+log, nil)
			t.Logf("%s:\n%s", log, tail(string(body), 40))
		}
	}
	compiler := stepIn(d, ips(2)[0]+"/app/compile")
	for _, i := range []int{0, 1} {
		s := stepIn(d, ips(i)[0]+"/db/compile")
		if compiler == nil || s == nil || compiler.Finished == nil || s.Started == nil || s.Started.Before(*compiler.Finished) {
			t.Errorf("db's compile on node %d began before app's, which compiles base, ended: %+v, %+v", i, compiler, s)
		}
	}
	if !strings.Contains(e.Log(), "compiled package kept") {
		t.Errorf("the engine kept no compiled package:\n%s", tail(e.Log(), 30))
	}

	d = wait(t, e, deploy(t, e), 6*time.Minute)
	if d.State != "succeeded" || d.Changed != 0 {
		t.Errorf("second deployment: %s, changed %d:\n%s", d.State, d.Changed, failures(d))
	}

	// Stopping a job through the API drains it first, as BOSH does.
	if code, body := e.Do("PUT", "/deployment-engine/stop", map[string]string{"name": "db", "ip": ips(0)[0]}); code != 200 {
		t.Fatalf("stop db: %d %s", code, body)
	}
	if calls := inNode(t, 0, "cat /var/vcap/sys/run/db/drain.calls"); !strings.Contains(calls, "job_shutdown hash_unchanged") {
		t.Errorf("drain before stop: %q", calls)
	}
	if got := inNode(t, 0, "pgrep -fx 'sleep 1000001' || true"); strings.TrimSpace(got) != "" {
		t.Errorf("db's daemon still runs after stop: %s", got)
	}

	// A new version whose base package does not compile: the compile
	// fails, once (on node 2, whose step compiles base; db's wait for it
	// and do not run), and the running version's package and job stay as
	// they were: db restarts on its old version.
	upload(t, e, linkedRelease("4", "echo half > ${BOSH_INSTALL_TARGET}/chain\necho base-v4-failed >&2\nexit 1\n"), 201)
	cfg = boshConfig("linked/4", comps, jobs)
	cfg["properties"].(map[string]any)["azs"] = map[string][]string{"z2": ips(1)}
	if code, body := e.Do("POST", "/deployment-engine/config", cfg); code != 201 {
		t.Fatalf("config v4: %d %s", code, body)
	}
	d = wait(t, e, deploy(t, e), 10*time.Minute)
	if state, errText := stepOf(d, ips(2)[0]+"/app/compile"); d.State != "failed" || state != "failed" || !strings.Contains(errText, "base-v4-failed") {
		t.Fatalf("v4 with a failing base: %s, app/compile %s %q", d.State, state, errText)
	}
	for _, i := range []int{0, 1} {
		if state, _ := stepOf(d, ips(i)[0]+"/db/compile"); state != "skipped" {
			t.Errorf("db's compile on node %d after base failed to compile once: %s, want skipped", i, state)
		}
	}
	for _, i := range []int{0, 2} {
		if got := strings.TrimSpace(inNode(t, i, "cat /var/vcap/packages/base/chain")); got != "base" {
			t.Errorf("node %d's base package after a failed compile reads %q, want the running version's, base", i, got)
		}
	}
	if code, body := e.Do("PUT", "/deployment-engine/restart", map[string]string{"name": "db", "ip": ips(0)[0]}); code != 200 {
		t.Fatalf("restart db on its old version after a failed compile: %d %s", code, body)
	}
	waitStatus(t, e, map[string]string{"db@" + ips(0)[0]: "RUNNING"})
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

const linkedAppConf = `name=<%= p('name') %>
spec: az=<%= spec.az %> bootstrap=<%= spec.bootstrap %>
<% link('db').instances.each do |i| -%>
db: <%= i.address %> <%= i.az %> <%= i.bootstrap %> port=<%= link('db').p('port') %>
<% end -%>
`

const linkedDBCtl = `#!/bin/bash
run=/var/vcap/sys/run/db
case $1 in
  start)
    # The job runs on its base package: a base half-built by a failed
    # compile would not start.
    grep -qx base /var/vcap/packages/base/chain || exit 1
    date +%s%N > $run/start.ts
    ( exec -a "sleep" sleep 1000001 ) >/dev/null 2>&1 &
    echo $! > $run/db.pid ;;
  stop)
    kill $(cat $run/db.pid); rm -f $run/db.pid ;;
esac
`

// linkedRelease builds the release in BOSH's format, at version; a
// basePackaging replaces base's packaging script.
func linkedRelease(version, basePackaging string) []byte {
	jobs := map[string]map[string]string{
		"db": {
			"job.MF": `---
name: db
templates: {ctl.erb: bin/ctl, pre-start.erb: bin/pre-start, drain: bin/drain}
packages: [base]
provides: [{name: db, type: database, properties: [port]}]
properties:
  port: {default: 5432}
`,
			"monit":                   "check process db\n  with pidfile /var/vcap/sys/run/db/db.pid\n  start program \"/var/vcap/jobs/db/bin/ctl start\"\n  stop program \"/var/vcap/jobs/db/bin/ctl stop\"\n",
			"templates/ctl.erb":       linkedDBCtl,
			"templates/drain":         "#!/bin/bash\necho \"$@\" >> /var/vcap/sys/run/db/drain.calls\necho 0\n",
			"templates/pre-start.erb": "#!/bin/bash\ndate +%s%N > /var/vcap/sys/run/db/prestart.ts\nsleep 0.01\necho pre-start of db <%= p('port') %>\n",
		},
		"app": {
			"job.MF": `---
name: app
templates: {app.conf.erb: config/app.conf}
packages: [app]
consumes: [{name: db, type: database}]
properties:
  name: {description: required}
`,
			"monit":                  "",
			"templates/app.conf.erb": linkedAppConf,
		},
	}
	pkgs := []struct{ name, deps, packaging string }{
		{"base", "[]", "echo base > ${BOSH_INSTALL_TARGET}/chain\ndate +%s%N > ${BOSH_INSTALL_TARGET}/built\n"},
		{"libapp", "[base]", "cat ${BOSH_PACKAGES_DIR}/base/chain > ${BOSH_INSTALL_TARGET}/chain\necho libapp >> ${BOSH_INSTALL_TARGET}/chain\ndate +%s%N > ${BOSH_INSTALL_TARGET}/built\n"},
		{"app", "[libapp]", "cat ${BOSH_PACKAGES_DIR}/libapp/chain > ${BOSH_INSTALL_TARGET}/chain\necho app >> ${BOSH_INSTALL_TARGET}/chain\ndate +%s%N > ${BOSH_INSTALL_TARGET}/built\n"},
	}
	if basePackaging != "" {
		pkgs[0].packaging = basePackaging
	}
	files := map[string][]byte{}
	mf := "---\nname: linked\nversion: '" + version + "'\npackages:\n"
	for _, p := range pkgs {
		b := targz(map[string][]byte{"packaging": []byte(p.packaging)})
		files["packages/"+p.name+".tgz"] = b
		mf += fmt.Sprintf("- name: %s\n  version: '%s'\n  fingerprint: %s\n  sha1: %s\n  dependencies: %s\n", p.name, sha1hex(b)[:12], sha1hex(b), sha1hex(b), p.deps)
	}
	mf += "jobs:\n"
	for _, name := range []string{"db", "app"} {
		f := map[string][]byte{}
		for k, v := range jobs[name] {
			f[k] = []byte(v)
		}
		b := targz(f)
		files["jobs/"+name+".tgz"] = b
		mf += fmt.Sprintf("- name: %s\n  version: '1'\n  fingerprint: %s\n  sha1: %s\n", name, sha1hex(b), sha1hex(b))
	}
	files["release.MF"] = []byte(mf)
	return targz(files)
}

func sha1hex(b []byte) string {
	h := sha1.Sum(b) //nolint:gosec
	return hex.EncodeToString(h[:])
}

func targz(files map[string][]byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		_ = tw.WriteHeader(&tar.Header{Name: "./" + n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		_, _ = tw.Write(files[n])
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// tamper rewrites a release tarball with one byte of file changed.
func tamper(t *testing.T, tgz []byte, file string) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(h.Name, "./")] = b
	}
	b, ok := files[file]
	if !ok {
		t.Fatalf("no %s in the release", file)
	}
	b[len(b)/2] ^= 0xff
	return targz(files)
}
