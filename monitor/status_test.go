package monitor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Status serves an instance its node's heartbeat shows up from the entry
// encoded when that heartbeat arrived, and reads the config again only
// when it changed: every later heartbeat, config change and silence must
// still show at once, as an entry made per request would.
func TestStatusFollowsHeartbeatsConfigAndSilence(t *testing.T) {
	e := newEnv(t)
	const a, b = "10.213.250.1", "10.213.250.2"
	putConfig := func(comps map[string][]string) {
		raw, _ := json.Marshal(contract.Config{Components: comps})
		if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, raw); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]time.Time{}
	beat := func(ip string, cpu float64, monitErr string, comps ...contract.ComponentState) {
		hb := contract.Heartbeat{V: 1, IP: ip, Time: time.Now(), IntervalS: 1, CPUPct: cpu, MemPct: 40, DiskPct: 8, Components: comps, MonitError: monitErr}
		raw, _ := json.Marshal(hb)
		if err := e.nc.Publish(subject.Node(ip, subject.VerbHeartbeat), raw); err != nil {
			t.Fatal(err)
		}
		_ = e.nc.Flush()
		seen[ip] = time.Now()
	}
	up := func(name string) contract.ComponentState {
		return contract.ComponentState{Name: name, Process: name, Monit: "OK", Running: true}
	}
	entry := func(comp, ip, cpu, status, reason string) contract.StatusEntry {
		return contract.StatusEntry{Comp: comp, Ip: ip, Cpu: cpu, Mem: "40%", Disk: "8%", Status: status, Reason: reason}
	}
	// until polls status until every wanted entry is as given (Reason: a
	// prefix of it), for at most 2 s.
	until := func(step string, want ...contract.StatusEntry) {
		t.Helper()
		var st map[string]contract.StatusEntry
		for deadline := time.Now().Add(2 * time.Second); ; {
			st = e.statuses(t)
			ok := true
			for _, w := range want {
				g := st[w.Comp+"@"+w.Ip]
				r := g.Reason
				g.Reason = ""
				ok = ok && g == contract.StatusEntry{Comp: w.Comp, Ip: w.Ip, Cpu: w.Cpu, Mem: w.Mem, Disk: w.Disk, Status: w.Status} && strings.HasPrefix(r, w.Reason) && (w.Reason != "" || r == "")
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %+v, want %+v", step, st, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	putConfig(map[string][]string{"web": {a, b}, "db": {a}})
	beat(a, 1.5, "", up("web"), up("db"))
	beat(b, 2, "", up("web"))
	until("first heartbeats", entry("web", a, "1.5%", "RUNNING", ""), entry("db", a, "1.5%", "RUNNING", ""), entry("web", b, "2%", "RUNNING", ""))

	beat(a, 7.25, "", up("web"), contract.ComponentState{Name: "db", Process: "db", Monit: "Does not exist"})
	until("a later heartbeat", entry("web", a, "7.25%", "RUNNING", ""), entry("db", a, "7.25%", "DOWN", "monit: Does not exist"))

	putConfig(map[string][]string{"web": {a, b}, "db": {a}, "cache": {b}})
	until("a new config, no new heartbeat", entry("cache", b, "2%", "DOWN", "not deployed on this node yet"), entry("web", b, "2%", "RUNNING", ""))

	beat(b, 3, "", up("web"), contract.ComponentState{Name: "cache", Monit: "OK", Running: true})
	until("a component with no process", entry("cache", b, "3%", "CONFIGURED", ""))

	// A node in maintenance: each instance of it says so, and who and why,
	// whether it runs or not; its usage still shows.
	hold := func(ips ...string) {
		t.Helper()
		if _, err := bus.UpdateMaintenance(context.Background(), e.res.Engine, func(m *contract.Maintenances) error {
			m.Nodes = map[string]contract.NodeMaintenance{}
			since := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
			for _, ip := range ips {
				m.Nodes[ip] = contract.NodeMaintenance{IP: ip, On: true, Reason: "disk swap", Actor: "alice", Since: &since}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	hold(a)
	why := "maintenance: disk swap (by alice, since 2026-11-24T10:00:00Z); instance "
	until("a node in maintenance", entry("web", a, "7.25%", "MAINTENANCE", why+"RUNNING"),
		entry("db", a, "7.25%", "MAINTENANCE", why+"DOWN: monit: Does not exist"), entry("web", b, "3%", "RUNNING", ""))
	hold()
	until("out of maintenance", entry("web", a, "7.25%", "RUNNING", ""), entry("db", a, "7.25%", "DOWN", "monit: Does not exist"))

	beat(a, 1, "monit: cannot read its status")
	until("monit unreadable", entry("web", a, "1%", "DOWN", "monit: cannot read its status"), entry("db", a, "1%", "DOWN", "monit: cannot read its status"))

	// b reports every second: three missed and its cached RUNNING is gone.
	time.Sleep(time.Until(seen[b].Add(3200 * time.Millisecond)))
	st := e.statuses(t)
	if g := st["web@"+b]; g.Status != "DOWN" || g.Cpu != "N/A" || !strings.HasPrefix(g.Reason, "unreachable: no report for ") {
		t.Fatalf("a silent node's instance: %+v", g)
	}
}
