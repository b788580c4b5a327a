package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

type auditEntry struct {
	Time                                 time.Time
	Actor, Action, Object, Component, IP string
	Deployment, Result, Detail           string
	Code                                 int
}

func audit(t *testing.T, e *harness.Engine, query string) []auditEntry {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/audit?"+query, nil)
	var out []auditEntry
	if code != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("audit?%s: %d %s", query, code, body)
	}
	return out
}

func countAudit(list []auditEntry, action, ip, result string) int {
	n := 0
	for _, a := range list {
		if a.Action == action && (ip == "" || a.IP == ip) && (result == "" || a.Result == result) {
			n++
		}
	}
	return n
}

// doAs sends a request with another token than the engine's own.
func doAs(t *testing.T, e *harness.Engine, tok, method, path string, body string) (int, string) {
	t.Helper()
	code, b, err := harness.Request(context.Background(), e.URL(), tok, method, path, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	return code, string(b)
}

// kill9 kills delta's process on the nodes, all at once.
func kill9(t *testing.T, idx ...int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := bed.Nodes[i].Exec(context.Background(), `kill -9 "$(cat /run/e2e-delta.pid)"`); err != nil {
				t.Errorf("kill delta on %s: %v %s", bed.Nodes[i].IP, err, out)
			}
		}()
	}
	wg.Wait()
}

type healState struct {
	Enabled  bool
	Meltdown struct {
		Active          bool
		Down, Instances int
		Reason          string
	}
	Instances []struct {
		Component, IP, State, Reason string
		Attempts                     int
	}
}

func heal(t *testing.T, e *harness.Engine) healState {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/heal", nil)
	var s healState
	if code != 200 || json.Unmarshal(body, &s) != nil {
		t.Fatalf("heal: %d %s", code, body)
	}
	return s
}

// Auto-heal on real nodes: a killed process comes back by the engine's
// hand, one stopped through the API stays down, a broken one backs off and
// is marked failing, and when most fail at once the meltdown guard holds
// until switched on again. Along the way: a named token in the audit, a
// revoked one refused, and the deployment's timing report.
//
// delta's monit check only alerts when its process is gone (monit would
// otherwise restart it itself within its 2 s cycle, before the engine sees
// anything): the engine is what brings it back.
func TestHeal(t *testing.T) {
	natsPort := bustest.FreePort(t)
	// The webhook receiver is on loopback: allowed explicitly.
	e := engine(t, "--catalog", catalogDir(t), "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort), "--webhook-allow", "127.0.0.1/32")
	n0, n1, n2 := bed.Nodes[0].IP, bed.Nodes[1].IP, bed.Nodes[2].IP
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 60))
		}
	}()

	tokOut, err := exec.Command(e.Bin, "token", "add", "alice", "--data", e.Data).Output()
	if err != nil {
		t.Fatal(err)
	}
	alice := strings.TrimSpace(string(tokOut))

	hook := startHook(t)
	cfg := config("e2e", map[string][]string{"delta": ips(0, 1, 2, 3)})
	cfg["properties"].(map[string]any)["heal"] = map[string]any{"backoff_s": 2, "max_attempts": 2, "meltdown": map[string]any{"minimum_down": 2}}
	cfg["properties"].(map[string]any)["notify"] = map[string]any{"webhooks": []map[string]any{
		{"name": "test", "url": "http://" + hook.addr + "/hook", "secret": hookSecret, "events": []string{"deployment.failed", "heal.meltdown"}}}}
	cfgBody, _ := json.Marshal(cfg)
	if code, body := doAs(t, e, alice, "POST", "/deployment-engine/config?check=0", string(cfgBody)); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	setSleep(t, 0, bed.Nodes...)
	id := deploy(t, e)
	if d := wait(t, e, id, 8*time.Minute); d.State != "succeeded" {
		t.Fatalf("deployment: %s\n%s", d.State, failures(d))
	}
	checkReport(t, e, id)
	waitFor(t, e, reportWithin, "every delta RUNNING", func(st []statusEntry) bool {
		running := 0
		for _, s := range st {
			if s.Status == "RUNNING" {
				running++
			}
		}
		return len(st) == 4 && running == 4
	})

	// alice stops delta on node 1; delta on node 0 is killed.
	if code, body := doAs(t, e, alice, "PUT", "/deployment-engine/stop", fmt.Sprintf(`{"name": "delta", "ip": %q}`, n1)); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	stopped := time.Now()
	kill9(t, 0)
	killed := time.Now()
	waitFor(t, e, 15*time.Second, "delta on node 0 reported DOWN after kill -9", func(st []statusEntry) bool {
		return instance(st, "delta", n0).Status == "DOWN"
	})
	waitFor(t, e, time.Until(killed.Add(30*time.Second)), "delta on node 0 RUNNING again within 30 s of kill -9", func(st []statusEntry) bool {
		return instance(st, "delta", n0).Status == "RUNNING"
	})
	t.Logf("delta on node 0 RUNNING again %s after kill -9", time.Since(killed).Round(time.Second))
	var entries []auditEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if entries = audit(t, e, ""); countAudit(entries, "heal-restart", n0, "ok") == 1 {
			break
		}
	}
	if n := countAudit(entries, "heal-restart", n0, "ok"); n != 1 {
		t.Fatalf("%d heal-restart entries for node 0, want 1: %+v", n, entries)
	}
	for _, a := range entries {
		switch {
		case a.Action == "heal-restart" && a.Actor != "engine":
			t.Errorf("a heal recorded as %q", a.Actor)
		case a.Action == "stop" && (a.Actor != "alice" || a.IP != n1 || a.Result != "ok"):
			t.Errorf("alice's stop recorded as %+v", a)
		case a.Action == "config" && a.Actor != "alice":
			t.Errorf("alice's config recorded as %+v", a)
		}
	}
	if countAudit(entries, "stop", n1, "ok") != 1 || countAudit(entries, "config", "", "ok") != 1 {
		t.Errorf("audit lacks alice's config or stop: %+v", entries)
	}
	// Held: well past the grace and a few heartbeats, still down.
	time.Sleep(time.Until(stopped.Add(25 * time.Second)))
	if st := instance(status(t, e), "delta", n1); st.Status != "DOWN" {
		t.Fatalf("delta stopped through the API came back: %+v", st)
	}
	if n := countAudit(audit(t, e, "action=heal-restart"), "heal-restart", n1, ""); n != 0 {
		t.Fatalf("auto-heal restarted an instance stopped through the API %d times", n)
	}
	if out, err := exec.Command(e.Bin, "token", "revoke", "alice", "--data", e.Data).CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	if code, body := doAs(t, e, alice, "GET", "/deployment-engine/status", ""); code != 401 {
		t.Fatalf("a revoked token: %d %s", code, body)
	}

	// A broken delta on node 2: monit cannot start it, a re-apply cannot
	// install it. Two attempts (max_attempts), backing off, then failing.
	if _, err := bed.Nodes[2].Exec(context.Background(), "touch /var/lib/e2e/broken"); err != nil {
		t.Fatal(err)
	}
	kill9(t, 2)
	var hs healState
	for deadline := time.Now().Add(150 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if hs = heal(t, e); len(hs.Instances) > 0 && hasState(hs, n2, "failing") {
			break
		}
	}
	if !hasState(hs, n2, "failing") {
		t.Fatalf("delta on node 2 not failing: %+v", hs)
	}
	time.Sleep(6 * time.Second) // more than the back-off: no attempt after failing
	entries = audit(t, e, "")
	restarts, reapplies := countAudit(entries, "heal-restart", n2, ""), countAudit(entries, "heal-reapply", n2, "failed")
	if restarts != 2 || reapplies != 2 || countAudit(entries, "heal-failing", n2, "") != 1 {
		t.Fatalf("node 2: %d restarts, %d failed re-applies, want 2 and 2 then failing: %+v", restarts, reapplies, entries)
	}
	t.Logf("broken delta: %d restarts, %d re-applies, then failing: %+v", restarts, reapplies, hs.Instances)
	// Its re-applies failed: the webhook got deployment.failed, signed.
	got := hook.wait(t, 30*time.Second, "deployment.failed")
	if !got.signed || !strings.Contains(got.summary, "failed") {
		t.Fatalf("deployment.failed: %+v", got)
	}

	// Mend node 2 and start both through the API; then delta dies on three
	// of the four nodes at once: more than minimum_down (2) and 20%.
	if _, err := bed.Nodes[2].Exec(context.Background(), "rm -f /var/lib/e2e/broken"); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{n1, n2} {
		if code, body := e.Do("PUT", "/deployment-engine/restart", map[string]string{"name": "delta", "ip": ip}); code != 200 {
			t.Fatalf("restart %s: %d %s", ip, code, body)
		}
	}
	waitFor(t, e, 30*time.Second, "every delta RUNNING again", func(st []statusEntry) bool {
		for _, s := range st {
			if s.Status != "RUNNING" {
				return false
			}
		}
		return len(st) == 4
	})
	// The webhook's receiver is stopped: the meltdown's notification must
	// wait for it, across a restart of the engine.
	hook.stop()
	// Three deltas killed, none of them able to start again until the
	// guard holds: the nodes' heartbeats reach the engine apart, and one
	// healed back before the last was seen down would leave 2 of 4.
	for _, i := range []int{0, 1, 2} {
		inNode(t, i, "touch /var/lib/e2e/broken")
	}
	kill9(t, 0, 1, 2)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if hs = heal(t, e); hs.Meltdown.Active {
			break
		}
	}
	if !hs.Meltdown.Active || hs.Meltdown.Down != 3 || hs.Meltdown.Instances != 4 || !strings.Contains(hs.Meltdown.Reason, "3 of 4") {
		t.Fatalf("meltdown guard: %+v", hs.Meltdown)
	}
	// An attempt begun before the guard held ends, failing: one that
	// brought its delta back would leave 2 of 4 down, and the guard, whose
	// condition no longer holds, would let go. None begins after.
	for deadline := time.Now().Add(60 * time.Second); healing(hs) && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		hs = heal(t, e)
	}
	for _, i := range []int{0, 1, 2} {
		inNode(t, i, "rm -f /var/lib/e2e/broken")
	}
	before := len(audit(t, e, "action=heal-restart"))
	time.Sleep(15 * time.Second)
	if n := len(audit(t, e, "action=heal-restart")); n != before {
		t.Fatalf("%d heals under the meltdown guard", n-before)
	}
	down := 0
	for _, s := range status(t, e) {
		if s.Status == "DOWN" {
			down++
		}
	}
	if down != 3 || countAudit(audit(t, e, "actor=engine&action=heal-meltdown"), "heal-meltdown", "", "held") != 1 {
		t.Fatalf("under the meltdown guard: %d down, audit %+v", down, audit(t, e, "actor=engine"))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if failedAttempts(t, e) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed delivery to the stopped receiver counted in /metrics")
		}
	}
	e.Stop()
	e.Restart()
	hook.start(t)
	// The receiver was down for a minute or two: the notification's
	// back-off has grown to a minute or more between tries.
	got = hook.wait(t, 3*time.Minute, "heal.meltdown")
	if !got.signed || !strings.Contains(got.summary, "3 of 4") {
		t.Fatalf("heal.meltdown: %+v", got)
	}
	if hs = heal(t, e); !hs.Meltdown.Active {
		t.Fatal("the meltdown guard did not hold across the engine's restart")
	}
	if code, body := e.Do("PUT", "/deployment-engine/heal", map[string]bool{"enabled": true}); code != 200 {
		t.Fatalf("heal on: %d %s", code, body)
	}
	waitFor(t, e, 90*time.Second, "every delta healed once switched on", func(st []statusEntry) bool {
		for _, s := range st {
			if s.Status != "RUNNING" {
				return false
			}
		}
		return true
	})
	if hs = heal(t, e); hs.Meltdown.Active {
		t.Fatalf("meltdown after switching on: %+v", hs.Meltdown)
	}
}

// healing tells whether an attempt of auto-heal runs.
func healing(s healState) bool {
	for _, in := range s.Instances {
		if in.State == "healing" {
			return true
		}
	}
	return false
}

func hasState(s healState, ip, state string) bool {
	for _, in := range s.Instances {
		if in.IP == ip && in.State == state {
			return true
		}
	}
	return false
}

type stepTiming struct {
	ID, Node          string
	Started, Finished time.Time
	DurationS         float64 `json:"duration_s"`
	WaitS             float64 `json:"wait_s"`
}

// checkReport holds the report to the deployment's own step timings: the
// critical path is a chain where each step starts after the one before it
// ends, and ends with the step that finished last; the slowest are the 20
// longest, longest first.
func checkReport(t *testing.T, e *harness.Engine, id string) {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/deployments/"+id+"/report", nil)
	var r struct {
		TotalS        float64      `json:"total_s"`
		StepsTimed    int          `json:"steps_timed"`
		CriticalPath  []stepTiming `json:"critical_path"`
		CriticalPathS float64      `json:"critical_path_s"`
		Slowest       []stepTiming `json:"slowest"`
		Steps         []stepTiming `json:"steps"`
		Nodes         []struct{ Name string }
	}
	if code != 200 || json.Unmarshal(body, &r) != nil {
		t.Fatalf("report: %d %s", code, body)
	}
	var d contract.Deployment
	_, db := e.Do("GET", "/deployment-engine/deployments/"+id, nil)
	_ = json.Unmarshal(db, &d)
	timed := map[string][2]time.Time{}
	for _, s := range d.Steps {
		if s.Started != nil && s.Finished != nil {
			timed[s.ID] = [2]time.Time{*s.Started, *s.Finished}
		}
	}
	if r.StepsTimed != len(timed) || len(r.Nodes) != 4 || r.TotalS <= 0 {
		t.Fatalf("report: %d timed steps (deployment has %d), %d nodes, total %v", r.StepsTimed, len(timed), len(r.Nodes), r.TotalS)
	}
	p := r.CriticalPath
	if len(p) < 2 {
		t.Fatalf("critical path %+v", p)
	}
	var last time.Time
	for _, tm := range timed {
		if tm[1].After(last) {
			last = tm[1]
		}
	}
	if !p[len(p)-1].Finished.Equal(last) {
		t.Errorf("critical path ends at %s, the last step at %s", p[len(p)-1].Finished, last)
	}
	for i, s := range p {
		tm, ok := timed[s.ID]
		if !ok || !tm[0].Equal(s.Started) || !tm[1].Equal(s.Finished) {
			t.Errorf("critical path step %s does not match the deployment's timings", s.ID)
		}
		if i > 0 && s.Started.Before(p[i-1].Finished) {
			t.Errorf("critical path: %s starts before %s ends", s.ID, p[i-1].ID)
		}
	}
	span := p[len(p)-1].Finished.Sub(p[0].Started).Seconds()
	if d := r.CriticalPathS - span; d > 0.01 || d < -0.01 {
		t.Errorf("critical path %.3f s, its span %.3f s", r.CriticalPathS, span)
	}
	if len(r.Slowest) != min(20, len(timed)) {
		t.Errorf("%d slowest steps of %d", len(r.Slowest), len(timed))
	}
	for i := 1; i < len(r.Slowest); i++ {
		if r.Slowest[i].DurationS > r.Slowest[i-1].DurationS {
			t.Errorf("slowest not sorted at %d", i)
		}
	}
	t.Logf("report: %.1f s in all, critical path %.1f s over %d steps, slowest %s %.1f s", r.TotalS, r.CriticalPathS, len(p), r.Slowest[0].ID, r.Slowest[0].DurationS)
}

const hookSecret = "e2e-hook-secret"

type delivery struct {
	event, summary string
	signed         bool
}

// hookServer is a webhook receiver on a fixed loopback port that can be
// stopped (connections refused) and started again.
type hookServer struct {
	addr string
	mu   sync.Mutex
	got  []delivery
	srv  *http.Server
}

func startHook(t *testing.T) *hookServer {
	h := &hookServer{addr: fmt.Sprintf("127.0.0.1:%d", bustest.FreePort(t))}
	h.start(t)
	t.Cleanup(h.stop)
	return h
}

func (h *hookServer) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var n struct{ Event, Summary string }
		_ = json.Unmarshal(body, &n)
		m := hmac.New(sha256.New, []byte(hookSecret))
		m.Write(body)
		signed := r.Header.Get("X-DE-Signature") == "sha256="+hex.EncodeToString(m.Sum(nil))
		h.mu.Lock()
		h.got = append(h.got, delivery{n.Event, n.Summary, signed})
		h.mu.Unlock()
	})}
	go func() { _ = h.srv.Serve(ln) }()
}

func (h *hookServer) stop() {
	if h.srv != nil {
		_ = h.srv.Close()
	}
}

func (h *hookServer) wait(t *testing.T, within time.Duration, event string) delivery {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		h.mu.Lock()
		for _, d := range h.got {
			if d.event == event {
				h.mu.Unlock()
				return d
			}
		}
		h.mu.Unlock()
	}
	t.Fatalf("the webhook did not get %s within %s: %+v", event, within, h.got)
	return delivery{}
}

// failedAttempts reads de_notify_failed_attempts_total from /metrics.
func failedAttempts(t *testing.T, e *harness.Engine) float64 {
	t.Helper()
	return e.Metric(t, "de_notify_failed_attempts_total")
}
