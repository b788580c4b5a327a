package problems

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// bed is a real bus with the book's endpoints served and the services it
// asks answering on their subjects: the monitor's status and the
// planner's plan from fixtures, every command a fix sends recorded and
// answered with a deployment.
type bed struct {
	b    *bustest.Bus
	mu   sync.Mutex
	sent map[string][]json.RawMessage // by subject
}

func newBed(t *testing.T, status []contract.StatusEntry, plan contract.Plan) *bed {
	t.Helper()
	ctx := context.Background()
	e := &bed{b: bustest.Start(t, bus.ServerOptions{}), sent: map[string][]json.RawMessage{}}
	cfg := contract.Config{Components: map[string][]string{"web": {"10.0.0.2"}, "redis": {"10.0.0.3"}}}
	if err := bus.StoreConfig(ctx, e.b.Res.Config, cfg); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"10.0.0.2", "10.0.0.3"} {
		tok, _ := subject.IPToken(ip)
		hb, _ := json.Marshal(contract.Heartbeat{V: 1, IP: ip, IntervalS: 5, Version: "v1", DiskPct: 10})
		if _, err := e.b.Res.Nodes.Put(ctx, tok, hb); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Res.HostKeys.Put(ctx, tok, []byte("ssh-ed25519 SHA256:old")); err != nil {
			t.Fatal(err)
		}
	}
	e.answer(t, subject.MonitorStatus(), 200, status)
	e.answer(t, subject.DeployPlan(), 200, plan)
	e.answer(t, subject.ConfigPrecheck(), 200, contract.PrecheckReply{V: 1, Checked: true, Problems: []contract.Problem{
		{Path: "components", IP: "10.0.0.2", Component: "web", Reason: "node short of RAM"}}})
	for _, s := range []string{subject.DeployRestart(), subject.DeployReapply(), subject.DeployStart(), subject.DeployExec()} {
		e.answer(t, s, 202, contract.DeployStarted{ID: "d-" + subject.EndpointName(s)})
	}
	svc := kit.NewService(nil, "problems-test")
	if err := svc.Serve(e.b.NC, "problems", Book{NC: e.b.NC, Res: e.b.Res, Version: "v1", Wait: 5 * time.Second}.Endpoints()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop(time.Second) })
	return e
}

// answer records each request on subj and replies code with body.
func (e *bed) answer(t *testing.T, subj string, code int, body any) {
	data, _ := json.Marshal(body)
	_, err := e.b.NC.Subscribe(subj, func(m *nats.Msg) {
		e.mu.Lock()
		e.sent[subj] = append(e.sent[subj], append(json.RawMessage{}, m.Data...))
		e.mu.Unlock()
		r := nats.NewMsg(m.Reply)
		r.Header.Set(kit.HeaderCode, strconv.Itoa(code))
		r.Data = data
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *bed) requests(subj string) []json.RawMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent[subj]
}

func (e *bed) ask(t *testing.T, subj string, body any) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := kit.Request(ctx, e.b.NC, subj, body)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Code, string(rep.Body)
}

func (e *bed) list(t *testing.T) contract.ProblemList {
	t.Helper()
	code, body := e.ask(t, subject.ProblemsList(), nil)
	var out contract.ProblemList
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	return out
}

// The scan reads status, plan, heartbeats and certificates; each fix
// sends the command of the deployment that applies it, and nothing else.
func TestResolveStartsTheFixesDeployment(t *testing.T) {
	status := []contract.StatusEntry{
		{Comp: "web", Ip: "10.0.0.2", Disk: "10%", Status: "DOWN", Reason: "monit: Does not exist"},
		{Comp: "redis", Ip: "10.0.0.3", Disk: "10%", Status: "RUNNING"},
	}
	plan := contract.Plan{V: 1, Nodes: []contract.PlanNode{
		{IP: "10.0.0.2", Actions: []contract.PlanAction{}, Drift: []contract.PlanDrift{}},
		{IP: "10.0.0.3", Error: "host key: host key changed: 10.0.0.3 now presents SHA256:new",
			Actions: []contract.PlanAction{}, Drift: []contract.PlanDrift{}},
	}}
	e := newBed(t, status, plan)
	list := e.list(t)
	if len(list.Problems) != 2 || len(list.Unread) != 0 {
		t.Fatalf("problems %+v, unread %v", list.Problems, list.Unread)
	}
	hostKey, down := list.Problems[0], list.Problems[1]
	if hostKey.Kind != contract.ProblemHostKey || down.Kind != contract.ProblemNotRunning {
		t.Fatalf("kinds %s, %s", hostKey.Kind, down.Kind)
	}

	// The recommended fix of a process not running: a rolling restart of
	// that one instance.
	code, body := e.ask(t, subject.ProblemsResolve(), contract.ProblemResolve{V: 1, ID: down.ID, Fix: "restart", Actor: "alice"})
	if code != 202 || !strings.Contains(body, `"d-deploy-restart"`) {
		t.Fatalf("resolve: %d %s", code, body)
	}
	var rr contract.RollingRestart
	if sent := e.requests(subject.DeployRestart()); len(sent) != 1 || json.Unmarshal(sent[0], &rr) != nil ||
		rr.Component != "web" || rr.IP != "10.0.0.2" || rr.MaxInFlight != "1" {
		t.Fatalf("restart sent %+v", rr)
	}
	code, body = e.ask(t, subject.ProblemsResolve(), contract.ProblemResolve{V: 1, ID: down.ID, Fix: "reapply"})
	var ra contract.Reapply
	if sent := e.requests(subject.DeployReapply()); code != 202 || len(sent) != 1 || json.Unmarshal(sent[0], &ra) != nil ||
		ra.Component != "web" || ra.IP != "10.0.0.2" {
		t.Fatalf("reapply: %d %s, sent %+v", code, body, ra)
	}

	// A fix the problem does not offer names those it does; an unknown
	// problem is a 404.
	code, body = e.ask(t, subject.ProblemsResolve(), contract.ProblemResolve{V: 1, ID: down.ID, Fix: "forget-host-key"})
	if code != 400 || !strings.Contains(body, "restart, reapply") {
		t.Fatalf("wrong fix: %d %s", code, body)
	}
	for _, id := range []string{"pb-000000000000", "../etc", ""} {
		if code, body := e.ask(t, subject.ProblemsResolve(), contract.ProblemResolve{V: 1, ID: id, Fix: "restart"}); code != 404 {
			t.Fatalf("unknown %q: %d %s", id, code, body)
		}
	}
	if len(e.requests(subject.DeployStart())) != 0 {
		t.Fatal("a refused fix started a deployment")
	}

	// The host key is forgotten only when asked by name, then the stored
	// config is deployed.
	tok, _ := subject.IPToken("10.0.0.3")
	if _, err := e.b.Res.HostKeys.Get(context.Background(), tok); err != nil {
		t.Fatalf("the pinned key went before it was asked to: %v", err)
	}
	code, body = e.ask(t, subject.ProblemsResolve(), contract.ProblemResolve{V: 1, ID: hostKey.ID, Fix: "forget-host-key"})
	if code != 202 || len(e.requests(subject.DeployStart())) != 1 {
		t.Fatalf("forget host key: %d %s", code, body)
	}
	if _, err := e.b.Res.HostKeys.Get(context.Background(), tok); !bus.IsNotFound(err) {
		t.Fatalf("the pinned key is still there: %v", err)
	}
}

// A silent agent is restarted by a deployment of kind exec on its node;
// a scan without a config is a 403.
func TestResolveAgentAndNoConfig(t *testing.T) {
	e := newBed(t, []contract.StatusEntry{{Comp: "web", Ip: "10.0.0.2", Disk: "1%", Status: "RUNNING"}},
		contract.Plan{V: 1, Nodes: []contract.PlanNode{{IP: "10.0.0.2"}, {IP: "10.0.0.3"}}})
	tok, _ := subject.IPToken("10.0.0.3")
	old, _ := json.Marshal(contract.Heartbeat{V: 1, IP: "10.0.0.3", IntervalS: 5, Version: "v1"})
	if _, err := e.b.Res.Nodes.Put(context.Background(), tok, old); err != nil {
		t.Fatal(err)
	}
	b := Book{NC: e.b.NC, Res: e.b.Res, Version: "v1", Now: func() time.Time { return time.Now().Add(time.Minute) }}
	list, err := b.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var silent []string
	for _, p := range list.Problems {
		if p.Kind == contract.ProblemAgentSilent {
			silent = append(silent, p.Node)
		}
	}
	if len(silent) != 2 {
		t.Fatalf("silent agents %v in %+v", silent, list.Problems)
	}
	// Served with the real clock, only 10.0.0.3 would be silent after a
	// while; resolve it here with the shifted clock's scan.
	svc := kit.NewService(nil, "problems-later")
	if err := svc.Serve(e.b.NC, "problems", map[string]kit.Handler{"de.test.resolve": b.resolve}); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(time.Second)
	id := ID(contract.ProblemAgentSilent, "10.0.0.3", "", "")
	if code, body := e.ask(t, "de.test.resolve", contract.ProblemResolve{V: 1, ID: id, Fix: "restart-agent", Actor: "bob"}); code != 202 {
		t.Fatalf("restart agent: %d %s", code, body)
	}
	var x contract.FleetExec
	if sent := e.requests(subject.DeployExec()); len(sent) != 1 || json.Unmarshal(sent[0], &x) != nil ||
		len(x.Nodes) != 1 || x.Nodes[0] != "10.0.0.3" || !strings.Contains(x.Command, "monit restart de-agent") || x.Actor != "bob" {
		t.Fatalf("exec sent %+v", x)
	}

	if err := e.b.Res.Config.Purge(context.Background(), bus.KeyConfig); err != nil {
		t.Fatal(err)
	}
	if code, body := e.ask(t, subject.ProblemsList(), nil); code != 403 {
		t.Fatalf("no config: %d %s", code, body)
	}
}
