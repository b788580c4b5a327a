package console

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	consolefs "github.com/deployment-engine/engine/api/console"
)

// scriptedAPI serves the console's files with an API that answers the
// shapes of SPEC from fixed data: the views that need a cluster (a
// deployment's live progress, status with restart and stop, hardware,
// logs, scale-out) are driven here without nodes. The addresses are from
// the documentation range 192.0.2.0/24; nothing contacts them.
type scriptedAPI struct {
	mu      sync.Mutex
	calls   []string // "PUT /stop {"ip":...}" and the like
	release chan struct{}
}

const demoID = "d-20260315-7f3a"

var demoSteps = []struct{ node, comp, action string }{
	{"192.0.2.11", "base", "prepare"}, {"192.0.2.12", "base", "prepare"}, {"192.0.2.13", "base", "prepare"}, {"192.0.2.14", "base", "prepare"},
	{"192.0.2.11", "etcd", "install"}, {"192.0.2.12", "web", "install"}, {"192.0.2.13", "web", "install"}, {"192.0.2.14", "database", "install"},
	{"192.0.2.12", "nats", "install"}, {"192.0.2.14", "nats", "install"}, {"192.0.2.13", "redis", "install"}, {"192.0.2.11", "haproxy", "install"},
}

func stepID(i int) string {
	s := demoSteps[i]
	return s.node + "/" + s.comp + "/" + s.action
}

func (s *scriptedAPI) record(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(b)))
}

func (s *scriptedAPI) called(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (s *scriptedAPI) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(consolefs.FS()))
	api := http.NewServeMux()
	mux.Handle("/deployment-engine/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"missing or wrong API token"}`)
			return
		}
		api.ServeHTTP(w, r)
	}))
	js := func(w http.ResponseWriter, code int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
	api.HandleFunc("GET /deployment-engine/deployments", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, `[{"id":"d-20260314-1c2d","state":"succeeded","changed":14,"created":"2026-03-14T09:12:00Z","finished":"2026-03-14T09:19:41Z"}]`)
	})
	api.HandleFunc("GET /deployment-engine/config", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, `{"components":{"haproxy":["192.0.2.11"],"etcd":["192.0.2.11"],"web":["192.0.2.12","192.0.2.13"],"nats":["192.0.2.12","192.0.2.14"],"redis":["192.0.2.13"],"database":["192.0.2.14"]},
			"properties":{"catalog":"starter","domain":"demo.local","home":"192.0.2.1","checkdisk":1,"disksize":1,"adduser":0,"key":"<redacted>"}}`)
	})
	api.HandleFunc("POST /deployment-engine/plan", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(scriptedPlan)
		js(w, 200, string(b))
	})
	api.HandleFunc("POST /deployment-engine/deploy", func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		js(w, 202, `{"id":"`+demoID+`"}`)
	})
	api.HandleFunc("POST /deployment-engine/scale", func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		js(w, 202, `{"id":"`+demoID+`"}`)
	})
	api.HandleFunc("GET /deployment-engine/deployments/{id}", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, s.snapshot(true))
	})
	api.HandleFunc("GET /deployment-engine/deployments/{id}/report", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, scriptedReport)
	})
	api.HandleFunc("GET /deployment-engine/deployments/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		s.events(t, w, r)
	})
	api.HandleFunc("GET /deployment-engine/status", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, `[
			{"Comp":"haproxy","Ip":"192.0.2.11","Cpu":"2.1%","Mem":"41.20%","Disk":"18%","Status":"RUNNING"},
			{"Comp":"etcd","Ip":"192.0.2.11","Cpu":"2.1%","Mem":"41.20%","Disk":"18%","Status":"RUNNING"},
			{"Comp":"web","Ip":"192.0.2.12","Cpu":"12.48%","Mem":"63.05%","Disk":"22%","Status":"RUNNING"},
			{"Comp":"nats","Ip":"192.0.2.12","Cpu":"12.48%","Mem":"63.05%","Disk":"22%","Status":"RUNNING"},
			{"Comp":"web","Ip":"192.0.2.13","Cpu":"9.7%","Mem":"58.91%","Disk":"21%","Status":"RUNNING"},
			{"Comp":"redis","Ip":"192.0.2.13","Cpu":"9.7%","Mem":"58.91%","Disk":"21%","Status":"DOWN"},
			{"Comp":"database","Ip":"192.0.2.14","Cpu":"31.02%","Mem":"92.40%","Disk":"74%","Status":"RUNNING"},
			{"Comp":"nats","Ip":"192.0.2.14","Cpu":"31.02%","Mem":"92.40%","Disk":"74%","Status":"RUNNING"}]`)
	})
	api.HandleFunc("GET /deployment-engine/maintenance", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, `[{"ip":"192.0.2.14","on":true,"reason":"disk swap","actor":"alice","since":"2026-03-14T09:00:00Z"}]`)
	})
	api.HandleFunc("PUT /deployment-engine/nodes/{ip}/maintenance", func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		js(w, 200, `{}`)
	})
	api.HandleFunc("PUT /deployment-engine/{verb}", func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		js(w, 200, `{}`)
	})
	api.HandleFunc("GET /deployment-engine/hardware", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("comp") != "all" || r.URL.Query().Get("ip") != "0.0.0.0" {
			js(w, 400, `{"error":"want comp=all&ip=0.0.0.0"}`)
			return
		}
		js(w, 200, `[{"Comp":"haproxy","IP":"192.0.2.11","CPU":2,"RAM":4049952,"DISK":54988.8},
			{"Comp":"web","IP":"192.0.2.12","CPU":2,"RAM":4049952,"DISK":54988.8},
			{"Comp":"web","IP":"192.0.2.13","CPU":1,"RAM":2017356,"DISK":20480},
			{"Comp":"database","IP":"192.0.2.14","CPU":4,"RAM":8165432,"DISK":102400}]`)
	})
	api.HandleFunc("GET /deployment-engine/download", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, `["local.log","haproxy_0.log","nats_0.log","nats_1.log"]`)
	})
	api.HandleFunc("GET /deployment-engine/logs/follow", func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: line\ndata: %s\n\n", `{"node":"192.0.2.12","component":"web","instance":"web_0.log","file":"/var/log/web.log","time":"2026-03-15T10:00:00Z","line":"tail line","tail":true}`)
		fmt.Fprintf(w, "event: line\ndata: %s\n\n", `{"node":"192.0.2.13","component":"web","instance":"web_1.log","file":"/var/log/web.log","time":"2026-03-15T10:00:01Z","line":"<b>live</b> password=<redacted>"}`)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // live until the console stops following
	})
	api.HandleFunc("GET /deployment-engine/logs/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "log of %s\nline 2\n", r.PathValue("name"))
	})
	return mux
}

// snapshot is the deployment as GET /deployments/{id} shows it.
func (s *scriptedAPI) snapshot(final bool) string {
	type step struct {
		ID        string  `json:"id"`
		Node      string  `json:"node"`
		Component string  `json:"component"`
		Action    string  `json:"action"`
		State     string  `json:"state"`
		Attempt   int     `json:"attempt"`
		Started   *string `json:"started"`
		Finished  *string `json:"finished"`
	}
	start := "2026-03-15T10:00:00Z"
	d := struct {
		ID       string  `json:"id"`
		State    string  `json:"state"`
		Changed  int     `json:"changed"`
		Created  string  `json:"created"`
		Finished *string `json:"finished,omitempty"`
		Steps    []step  `json:"steps"`
	}{ID: demoID, State: "running", Created: start}
	for i, st := range demoSteps {
		x := step{ID: stepID(i), Node: st.node, Component: st.comp, Action: st.action, State: "pending"}
		if final {
			x.State, x.Attempt, x.Started, x.Finished = "succeeded", 1, &start, &start
		}
		d.Steps = append(d.Steps, x)
	}
	if final {
		end := "2026-03-15T10:04:12Z"
		d.State, d.Changed, d.Finished = "succeeded", len(demoSteps), &end
	}
	b, _ := json.Marshal(d)
	return string(b)
}

// events streams the deployment: eight steps done (one after a retry),
// two running with their log, then — once the test releases it — the rest
// and "finished".
func (s *scriptedAPI) events(t *testing.T, w http.ResponseWriter, r *http.Request) {
	fl := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(kind, data string) {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, data)
		fl.Flush()
	}
	t0 := time.Now().Add(-3 * time.Minute).UTC()
	ts := func(sec int) string { return t0.Add(time.Duration(sec) * time.Second).Format(time.RFC3339) }
	step := func(i int, state string, attempt, from, to int, errText string) {
		st := demoSteps[i]
		fin := ""
		if to > 0 {
			fin = `,"finished":"` + ts(to) + `"`
		}
		e := ""
		if errText != "" {
			e = `,"error":"` + errText + `","exit_code":100`
		}
		send("step", fmt.Sprintf(`{"v":1,"deployment":%q,"id":%q,"node":%q,"component":%q,"action":%q,"state":%q,"attempt":%d,"started":%q%s%s}`,
			demoID, stepID(i), st.node, st.comp, st.action, state, attempt, ts(from), fin, e))
	}
	seq := 0
	logLine := func(i int, sec int, stream, line string) {
		st := demoSteps[i]
		seq++
		send("log", fmt.Sprintf(`{"v":1,"deployment":%q,"node":%q,"component":%q,"step":%q,"stream":%q,"seq":%d,"time":%q,"line":%q}`,
			demoID, st.node, st.comp, stepID(i), stream, seq, ts(sec), line))
	}
	send("deployment", strings.Replace(s.snapshot(false), `"created":"2026-03-15T10:00:00Z"`, `"created":"`+ts(0)+`"`, 1))
	send("started", fmt.Sprintf(`{"v":1,"id":%q,"state":"running","time":%q}`, demoID, ts(0)))
	for i := 0; i < 4; i++ {
		step(i, "running", 1, 1, 0, "")
		logLine(i, 2, "stdout", "Hit:1 http://192.0.2.1:50000/mirror ./ InRelease")
		logLine(i, 3, "stdout", "Setting up monit (1:5.33.0-1) ...")
		step(i, "succeeded", 1, 1, 14+i, "")
	}
	// A rollout's batches: the canary's verdict, the next batch under way.
	send("batch", fmt.Sprintf(`{"v":1,"id":%q,"time":%q,"batch":{"component":"web","index":0,"canary":true,"nodes":["192.0.2.12"],"state":"healthy","steps":[]}}`, demoID, ts(18)))
	send("batch", fmt.Sprintf(`{"v":1,"id":%q,"time":%q,"batch":{"component":"web","index":1,"canary":false,"nodes":["192.0.2.13"],"state":"running","steps":[]}}`, demoID, ts(19)))
	for i := 4; i < 8; i++ {
		step(i, "running", 1, 20, 0, "")
		logLine(i, 22, "stdout", "Reading package lists...")
		logLine(i, 25, "stdout", "Unpacking "+demoSteps[i].comp+" ...")
	}
	step(7, "failed", 1, 20, 61, "apt-get: unable to fetch postgresql-15 (transfer incomplete)")
	logLine(7, 61, "stderr", "E: Failed to fetch http://192.0.2.1:50000/mirror/postgresql-15.deb  Size mismatch")
	step(7, "running", 2, 63, 0, "")
	for i := 4; i < 7; i++ {
		logLine(i, 70, "stdout", "Created symlink /etc/systemd/system/multi-user.target.wants/"+demoSteps[i].comp+".service.")
		step(i, "succeeded", 1, 20, 72+i, "")
	}
	logLine(7, 95, "stdout", "Setting up postgresql-15 (15.10-0+deb12u1) ...")
	step(7, "succeeded", 2, 63, 101, "")
	step(8, "running", 1, 102, 0, "")
	step(9, "running", 1, 102, 0, "")
	logLine(8, 104, "stdout", "Setting up nats-server (2.9.11-1+b6) ...")
	logLine(9, 105, "stdout", "Setting up nats-server (2.9.11-1+b6) ...")
	logLine(9, 106, "stdout", "monit: 'nats' start on user request")

	select {
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	step(8, "succeeded", 1, 102, 130, "")
	step(9, "succeeded", 1, 102, 131, "")
	for i := 10; i < 12; i++ {
		step(i, "running", 1, 132, 0, "")
		logLine(i, 140, "stdout", "monit: '"+demoSteps[i].comp+"' start on user request")
		step(i, "succeeded", 1, 132, 150+i, "")
	}
	send("finished", fmt.Sprintf(`{"v":1,"id":%q,"state":"succeeded","changed":%d,"time":%q}`, demoID, len(demoSteps), ts(170)))
}

// TestConsoleViewsScripted drives the views that need a running cluster
// against the scripted API: deploy progress and log from the event stream
// (read with fetch, since EventSource cannot send the token), status with
// restart and stop (stop asks first), hardware, logs with download, and
// scale-out following its deployment; phone width with real content.
func TestConsoleViewsScripted(t *testing.T) {
	api := &scriptedAPI{release: make(chan struct{})}
	srv := httptest.NewServer(api.handler(t))
	t.Cleanup(srv.Close)
	base := srv.URL
	b := newBrowser(t)
	b.signIn(base, "Status")

	t.Run("deploy progress and live log", func(t *testing.T) {
		b.t = t
		b.run("open deploy", chromedp.Navigate(base+"/#/deploy"))
		b.waitText("#deploy-list", "d-20260314-1c2d")
		b.run("deploy", chromedp.Click(chromedp.ID("deploy-start")))
		// The plan, with its diff and drift, before anything starts.
		b.waitText("#deploy-plan", "+<h1>web 0 v2</h1>")
		b.waitText("#deploy-plan", "/etc/de-web/nginx.conf")
		b.waitText("#plan-summary", "2 action(s) on 1 node(s), 1 drifted file(s)")
		b.run("confirm the plan", chromedp.Click(chromedp.ID("deploy-confirm")))
		b.waitText("#deploy-progress", demoID)
		b.waitText("#deploy-batches", "canary")
		b.waitText(`#deploy-batches li[data-index="0"]`, "healthy")
		b.waitText(`#deploy-batches li[data-index="1"]`, "192.0.2.13")
		b.waitText("#deploy-count", "8/12 steps")
		b.waitText("#deploy-progress", "2 running")
		// The retried step: attempt 2, succeeded.
		retried := `#steps-table tr[data-step="192.0.2.14/database/install"]`
		got := b.waitText(retried, "succeeded")
		if !strings.Contains(got, "2") {
			t.Errorf("retried step row %q lacks attempt 2", got)
		}
		b.waitText("#deploy-log", "Size mismatch")
		var groups []string
		b.eval(`[...document.querySelectorAll("#steps-table tbody.node-group")].map(g => g.dataset.node)`, &groups)
		if strings.Join(groups, ",") != "192.0.2.11,192.0.2.12,192.0.2.13,192.0.2.14" {
			t.Errorf("steps are not grouped by node: %v", groups)
		}
		// Filter the log by node.
		b.run("filter", chromedp.SetValue(chromedp.ID("log-node"), "192.0.2.12"))
		var shown []string
		b.eval(`[...document.querySelectorAll("#deploy-log .log-line")].filter(l => !l.hidden).map(l => l.dataset.node)`, &shown)
		if len(shown) == 0 {
			t.Fatal("the filter hides every line")
		}
		for _, n := range shown {
			if n != "192.0.2.12" {
				t.Fatalf("filtered log shows a line of %s", n)
			}
		}
		// (chromedp's SetValue cannot set "": it arrives as undefined.)
		var hiddenLeft int
		b.eval(`(() => { const s = document.getElementById("log-node"); s.value = ""; s.dispatchEvent(new Event("change"));
			return document.querySelectorAll("#deploy-log .log-line[hidden]").length })()`, &hiddenLeft)
		if hiddenLeft != 0 {
			t.Errorf("%d log lines stay hidden after the filter is cleared", hiddenLeft)
		}
		var atBottom bool
		b.eval(`(() => { const l = document.getElementById("deploy-log"); return l.scrollHeight - l.scrollTop - l.clientHeight < 8 })()`, &atBottom)
		if !atBottom {
			t.Errorf("the live log does not follow its end")
		}
		if out := os.Getenv("DE_CONSOLE_SCREENSHOT"); out != "" {
			b.run("laptop", laptop())
			time.Sleep(300 * time.Millisecond)
			buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(out, buf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b.run("phone", phone())
		b.noHorizontalOverflow("deploy in progress")
		b.run("laptop", laptop())
		close(api.release)
		b.waitText("#deploy-count", "12/12 steps")
		b.waitText("#deploy-progress .badge", "succeeded")
		b.waitText("#stream-note", "finished")
		b.waitText("#deploy-log", "monit: 'haproxy' start on user request")
	})

	t.Run("status", func(t *testing.T) {
		b.t = t
		b.run("open status", chromedp.Navigate(base+"/#/status"))
		b.waitText("#status-table", "192.0.2.14")
		b.waitText("#status-summary", "7 running")
		b.waitText("#status-summary", "1 down")
		var badges []string
		b.eval(`[...document.querySelectorAll("#status-table tbody tr")].map(tr => tr.dataset.comp + "@" + tr.dataset.ip + "=" + tr.querySelector(".badge").innerText)`, &badges)
		if len(badges) != 8 || badges[5] != "redis@192.0.2.13=DOWN" || badges[0] != "haproxy@192.0.2.11=RUNNING" {
			t.Fatalf("status rows: %v", badges)
		}
		row := `#status-table tr[data-comp="redis"][data-ip="192.0.2.13"]`
		b.click(row + " td.actions .btn:first-child")
		waitFor(t, func() bool { return len(api.called("PUT /deployment-engine/restart")) == 1 }, "PUT /restart")
		if c := api.called("PUT /deployment-engine/restart")[0]; !strings.Contains(c, `"name":"redis"`) || !strings.Contains(c, `"ip":"192.0.2.13"`) {
			t.Errorf("restart sent %s", c)
		}
		// Stop asks first; Cancel sends nothing.
		b.waitText("#toasts", "Restarted redis on 192.0.2.13")
		b.click(row + " td.actions .btn.danger-ghost")
		b.waitText("#confirm", "Stop redis on 192.0.2.13?")
		b.run("cancel", chromedp.Click(chromedp.CSS(`#confirm button[value=cancel]`)))
		time.Sleep(300 * time.Millisecond)
		if n := len(api.called("PUT /deployment-engine/stop")); n != 0 {
			t.Fatalf("stop sent without confirmation")
		}
		b.click(row + " td.actions .btn.danger-ghost")
		b.waitText("#confirm", "Stop redis")
		b.run("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
		waitFor(t, func() bool { return len(api.called("PUT /deployment-engine/stop")) == 1 }, "PUT /stop")
		b.waitText("#toasts", "Stopped redis on 192.0.2.13")

		// Each node's maintenance switch: one held out with its reason, one
		// put back in service.
		b.waitText(`#maintenance-table tr[data-ip="192.0.2.14"]`, "disk swap (by alice")
		held := `#maintenance-table tr[data-ip="192.0.2.12"]`
		b.typeInto(held+" input", "new disk")
		b.click(held + " td.actions .btn")
		waitFor(t, func() bool { return len(api.called("PUT /deployment-engine/nodes/192.0.2.12/maintenance")) == 1 }, "PUT maintenance on")
		if c := api.called("PUT /deployment-engine/nodes/192.0.2.12/maintenance")[0]; !strings.Contains(c, `"on":true`) || !strings.Contains(c, `"reason":"new disk"`) {
			t.Errorf("maintenance on sent %s", c)
		}
		// By script: the toast of the first may lie over the button.
		var clicked bool
		b.eval(`(() => { const el = document.querySelector('#maintenance-table tr[data-ip="192.0.2.14"] td.actions .btn'); if (el) el.click(); return !!el; })()`, &clicked)
		if !clicked {
			t.Fatal("no maintenance switch for 192.0.2.14")
		}
		waitFor(t, func() bool { return len(api.called("PUT /deployment-engine/nodes/192.0.2.14/maintenance")) == 1 }, "PUT maintenance off")
		if c := api.called("PUT /deployment-engine/nodes/192.0.2.14/maintenance")[0]; !strings.Contains(c, `"on":false`) {
			t.Errorf("maintenance off sent %s", c)
		}
	})

	t.Run("hardware", func(t *testing.T) {
		b.t = t
		b.run("open hardware", chromedp.Navigate(base+"/#/hardware"))
		card := b.waitText(`#hardware-grid .node-card[data-ip="192.0.2.14"]`, "4 cores")
		if !strings.Contains(card, "7.8 GiB") || !strings.Contains(card, "102.4 GB") {
			t.Errorf("hardware card: %q", card)
		}
	})

	t.Run("logs", func(t *testing.T) {
		b.t = t
		b.run("open logs", chromedp.Navigate(base+"/#/logs"))
		b.waitText("#logs-table", "nats_1.log")
		var none any
		b.eval(`window.__downloads = []; HTMLAnchorElement.prototype.click = function () { if (this.download) window.__downloads.push(this.download) }; null`, &none)
		b.run("download", chromedp.Click(chromedp.CSS(`#logs-table tr[data-name="nats_0.log"] td.actions .btn:last-child`)))
		waitFor(t, func() bool { return len(api.called("GET /deployment-engine/logs/nats_0.log")) == 1 }, "GET /logs/nats_0.log")
		var dl []string
		deadline := time.Now().Add(5 * time.Second)
		for len(dl) == 0 && time.Now().Before(deadline) {
			b.eval(`window.__downloads`, &dl)
			time.Sleep(100 * time.Millisecond)
		}
		if strings.Join(dl, ",") != "nats_0.log" {
			t.Fatalf("downloads %v", dl)
		}
		b.run("view", chromedp.Click(chromedp.CSS(`#logs-table tr[data-name="local.log"] td.actions .btn:first-child`)))
		b.waitText("#log-view", "log of local.log")

		// Follow: a component's lines as they come, as text; Stop ends the stream.
		b.waitText("#follow-comp", "web")
		b.run("pick web", chromedp.SetValue(chromedp.ID("follow-comp"), "web"))
		b.run("follow", chromedp.Click(chromedp.ID("follow-toggle")))
		got := b.waitText("#follow-log", "<b>live</b> password=<redacted>")
		if !strings.Contains(got, "192.0.2.12 web") || !strings.Contains(got, "tail line") {
			t.Errorf("followed lines: %q", got)
		}
		if c := api.called("GET /deployment-engine/logs/follow"); len(c) != 1 {
			t.Errorf("follow requests: %v", c)
		}
		b.run("stop", chromedp.Click(chromedp.ID("follow-toggle")))
		b.waitText("#follow-note", "stopped")
	})

	t.Run("scale out follows its deployment", func(t *testing.T) {
		b.t = t
		b.run("open scale", chromedp.Navigate(base+"/#/scale"))
		b.waitText("#scale-comp", "web")
		b.run("scale web", chromedp.SetValue(chromedp.ID("scale-comp"), "web"))
		b.waitText("#scale-current", "192.0.2.12, 192.0.2.13")
		b.run("apply", chromedp.SendKeys(chromedp.ID("scale-ip"), "192.0.2.15"), chromedp.Click(chromedp.ID("scale-apply")))
		b.waitText("#deploy-progress", demoID)
		calls := api.called("POST /deployment-engine/scale")
		if len(calls) != 1 || !strings.Contains(calls[0], `{"Comp":"web","Ip":"192.0.2.15"}`) {
			t.Fatalf("scale sent %v", calls)
		}
	})

	t.Run("timing report", func(t *testing.T) {
		b.t = t
		b.run("open the list", chromedp.Navigate(base+"/#/deploy"))
		b.waitText("#deploy-list", "report")
		b.run("open the report", chromedp.Click(chromedp.CSS(`#deploy-list a[href^="#/report/"]`)))
		b.waitText("#report-summary", "12.0 s")
		b.waitText("#report", "Critical path")
		var bars, critical, rows int
		b.eval(`document.querySelectorAll("#gantt rect.gantt-bar").length`, &bars)
		b.eval(`document.querySelectorAll("#gantt rect.gantt-bar.critical").length`, &critical)
		b.eval(`document.querySelectorAll("#gantt text.gantt-node").length`, &rows)
		if bars != 3 || critical != 2 || rows != 2 {
			t.Fatalf("gantt: %d bars (want 3), %d on the critical path (want 2), %d node rows (want 2)", bars, critical, rows)
		}
		// The bars sit on the time axis: the second node's step starts
		// after the first node's first step ends.
		var x1, x2 float64
		b.eval(`parseFloat(document.querySelector('#gantt rect[data-step="192.0.2.11/web/install"]').getAttribute("x")) + parseFloat(document.querySelector('#gantt rect[data-step="192.0.2.11/web/install"]').getAttribute("width"))`, &x1)
		b.eval(`parseFloat(document.querySelector('#gantt rect[data-step="192.0.2.12/haproxy/install"]').getAttribute("x"))`, &x2)
		if x2 < x1 {
			t.Errorf("a step drawn before the one it waited for: %v < %v", x2, x1)
		}
	})

	t.Run("phone width with content", func(t *testing.T) {
		b.t = t
		b.run("phone", phone())
		defer b.run("laptop", laptop())
		for _, v := range []struct{ hash, sel, want string }{
			{"#/status", "#status-table", "192.0.2.14"},
			{"#/hardware", "#hardware-grid", "192.0.2.14"},
			{"#/logs", "#logs-table", "local.log"},
			{"#/config", "#comp-rows", "192.0.2.14"},
			{"#/deploy/" + demoID, "#steps-table", "192.0.2.14"},
		} {
			b.run("open "+v.hash, chromedp.Navigate(base+"/"+v.hash))
			b.waitText(v.sel, "")
			if v.hash == "#/config" {
				var ips []string
				b.eval(`[...document.querySelectorAll(".ip-input")].map(e => e.value)`, &ips)
				if !strings.Contains(strings.Join(ips, ","), v.want) {
					t.Errorf("config rows: %v", ips)
				}
			} else {
				b.waitText(v.sel, v.want)
			}
			b.noHorizontalOverflow(v.hash)
			if os.Getenv("DE_TEST_ARTIFACTS") != "" {
				b.screenshot("phone-" + strings.Trim(strings.SplitN(v.hash, "/", 3)[1], "#/"))
			}
		}
		// Status rows become cards: the table header is hidden.
		b.run("open status", chromedp.Navigate(base+"/#/status"))
		b.waitText("#status-table", "192.0.2.14")
		if s := b.visibleText("#status-table thead"); s != "" {
			t.Errorf("the status table keeps its header row at phone width")
		}
	})
}

// A token that stops working (the engine's changed) sends the console
// back to sign in, saying why.
func TestConsoleTokenRevoked(t *testing.T) {
	api := &scriptedAPI{release: make(chan struct{})}
	srv := httptest.NewServer(api.handler(t))
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.run("open the console", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	var none any
	b.eval(`sessionStorage.setItem("de.token", "an-old-token"); null`, &none)
	b.run("open status", chromedp.Navigate(srv.URL+"/#/status"))
	b.waitText("#signin-error", "refused the API token")
	var stored string
	b.eval(`sessionStorage.getItem("de.token") || ""`, &stored)
	if stored != "" {
		t.Fatalf("the refused token was kept: %q", stored)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scriptedReport is a timing report as the engine answers it: three steps
// on two nodes, two of them on the critical path.
const scriptedReport = `{"v":1,"id":"d-20260314-1c2d","state":"succeeded","created":"2026-03-14T09:12:00Z","finished":"2026-03-14T09:12:12Z",
 "total_s":12,"steps_timed":3,"steps_total":3,
 "nodes":[{"name":"192.0.2.11","steps":2,"busy_s":6,"max_s":5},{"name":"192.0.2.12","steps":1,"busy_s":6,"max_s":6}],
 "components":[{"name":"web","steps":2,"busy_s":6,"max_s":5},{"name":"haproxy","steps":1,"busy_s":6,"max_s":6}],
 "actions":[{"name":"install","steps":3,"busy_s":12,"max_s":6}],
 "critical_path_s":11.5,
 "critical_path":[
  {"id":"192.0.2.11/web/install","node":"192.0.2.11","component":"web","action":"install","state":"succeeded","started":"2026-03-14T09:12:00.5Z","finished":"2026-03-14T09:12:05.5Z","duration_s":5},
  {"id":"192.0.2.12/haproxy/install","node":"192.0.2.12","component":"haproxy","action":"install","state":"succeeded","started":"2026-03-14T09:12:06Z","finished":"2026-03-14T09:12:12Z","duration_s":6,"wait_s":0.5}],
 "slowest":[
  {"id":"192.0.2.12/haproxy/install","node":"192.0.2.12","component":"haproxy","action":"install","state":"succeeded","started":"2026-03-14T09:12:06Z","finished":"2026-03-14T09:12:12Z","duration_s":6},
  {"id":"192.0.2.11/web/install","node":"192.0.2.11","component":"web","action":"install","state":"succeeded","started":"2026-03-14T09:12:00.5Z","finished":"2026-03-14T09:12:05.5Z","duration_s":5},
  {"id":"192.0.2.11/web/start","node":"192.0.2.11","component":"web","action":"start","state":"succeeded","started":"2026-03-14T09:12:05.6Z","finished":"2026-03-14T09:12:06.6Z","duration_s":1}],
 "steps":[
  {"id":"192.0.2.11/web/install","node":"192.0.2.11","component":"web","action":"install","state":"succeeded","started":"2026-03-14T09:12:00.5Z","finished":"2026-03-14T09:12:05.5Z","duration_s":5},
  {"id":"192.0.2.11/web/start","node":"192.0.2.11","component":"web","action":"start","state":"succeeded","started":"2026-03-14T09:12:05.6Z","finished":"2026-03-14T09:12:06.6Z","duration_s":1},
  {"id":"192.0.2.12/haproxy/install","node":"192.0.2.12","component":"haproxy","action":"install","state":"succeeded","started":"2026-03-14T09:12:06Z","finished":"2026-03-14T09:12:12Z","duration_s":6}]}`

// scriptedPlan is a plan as the engine answers it: one node with a changed
// page and a file changed by hand.
var scriptedPlan = map[string]any{"id": "0123456789abcdef01234567", "config": "stored", "changes": 2, "drifted": 1,
	"nodes": []map[string]any{
		{"ip": "192.0.2.11", "actions": []map[string]any{
			{"component": "web", "action": "upload", "step": "192.0.2.11/web/upload", "why": "rendered files differ from what the engine last wrote",
				"files": []map[string]string{{"path": "/var/www/de-web/index.html", "diff": "--- a/var/www/de-web/index.html\n+++ b/var/www/de-web/index.html\n@@ -1 +1 @@\n-<h1>web 0</h1>\n+<h1>web 0 v2</h1>\n"}}},
			{"component": "web", "action": "start", "step": "192.0.2.11/web/start", "why": "restart (or reload) the running process: what it runs from changed"}},
			"drift": []map[string]string{{"component": "web", "path": "/etc/de-web/nginx.conf", "want": "3a7b", "found": "91c0aa", "diff": "--- a/etc/de-web/nginx.conf\n+++ b/etc/de-web/nginx.conf\n@@ -1 +1,2 @@\n x\n+# by hand\n"}}},
		{"ip": "192.0.2.12", "actions": []map[string]any{}, "drift": []map[string]string{}},
	}}
