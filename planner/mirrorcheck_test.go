package planner

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// precheck asks each node to fetch the engine's /healthz at home and the
// engine's port; a node that cannot refuses a config whose nodes install
// from the mirror, naming the node and the address.
func TestPrecheckEngineReach(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	const health = "http://10.9.0.1:50000/healthz"
	unreachable := map[string]string{}
	var asked []string
	probe := func(_ context.Context, req micro.Request) (int, any, error) {
		var q contract.Probe
		if err := kit.Decode(req, &q); err != nil {
			return 0, nil, err
		}
		asked = q.Fetch
		out := contract.ProbeReply{V: contract.Version}
		for _, ip := range q.Nodes {
			r := contract.ProbeResult{IP: ip, Reachable: true, Monit: "5.33.0",
				Hardware: contract.NodeHardware{IP: ip, CPU: 64, RAM: 64 << 20, DISK: 1 << 20},
				OS:       contract.NodeOS{ID: "debian", VersionID: "12"}}
			for _, n := range q.Resolve {
				r.Names = append(r.Names, contract.NameLookup{Name: n, Addrs: []string{"10.9.0.2"}})
			}
			for _, u := range q.Fetch {
				r.Fetched = append(r.Fetched, contract.FetchResult{URL: u, Error: unreachable[ip]})
			}
			out.Nodes = append(out.Nodes, r)
		}
		return 200, out, nil
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fakeInstaller(t, b.NC, map[string]kit.Handler{subject.InstallerProbe(): probe})
	p, err := Start(ctx, Options{NC: b.NC, Res: b.Res, Catalogs: map[string]*catalog.Catalog{"starter": cat}, EngineID: "e-1", Port: 50000,
		Logger: quiet, ProbeTimeout: 5 * time.Second, PlannerID: "p-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	cfg := starterConfig()
	cfg.Properties.Root = "" // no stored secret hosts needed for the probe's auth

	if _, _, problems, err := p.precheck(ctx, cfg); err != nil || len(problems) != 0 {
		t.Fatalf("all nodes reach the engine: problems %+v, err %v", problems, err)
	}
	if len(asked) != 1 || asked[0] != health {
		t.Fatalf("the probe asked the nodes to fetch %q, want [%s]", asked, health)
	}

	unreachable["10.9.0.3"] = "Could not connect to 10.9.0.1:50000 (10.9.0.1). - connect (111: Connection refused)"
	_, _, problems, err := p.precheck(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 {
		t.Fatalf("problems %+v: want one, for 10.9.0.3", problems)
	}
	pr := problems[0]
	if pr.IP != "10.9.0.3" || pr.Path != "properties.home" || !strings.Contains(pr.Reason, health) || !strings.Contains(pr.Reason, "Connection refused") {
		t.Errorf("problem %+v: want node 10.9.0.3, the address %s and the reason", pr, health)
	}
}
