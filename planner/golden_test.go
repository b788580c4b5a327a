package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

var update = flag.Bool("update", false, "rewrite the golden plans in testdata")

// The golden plans are every step a deployment stores (its status, its
// spec with files and scripts, its priority), its batches and its revert,
// as the planner's commands make them through the bus: a change to how
// steps are built shows as a diff here. Rewrite them with -update.
func TestGoldenPlans(t *testing.T) {
	needRuby(t)
	for _, c := range []struct {
		name string
		run  func(t *testing.T, g *golden) string
	}{
		{"starter-deploy", goldenStarterDeploy},
		{"starter-reapply", goldenStarterReapply},
		{"starter-restart", goldenStarterRestart},
		{"bosh-deploy", goldenBoshDeploy},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := startGolden(t)
			id := c.run(t, g)
			got := g.dump(t, id)
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the plan of %s differs from %s (go test -run TestGoldenPlans -update rewrites it)", c.name, path)
			}
		})
	}
}

// fakeInstaller answers the installer's commands on nc with handlers.
func fakeInstaller(t *testing.T, nc *nats.Conn, handlers map[string]kit.Handler) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: "installer", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for subj, h := range handlers {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(quiet, h), micro.WithEndpointSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
}

// dummyStore is a release store holding BOSH's dummy release.
func dummyStore(t *testing.T) *release.Store {
	t.Helper()
	store, err := release.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := os.ReadFile("/work/shared/bosh-releases/dummy-release.tgz")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Import(context.Background(), bytes.NewReader(tgz)); err != nil {
		t.Fatal(err)
	}
	return store
}

// golden is a planner on a test bus whose installer answers every probe:
// every node reachable, 10.9.0.4 without monit; it reads no node.
type golden struct {
	b *bustest.Bus
	p *Planner
}

const goldenID = "d-20000102-030405-0a0b0c"

func startGolden(t *testing.T) *golden { return startGoldenWith(t, nil) }

// startGoldenWith is startGolden with the planner's options changed by tune.
func startGoldenWith(t *testing.T, tune func(*Options)) *golden {
	t.Helper()
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	probe := func(_ context.Context, req micro.Request) (int, any, error) {
		var q contract.Probe
		if err := kit.Decode(req, &q); err != nil {
			return 0, nil, err
		}
		out := contract.ProbeReply{V: contract.Version}
		for _, ip := range q.Nodes {
			r := contract.ProbeResult{IP: ip, Reachable: true, Monit: "5.33.0", OS: contract.NodeOS{ID: "debian", VersionID: "12"}}
			if ip == "10.9.0.4" {
				r.Monit = ""
			}
			out.Nodes = append(out.Nodes, r)
		}
		return 200, out, nil
	}
	exec := func(context.Context, micro.Request) (int, any, error) {
		return 200, contract.ExecReply{V: contract.Version, Error: "not read in this test", ExitCode: 1}, nil
	}
	fakeInstaller(t, b.NC, map[string]kit.Handler{subject.InstallerProbe(): probe, subject.InstallerExec(): exec})
	var err error
	cats := map[string]*catalog.Catalog{}
	for _, name := range []string{"starter"} {
		if cats[name], err = catalog.Load(name, ""); err != nil {
			t.Fatal(err)
		}
	}
	store := dummyStore(t)
	const goldenAgentSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	saved := newID
	newID = func() string { return goldenID }
	t.Cleanup(func() { newID = saved })
	o := Options{NC: b.NC, Res: b.Res, Catalogs: cats, EngineID: "e-1", Port: 50000, Logger: quiet,
		ProbeTimeout: 5 * time.Second, PlannerID: "p-1", Releases: store, SecretKey: []byte("golden-key"),
		Agent: &AgentSpec{SHA256: goldenAgentSHA, Path: "/agent/" + goldenAgentSHA + "/de-agent", NATSPort: 4222, CA: "-----BEGIN CERTIFICATE-----\ngolden\n", Password: func(ip string) string { return "agent-pw-" + ip }}}
	if tune != nil {
		tune(&o)
	}
	p, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return &golden{b: b, p: p}
}

// store stores cfg, its secrets allowed on every node, and previous as
// where the last deployment placed components.
func (g *golden) store(t *testing.T, cfg contract.Config, previous map[string][]string) {
	t.Helper()
	ctx := context.Background()
	if err := bus.StoreConfig(ctx, g.b.Res.Config, cfg); err != nil {
		t.Fatal(err)
	}
	ips := append(cfg.Nodes(), "10.9.0.5", "10.9.0.6")
	hosts := contract.SecretHosts{V: contract.Version, Hosts: map[string][]string{"root": ips, "password": ips}}
	if err := bus.StoreSecretHosts(ctx, g.b.Res.Engine, hosts); err != nil {
		t.Fatal(err)
	}
	if previous != nil {
		b, _ := json.Marshal(previous)
		if _, err := g.b.Res.Scheduler.Put(ctx, "placement", b); err != nil {
			t.Fatal(err)
		}
	}
}

// command sends a command to the planner and returns the deployment it
// started.
func (g *golden) command(t *testing.T, subj string, body any) string {
	t.Helper()
	var started contract.DeployStarted
	g.ask(t, subj, body, 202, &started)
	return started.ID
}

// ask sends body on subj to the planner and decodes its reply, which must
// carry code, into out.
func (g *golden) ask(t *testing.T, subj string, body any, code int, out any) {
	t.Helper()
	rep, err := kit.Request(context.Background(), g.b.NC, subj, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rep.Body, out); err != nil || rep.Code != code {
		t.Fatalf("%s: %d %s", subj, rep.Code, rep.Body)
	}
}

// goldenStep is one step as the golden file shows it.
type goldenStep struct {
	Status contract.StepStatus `json:"status"`
	Prio   int                 `json:"prio"`
	Spec   contract.Step       `json:"spec"`
}

// dump is deployment id as stored: the record's steps in order with their
// specs (files opened) and priorities, its batches, placement and revert.
// A removal's hash holds the time it was planned at: it is masked.
func (g *golden) dump(t *testing.T, id string) []byte {
	t.Helper()
	ctx := context.Background()
	e, err := g.b.Res.Deployments.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		contract.Deployment
		Placement map[string][]string `json:"placement"`
		Revert    json.RawMessage     `json:"revert,omitempty"`
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	se, err := g.b.Res.Scheduler.Get(ctx, "steps."+id)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Specs map[string]contract.Step `json:"specs"`
		Prios map[string]int           `json:"prios"`
	}
	if err := json.Unmarshal(se.Value(), &doc); err != nil {
		t.Fatal(err)
	}
	out := struct {
		Kind      string              `json:"kind,omitempty"`
		Placement map[string][]string `json:"placement"`
		Batches   []contract.Batch    `json:"batches"`
		Revert    json.RawMessage     `json:"revert,omitempty"`
		Steps     []goldenStep        `json:"steps"`
	}{Kind: rec.Kind, Placement: rec.Placement, Revert: rec.Revert}
	for _, b := range rec.Batches {
		b.State, b.Error = "", ""
		out.Batches = append(out.Batches, b)
	}
	for _, st := range rec.Steps {
		spec := doc.Specs[st.ID]
		if err := bus.OpenStep(&spec); err != nil {
			t.Fatal(err)
		}
		if spec.Action == "remove" {
			spec.Hash = "(masked: holds the time of planning)"
		}
		st.State, st.Error, st.Attempt, st.Started, st.Finished, st.ExitCode = "", "", 0, nil, nil, nil
		out.Steps = append(out.Steps, goldenStep{Status: st, Prio: doc.Prios[st.ID], Spec: spec})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// goldenStarter is the starter stack on four nodes, with a user.
func goldenStarter() contract.Config {
	revert := true
	return contract.Config{
		Components: map[string][]string{"haproxy": {"10.9.0.2"}, "web": {"10.9.0.3", "10.9.0.4", "10.9.0.5"}, "redis": {"10.9.0.3"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "root-pw", Catalog: "starter", Adduser: contract.F(1), User: "vcap", Password: "user-pw",
			Update: &contract.UpdateConfig{UpdateSettings: contract.UpdateSettings{AutoRevert: &revert, MaxInFlight: "2"}}},
	}
}

// A deploy that adds web on 10.9.0.5, rolls web out on the two nodes it
// ran on (canary first) and removes the redis that left 10.9.0.6.
func goldenStarterDeploy(t *testing.T, g *golden) string {
	g.store(t, goldenStarter(), map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"redis", "web"}, "10.9.0.4": {"web"}, "10.9.0.6": {"redis"}})
	return g.command(t, subject.DeployStart(), contract.DeployStart{V: contract.Version})
}

func goldenStarterReapply(t *testing.T, g *golden) string {
	g.store(t, goldenStarter(), map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"redis", "web"}, "10.9.0.4": {"web"}, "10.9.0.5": {"web"}})
	return g.command(t, subject.DeployReapply(), contract.Reapply{V: contract.Version, Component: "web", IP: "10.9.0.4", Reason: "golden"})
}

func goldenStarterRestart(t *testing.T, g *golden) string {
	g.store(t, goldenStarter(), map[string][]string{"10.9.0.2": {"haproxy"}, "10.9.0.3": {"redis", "web"}, "10.9.0.4": {"web"}, "10.9.0.5": {"web"}})
	return g.command(t, subject.DeployRestart(), contract.RollingRestart{V: contract.Version, Component: "web", IP: "0.0.0.0", MaxInFlight: "2"})
}

// A BOSH release's jobs on two nodes, one of them dropping a job the last
// deployment placed there.
func goldenBoshDeploy(t *testing.T, g *golden) string {
	cfg := contract.Config{
		Components: map[string][]string{"dummy": {"10.9.0.2"}, "dummy_with_package": {"10.9.0.2", "10.9.0.4"}},
		Properties: contract.Properties{Domain: "x.local", Home: "10.9.0.1", Root: "root-pw", Catalog: "bosh", Release: "dummy", User: "vcap"},
	}
	g.store(t, cfg, map[string][]string{"10.9.0.4": {"dummy", "dummy_with_package"}})
	return g.command(t, subject.DeployStart(), contract.DeployStart{V: contract.Version})
}
