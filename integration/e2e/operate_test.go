package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

type statusEntry struct{ Comp, Ip, Cpu, Mem, Disk, Status, Reason string }

func status(t *testing.T, e *harness.Engine) []statusEntry {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/status", nil)
	var st []statusEntry
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("status: %d %s", code, body)
	}
	return st
}

// waitFor polls status until ok holds and returns how long it took.
func waitFor(t *testing.T, e *harness.Engine, within time.Duration, what string, ok func([]statusEntry) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var st []statusEntry
	for time.Since(start) < within {
		if st = status(t, e); ok(st) {
			return time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; status: %+v", what, within, st)
	return 0
}

func instance(st []statusEntry, comp, ip string) statusEntry {
	for _, s := range st {
		if s.Comp == comp && s.Ip == ip {
			return s
		}
	}
	return statusEntry{}
}

// The agents' heartbeat interval; a node is unreachable after three
// missed ones (plus the monitor's one-second check).
const (
	heartbeat   = 5 * time.Second
	unreachable = 3*heartbeat + time.Second
)

// operate walks SPEC scenarios 2, 3 and 5 on the deployed starter stack:
// status, hardware, stop and restart through monit, Prometheus scraping
// every agent and the engine, and a node that stops answering.
func operate(t *testing.T, e *harness.Engine, comps map[string][]string) {
	// The scale-in put the config's home back: the agents follow it.
	agentsAt(t, bed.Home)
	instances := 0
	for _, list := range comps {
		instances += len(list)
	}
	defer func() {
		if t.Failed() {
			for _, n := range bed.Nodes {
				out, _ := n.Exec(context.Background(), `cat /var/lib/deployment-engine/agent.json; ls -l /var/lib/deployment-engine/applied; cat /var/lib/deployment-engine/applied/*agent*; pgrep -af 'de-agent|deployment-engine'; tail -5 /var/log/de-agent.log; monit summary; tail -25 /var/log/monit.log`)
				t.Logf("node %s:\n%s", n.IP, out)
			}
		}
	}()
	waitFor(t, e, 90*time.Second, "every instance RUNNING after the deploy", func(st []statusEntry) bool {
		if len(st) != instances {
			return false
		}
		for _, s := range st {
			if s.Status != "RUNNING" || !strings.HasSuffix(s.Cpu, "%") {
				return false
			}
		}
		return true
	})

	web := comps["web"][0]
	code, body := e.Do("GET", "/deployment-engine/hardware", map[string]string{"Comp": "web", "Ip": web})
	var hw struct {
		Comp, IP string
		CPU      int
		RAM      int64
		DISK     float64
	}
	if code != 200 || json.Unmarshal(body, &hw) != nil || hw.IP != web || hw.CPU < 1 || hw.RAM < 1000 || hw.DISK < 1 {
		t.Errorf("hardware of one: %d %s", code, body)
	}
	code, body = e.Do("GET", "/deployment-engine/hardware?comp=all&ip=0.0.0.0", nil)
	var all []json.RawMessage
	if code != 200 || json.Unmarshal(body, &all) != nil || len(all) != instances {
		t.Errorf("hardware of all: %d %s", code, body)
	}
	if code, body := e.Do("GET", "/deployment-engine/hardware", map[string]string{"Comp": "redis", "Ip": web}); code != 400 {
		t.Errorf("hardware of a component not on that IP: %d %s, want 400", code, body)
	}

	// Stop: DOWN within two heartbeats, and it stays down.
	if code, body := e.Do("PUT", "/deployment-engine/stop", map[string]string{"name": "web", "ip": web}); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	took := waitFor(t, e, 2*heartbeat+5*time.Second, "web DOWN after stop", func(st []statusEntry) bool {
		return instance(st, "web", web).Status == "DOWN"
	})
	t.Logf("stop → DOWN in %s", took.Round(100*time.Millisecond))
	time.Sleep(2 * heartbeat)
	if s := instance(status(t, e), "web", web); s.Status != "DOWN" {
		t.Errorf("monit brought a stopped component back: %+v", s)
	}
	if code, body := e.Do("PUT", "/deployment-engine/restart", map[string]string{"Comp": "web", "Ip": web}); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	took = waitFor(t, e, 60*time.Second, "web RUNNING after restart", func(st []statusEntry) bool {
		return instance(st, "web", web).Status == "RUNNING"
	})
	t.Logf("restart → RUNNING in %s", took.Round(100*time.Millisecond))

	prometheusScrapes(t, e)
	for _, n := range bed.Nodes {
		out, _ := n.Exec(context.Background(), `pid=$(pgrep -f '^/usr/local/bin/de-agent ' | head -1); grep VmRSS /proc/$pid/status`)
		t.Logf("agent on %s: %s", n.IP, strings.TrimSpace(string(out)))
	}

	// A node that stops answering is reported unreachable, never RUNNING.
	n := bed.Nodes[2]
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	took = waitFor(t, e, unreachable+10*time.Second, "a stopped node's instances DOWN", func(st []statusEntry) bool {
		for _, s := range st {
			if s.Ip == n.IP && (s.Status != "DOWN" || !strings.Contains(s.Reason, "unreachable")) {
				return false
			}
		}
		return true
	})
	t.Logf("node stopped → unreachable in %s (bound %s)", took.Round(100*time.Millisecond), unreachable)
	// It boots again: monit starts at boot, and with it the node's
	// components and agent, within 60 s and without a deployment.
	before := deployments(t, e)
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if after := deployments(t, e); after != before {
			t.Errorf("deployments: %d before the node came back, %d after", before, after)
		}
	}()
	took = waitFor(t, e, 60*time.Second, "the node's instances RUNNING again after it came back", func(st []statusEntry) bool {
		for _, s := range st {
			if s.Ip == n.IP && s.Status != "RUNNING" {
				return false
			}
		}
		return true
	})
	t.Logf("node back → RUNNING in %s", took.Round(100*time.Millisecond))
}

// prometheusScrapes runs Debian's Prometheus with the shipped scrape config
// and queries back every target up and a per-component series.
func prometheusScrapes(t *testing.T, e *harness.Engine) {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatal("the e2e tests need Debian's prometheus: run `make deps` as root")
	}
	_, self, _, _ := runtime.Caller(0)
	shipped, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	_ = os.WriteFile(tokenFile, []byte(e.Token), 0o600)
	conf := strings.NewReplacer("ENGINE", e.Addr, "TOKEN_FILE", tokenFile,
		"scrape_interval: 15s", "scrape_interval: 1s", "refresh_interval: 30s", "refresh_interval: 2s").Replace(string(shipped))
	_ = os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o600)
	port := bustest.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr)
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	query := func(q string) []struct {
		Metric map[string]string
		Value  [2]any
	} {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return r.Data.Result
	}
	want := len(bed.Nodes) + 1 // every agent and the engine
	deadline := time.Now().Add(60 * time.Second)
	var up, webUp int
	for time.Now().Before(deadline) {
		up, webUp = 0, 0
		for _, r := range query("up == 1") {
			if r.Metric["job"] == "deployment-engine" || r.Metric["job"] == "deployment-engine-nodes" {
				up++
			}
		}
		for _, r := range query(`de_component_up{component="web"} == 1`) {
			if r.Metric["node"] != "" {
				webUp++
			}
		}
		if up == want && webUp >= 1 && len(query(`de_component_instance_up{job="deployment-engine"}`)) > 0 {
			t.Logf("prometheus: %d targets up, web up on %d nodes", up, webUp)
			return
		}
		time.Sleep(time.Second)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
	t.Fatalf("prometheus: %d of %d targets up, web up on %d nodes; its log:\n%s", up, want, webUp, tail(string(log), 3000))
}
