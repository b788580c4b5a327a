package problems

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

var now = time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)

// healthy is a two-node cluster with nothing wrong: agents reporting at
// the engine's version, every instance RUNNING, no drift, no removal, a
// certificate a year from its end.
func healthy() Facts {
	hb := func(ip string) Seen {
		return Seen{At: now.Add(-2 * time.Second), HB: contract.Heartbeat{V: 1, IP: ip, IntervalS: 5, Version: "v1.4.0", DiskPct: 40,
			Components: []contract.ComponentState{{Name: "web", Process: "web", Monit: "OK", Running: true}}}}
	}
	return Facts{
		Now: now, Nodes: []string{"10.0.0.2", "10.0.0.3"}, Version: "v1.4.0",
		Status: []contract.StatusEntry{
			{Comp: "web", Ip: "10.0.0.2", Cpu: "1%", Mem: "40%", Disk: "40%", Status: "RUNNING"},
			{Comp: "redis", Ip: "10.0.0.3", Cpu: "1%", Mem: "40%", Disk: "40%", Status: "RUNNING"},
		},
		Heartbeats: map[string]Seen{"10.0.0.2": hb("10.0.0.2"), "10.0.0.3": hb("10.0.0.3")},
		Plan: &contract.Plan{V: 1, Nodes: []contract.PlanNode{
			{IP: "10.0.0.2", Actions: []contract.PlanAction{}, Drift: []contract.PlanDrift{}},
			{IP: "10.0.0.3", Actions: []contract.PlanAction{}, Drift: []contract.PlanDrift{}},
		}},
		Certificates: []contract.Certificate{{Name: "agents-ca", Subject: "CN=de", NotAfter: now.AddDate(1, 0, 0)}},
	}
}

func TestScan(t *testing.T) {
	type want struct {
		kind, node, comp, cert string
		fixes                  []string // the recommended one first when there is one
		recommended            bool
		detail                 string // in the problem's detail, when given
	}
	cases := []struct {
		name  string
		spoil func(*Facts)
		want  []want
	}{
		{"healthy", func(*Facts) {}, nil},
		{"node unreachable hides its instances", func(f *Facts) {
			f.Plan.Nodes[0].Error = "timeout: dial tcp 10.0.0.2:22: i/o timeout"
			f.Status[0] = contract.StatusEntry{Comp: "web", Ip: "10.0.0.2", Status: "DOWN", Disk: "N/A", Reason: "unreachable: no report for 1m"}
			f.Heartbeats["10.0.0.2"] = Seen{At: now.Add(-time.Minute), HB: f.Heartbeats["10.0.0.2"].HB}
		}, []want{{kind: contract.ProblemUnreachable, node: "10.0.0.2"}}},
		{"host key changed", func(f *Facts) {
			f.Plan.Nodes[1].Error = "host key: host key changed: 10.0.0.3 now presents ssh-ed25519 SHA256:x but SHA256:y was pinned"
		}, []want{{kind: contract.ProblemHostKey, node: "10.0.0.3", fixes: []string{contract.FixForgetHostKey}}}},
		{"host key changed, found by the SSH check while the agent reads the node", func(f *Facts) {
			f.HostKeys = map[string]string{"10.0.0.2": "node not reachable: host key: host key changed", "10.0.0.99": "not a node of the config"}
		}, []want{{kind: contract.ProblemHostKey, node: "10.0.0.2", fixes: []string{contract.FixForgetHostKey}}}},
		{"host key changed, seen by the plan and the SSH check, listed once", func(f *Facts) {
			f.Plan.Nodes[0].Error = "host key: host key changed"
			f.HostKeys = map[string]string{"10.0.0.2": "node not reachable: host key: host key changed"}
		}, []want{{kind: contract.ProblemHostKey, node: "10.0.0.2", fixes: []string{contract.FixForgetHostKey}}}},
		{"process not running", func(f *Facts) {
			f.Status[0].Status, f.Status[0].Reason = "DOWN", "monit: Does not exist"
		}, []want{{kind: contract.ProblemNotRunning, node: "10.0.0.2", comp: "web", fixes: []string{"restart", "reapply"}, recommended: true}}},
		{"monit check missing", func(f *Facts) {
			f.Status[1].Status, f.Status[1].Reason = "DOWN", "monit: not registered with monit"
		}, []want{{kind: contract.ProblemCheckMissing, node: "10.0.0.3", comp: "redis", fixes: []string{"reapply"}, recommended: true}}},
		{"monit check missing, the process running unsupervised", func(f *Facts) {
			f.Status[0].Reason = "monit does not supervise it (not registered with monit), yet its process 42 runs"
		}, []want{{kind: contract.ProblemCheckMissing, node: "10.0.0.2", comp: "web", fixes: []string{"reapply"}, recommended: true}}},
		{"a stop that failed is no problem of the scan", func(f *Facts) {
			f.Status[0].Reason = "stop failed: timeout"
		}, nil},
		{"unmonitored and down", func(f *Facts) {
			f.Status[0].Status, f.Status[0].Reason = "DOWN", "monit: Not monitored"
		}, []want{{kind: contract.ProblemUnmonitored, node: "10.0.0.2", comp: "web", fixes: []string{"restart", "reapply"}, recommended: true}}},
		{"unmonitored yet running", func(f *Facts) {
			f.Status[0].Reason = "monit does not supervise it (Not monitored), yet its process 42 runs"
		}, []want{{kind: contract.ProblemUnmonitored, node: "10.0.0.2", comp: "web", fixes: []string{"restart", "reapply"}, recommended: true}}},
		{"monit unreadable", func(f *Facts) {
			f.Status[0].Status, f.Status[0].Reason = "DOWN", "monit daemon is not running — start it"
		}, []want{{kind: contract.ProblemNotRunning, node: "10.0.0.2", comp: "web", fixes: []string{"reapply", "restart"}, recommended: true}}},
		{"not deployed yet is no problem", func(f *Facts) {
			f.Status[0].Status, f.Status[0].Reason = "DOWN", "not deployed on this node yet"
		}, nil},
		{"agent silent, node reachable", func(f *Facts) {
			s := f.Heartbeats["10.0.0.3"]
			s.At = now.Add(-5 * time.Minute)
			f.Heartbeats["10.0.0.3"] = s
		}, []want{{kind: contract.ProblemAgentSilent, node: "10.0.0.3", fixes: []string{"restart-agent", "deploy"}, recommended: true}}},
		{"agent at another version", func(f *Facts) {
			s := f.Heartbeats["10.0.0.2"]
			s.HB.Version = "v1.3.9"
			f.Heartbeats["10.0.0.2"] = s
		}, []want{{kind: contract.ProblemAgentVersion, node: "10.0.0.2", fixes: []string{"deploy"}, recommended: true}}},
		{"drift", func(f *Facts) {
			f.Plan.Nodes[0].Drift = []contract.PlanDrift{{Component: "web", Path: "/etc/de-web/nginx.conf", Want: "a", Found: "b"},
				{Component: "web", Path: "/var/www/index.html", Want: "a", Found: "missing"}}
		}, []want{{kind: contract.ProblemDrift, node: "10.0.0.2", comp: "web", fixes: []string{"reapply", "deploy"}, recommended: true}}},
		{"disk over 90 % from the heartbeat", func(f *Facts) {
			s := f.Heartbeats["10.0.0.3"]
			s.HB.DiskPct = 93.5
			f.Heartbeats["10.0.0.3"] = s
		}, []want{{kind: contract.ProblemDiskFull, node: "10.0.0.3"}}},
		{"disk over 90 % from status without an agent", func(f *Facts) {
			delete(f.Heartbeats, "10.0.0.2")
			f.Status[0].Disk = "95%"
		}, []want{{kind: contract.ProblemDiskFull, node: "10.0.0.2"}}},
		{"disk at 90 % is no problem", func(f *Facts) {
			s := f.Heartbeats["10.0.0.3"]
			s.HB.DiskPct = 90
			f.Heartbeats["10.0.0.3"] = s
		}, nil},
		{"orphan", func(f *Facts) {
			f.Plan.Nodes[1].Actions = []contract.PlanAction{{Component: "web", Action: "remove", Step: "10.0.0.3/web/remove"},
				{Component: "redis", Action: "upload", Step: "10.0.0.3/redis/upload"}}
		}, []want{{kind: contract.ProblemOrphan, node: "10.0.0.3", comp: "web", fixes: []string{"remove"}, recommended: true}}},
		{"orphan on a node the config no longer has, not read", func(f *Facts) {
			f.Plan.Nodes = append(f.Plan.Nodes, contract.PlanNode{IP: "10.0.0.9", Error: "not read (400): exec: 10.0.0.9 is not a node of the config",
				Actions: []contract.PlanAction{{Component: "web", Action: "remove", Step: "10.0.0.9/web/remove"}}})
		}, []want{{kind: contract.ProblemOrphan, node: "10.0.0.9", comp: "web", fixes: []string{"remove"}, recommended: true}}},
		{"certificate expiring", func(f *Facts) {
			f.Certificates = append(f.Certificates, contract.Certificate{Name: "api", Subject: "CN=api", NotAfter: now.Add(20 * 24 * time.Hour)})
		}, []want{{kind: contract.ProblemCertificate, cert: "api", detail: "--tls-cert"}}},
		{"a manifest's certificate expiring", func(f *Facts) {
			f.Certificates = append(f.Certificates, contract.Certificate{Name: "variable/db_ca", Subject: "CN=db-ca", NotAfter: now.Add(20 * 24 * time.Hour)})
		}, []want{{kind: contract.ProblemCertificate, cert: "variable/db_ca", detail: "manifest variables regenerate db_ca"}}},
		{"a node in maintenance shows none of its instances' problems", func(f *Facts) {
			f.Plan.Nodes[0].Held = "held by alice: disk swap"
			f.Plan.Nodes[0].Drift = []contract.PlanDrift{{Component: "web", Path: "/etc/x", Want: "a", Found: "b"}}
			f.Status[0].Status, f.Status[0].Reason = contract.StatusMaintenance, "held by alice; instance DOWN: monit: Does not exist"
		}, nil},
		{"nothing read but the config", func(f *Facts) {
			f.Status, f.Plan, f.Heartbeats, f.Certificates = nil, nil, nil, nil
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := healthy()
			c.spoil(&f)
			got := Scan(f)
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems, want %d: %+v", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				p := got[i]
				if p.Kind != w.kind || p.Node != w.node || p.Component != w.comp || p.Certificate != w.cert {
					t.Errorf("problem %d is %s on %q/%q/%q, want %s on %q/%q/%q", i, p.Kind, p.Node, p.Component, p.Certificate, w.kind, w.node, w.comp, w.cert)
				}
				if p.ID != ID(w.kind, w.node, w.comp, w.cert) || !contract.ValidProblemID(p.ID) {
					t.Errorf("problem %d has id %q", i, p.ID)
				}
				if p.Detail == "" || !strings.Contains(p.Detail, w.detail) {
					t.Errorf("problem %d says %q, want %q in it", i, p.Detail, w.detail)
				}
				var names []string
				for _, fx := range p.Fixes {
					names = append(names, fx.Name)
				}
				if !slices.Equal(names, w.fixes) {
					t.Errorf("problem %d has fixes %v, want %v", i, names, w.fixes)
				}
				rec, ok := p.Recommended()
				if ok != w.recommended || (ok && rec.Name != w.fixes[0]) {
					t.Errorf("problem %d recommends %v (%v), want %v", i, rec.Name, ok, w.recommended)
				}
			}
		})
	}
}

// A changed host key is never recommended, and its problem keeps its id
// from scan to scan while the key stays changed.
func TestHostKeyNeverRecommendedAndIDStable(t *testing.T) {
	scan := func(why string) []contract.ClusterProblem {
		f := healthy()
		f.Plan.Nodes[0].Error = why
		return Scan(f)
	}
	first := scan("host key: host key changed: 10.0.0.2 now presents SHA256:a")
	second := scan("host key: host key changed: 10.0.0.2 now presents SHA256:b")
	if len(first) != 1 || len(second) != 1 || first[0].ID != second[0].ID {
		t.Fatalf("scans differ: %+v then %+v", first, second)
	}
	if _, ok := first[0].Recommended(); ok {
		t.Fatalf("a host key fix is recommended: %+v", first[0])
	}
}

// Problems come most urgent first, then by node.
func TestScanOrder(t *testing.T) {
	f := healthy()
	f.Plan.Nodes[1].Drift = []contract.PlanDrift{{Component: "redis", Path: "/etc/redis.conf", Want: "a", Found: "b"}}
	f.Status[0].Status, f.Status[0].Reason = "DOWN", "monit: Does not exist"
	f.Plan.Nodes[0].Drift = []contract.PlanDrift{{Component: "web", Path: "/etc/x", Want: "a", Found: "b"}}
	var kinds []string
	for _, p := range Scan(f) {
		kinds = append(kinds, p.Kind+"@"+p.Node)
	}
	want := []string{"process-not-running@10.0.0.2", "drift@10.0.0.2", "drift@10.0.0.3"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("order %v, want %v", kinds, want)
	}
}
