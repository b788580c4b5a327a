package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus/bustest"
)

// hooksCalls is where the hooks release's scripts log their calls on a
// node: outside /var/vcap, which a removal partly deletes.
const hooksCalls = "/var/tmp/web-hooks.calls"

// A job of two processes is stopped as BOSH stops one: on an update its
// old version's pre-stop (everything kept), drain, monit's stop of both
// processes and post-stop once both ended; through the API, each stop
// wrapper runs pre-stop and drain before its process stops; on a removal,
// pre-stop told the instance goes, drain, stop and post-stop.
func TestBoshStopHooks(t *testing.T) {
	natsPort := bustest.FreePort(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort))
	defer func() {
		resetBosh(t, "web-hooks", "idle")
		for _, n := range bed.Nodes {
			_, _ = n.Exec(context.Background(), "pkill -KILL -fx 'sleep 100000[23]' || true; rm -f "+hooksCalls)
		}
	}()
	upload(t, e, hooksRelease(), 201)
	apply := func(comps map[string][]string, greeting string) {
		t.Helper()
		cfg := boshConfig("hooks/1", comps, map[string]any{"web-hooks": map[string]any{"greeting": greeting}})
		if _, ok := comps["web-hooks"]; !ok {
			cfg = boshConfig("hooks/1", comps, map[string]any{})
		}
		if code, body := e.Do("POST", "/deployment-engine/config", cfg); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		if d := wait(t, e, deploy(t, e), 8*time.Minute); d.State != "succeeded" {
			t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
		}
	}
	calls := func() string {
		t.Helper()
		return inNode(t, 0, "cat "+hooksCalls+" 2>/dev/null; rm -f "+hooksCalls)
	}
	both := map[string][]string{"web-hooks": ips(0), "idle": ips(1)}
	apply(both, "v1")
	if got := calls(); got != "" {
		t.Errorf("a first deployment stopped something: %q", got)
	}

	apply(both, "v2")
	want := "pre-stop keep keep keep v1\n" + `drain job_changed hash_changed {"persistent_disk":0}` + "\npost-stop 0 running\n"
	if got := calls(); got != want {
		t.Errorf("the update's stop:\n%s\nwant\n%s", got, want)
	}
	waitStatus(t, e, map[string]string{"web-hooks@" + ips(0)[0]: "RUNNING"})

	if code, body := e.Do("PUT", "/deployment-engine/stop", map[string]string{"name": "web-hooks", "ip": ips(0)[0]}); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	// Each process's stop wrapper runs them: twice for two processes.
	stop := "pre-stop keep keep keep v2\n" + `drain job_shutdown hash_unchanged {"persistent_disk":0}` + "\n"
	if got := calls(); got != stop+stop {
		t.Errorf("the API's stop:\n%s\nwant\n%s", got, stop+stop)
	}
	if code, body := e.Do("PUT", "/deployment-engine/restart", map[string]string{"name": "web-hooks", "ip": ips(0)[0]}); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	waitStatus(t, e, map[string]string{"web-hooks@" + ips(0)[0]: "RUNNING"})
	_ = calls() // a restart stops what runs first

	apply(map[string][]string{"idle": ips(1)}, "")
	want = "pre-stop delete delete keep v2\n" + `drain job_shutdown hash_unchanged {"persistent_disk":0}` + "\npost-stop 0 running\n"
	if got := calls(); got != want {
		t.Errorf("the removal's stop:\n%s\nwant\n%s", got, want)
	}
	if got := inNode(t, 0, "ls /etc/monit/conf.d/web-hooks /var/vcap/jobs/web-hooks 2>&1 || true; pgrep -fx 'sleep 100000[23]' || true"); !strings.Contains(got, "No such file") || strings.Count(got, "No such file") != 2 {
		t.Errorf("the removed job left: %s", got)
	}
}

const hooksCtl = `#!/bin/bash
run=/var/vcap/sys/run/web-hooks
mkdir -p $run
n=1000002; [ "$2" = helper ] && n=1000003
case $1 in
  start) ( exec -a sleep sleep $n ) >/dev/null 2>&1 &
    echo $! > $run/$2.pid ;;
  stop) kill $(cat $run/$2.pid) 2>/dev/null; rm -f $run/$2.pid ;;
esac
`

const hooksMonit = `check process web-hooks-main
  with pidfile /var/vcap/sys/run/web-hooks/main.pid
  start program "/var/vcap/jobs/web-hooks/bin/ctl start main"
  stop program "/var/vcap/jobs/web-hooks/bin/ctl stop main"
check process web-hooks-helper
  with pidfile /var/vcap/sys/run/web-hooks/helper.pid
  start program "/var/vcap/jobs/web-hooks/bin/ctl start helper"
  stop program "/var/vcap/jobs/web-hooks/bin/ctl stop helper"
`

// hooksRelease is a release of a job with two processes whose pre-stop,
// drain and post-stop log their calls and environment, and of a job with
// no process.
func hooksRelease() []byte {
	jobs := map[string]map[string]string{
		"web-hooks": {
			"job.MF": `---
name: web-hooks
templates: {ctl: bin/ctl, pre-stop.erb: bin/pre-stop, drain: bin/drain, post-stop: bin/post-stop}
packages: []
properties:
  greeting: {default: v0}
`,
			"monit":         hooksMonit,
			"templates/ctl": hooksCtl,
			"templates/pre-stop.erb": "#!/bin/bash\necho \"pre-stop $BOSH_VM_NEXT_STATE $BOSH_INSTANCE_NEXT_STATE $BOSH_DEPLOYMENT_NEXT_STATE <%= p('greeting') %>\" >> " +
				hooksCalls + "\n",
			"templates/drain":     "#!/bin/bash\necho \"drain $* $BOSH_JOB_STATE\" >> " + hooksCalls + "\necho 0\n",
			"templates/post-stop": "#!/bin/bash\necho \"post-stop $(pgrep -fxc 'sleep 100000[23]') running\" >> " + hooksCalls + "\n",
		},
		"idle": {
			"job.MF":              "---\nname: idle\ntemplates: {idle.conf: config/idle.conf}\npackages: []\n",
			"monit":               "",
			"templates/idle.conf": "idle\n",
		},
	}
	files := map[string][]byte{}
	mf := "---\nname: hooks\nversion: '1'\npackages: []\njobs:\n"
	for _, name := range []string{"web-hooks", "idle"} {
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
