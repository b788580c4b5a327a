package planner

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

func TestOrphaned(t *testing.T) {
	d := contract.PersistentDisk{SizeMB: 64}
	for _, tc := range []struct {
		name          string
		before, after map[string]contract.PersistentDisk
		want          []string
	}{
		{"none before", nil, map[string]contract.PersistentDisk{"10.0.0.1": d}, nil},
		{"kept", map[string]contract.PersistentDisk{"10.0.0.1": d}, map[string]contract.PersistentDisk{"10.0.0.1": {SizeMB: 128}}, nil},
		{"one dropped", map[string]contract.PersistentDisk{"10.0.0.1": d, "10.0.0.2": d}, map[string]contract.PersistentDisk{"10.0.0.2": d}, []string{"10.0.0.1"}},
		{"all dropped", map[string]contract.PersistentDisk{"10.0.0.2": d, "10.0.0.1": d}, nil, []string{"10.0.0.1", "10.0.0.2"}},
	} {
		if got := orphaned(tc.before, tc.after); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A deployment that succeeds and no longer gives a node its disk orphans
// it; the list shows it with its deployment, a config giving the disk back
// adopts it again, a deletion is refused while the stored config gives
// the node a disk and is a deployment of kind disk otherwise, and once
// that succeeded the disk is gone from the list.
func TestOrphanedDisks(t *testing.T) {
	s := startStopBed(t)
	s.answer()
	s.startPlanner(t)
	t.Cleanup(s.p.Stop)
	ctx := context.Background()
	const a, b, c = "10.9.0.2", "10.9.0.3", "fd00::7"
	applied := func(id string, disks map[string]contract.PersistentDisk) {
		t.Helper()
		cfg := goldenStarter()
		cfg.Properties.PersistentDisks = disks
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.b.Res.Scheduler.Put(ctx, configKey(id), raw); err != nil {
			t.Fatal(err)
		}
		if err := bus.StoreConfig(ctx, s.b.Res.Config, cfg); err != nil {
			t.Fatal(err)
		}
		s.p.disksAfter(ctx, id, "", nil)
	}
	list := func() map[string]contract.Disk {
		t.Helper()
		rep, err := kit.Request(ctx, s.b.NC, subject.DiskList(), struct{}{})
		var got []contract.Disk
		if err != nil || rep.Code != 200 || json.Unmarshal(rep.Body, &got) != nil {
			t.Fatalf("disk list: %v %d %s", err, rep.Code, rep.Body)
		}
		out := map[string]contract.Disk{}
		for _, d := range got {
			out[d.IP+" "+d.State] = d
		}
		return out
	}
	del := func(ip string) kit.Reply {
		t.Helper()
		rep, err := kit.Request(ctx, s.b.NC, subject.DiskDelete(), contract.DiskDelete{IP: ip, Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	disks := map[string]contract.PersistentDisk{a: {SizeMB: 64, Device: "/dev/vdb"}, b: {SizeMB: 64}, c: {SizeMB: 32}}
	applied("d-20000101-000001-000001", disks)
	if got := list(); len(got) != 3 || got[a+" attached"].Device != "/dev/vdb" {
		t.Fatalf("three attached disks: %+v", got)
	}
	// a and the IPv6 node lose theirs.
	applied("d-20000101-000002-000002", map[string]contract.PersistentDisk{b: disks[b]})
	got := list()
	if len(got) != 3 || got[b+" attached"].IP != b {
		t.Fatalf("after a and %s lost their disks: %+v", c, got)
	}
	for _, ip := range []string{a, c} {
		o := got[ip+" orphaned"]
		if o.Deployment != "d-20000101-000002-000002" || o.Orphaned == nil || o.SizeMB != disks[ip].SizeMB || o.Device != disks[ip].Device {
			t.Errorf("%s's orphaned disk: %+v", ip, o)
		}
	}
	// c gets its disk back: adopted, not orphaned.
	applied("d-20000101-000003-000003", map[string]contract.PersistentDisk{b: disks[b], c: disks[c]})
	if got := list(); len(got) != 3 || got[c+" attached"].IP != c || got[a+" orphaned"].IP != a {
		t.Fatalf("after %s got its disk back: %+v", c, got)
	}

	for _, tc := range []struct {
		ip   string
		code int
		want string
	}{
		{"10.9.0.x", 400, "not an IP address"},
		{b, 404, "no orphaned disk on " + b + ": there are orphaned disks on " + a},
	} {
		if rep := del(tc.ip); rep.Code != tc.code || !strings.Contains(string(rep.Body), tc.want) {
			t.Errorf("delete %s: %d %s, want %d saying %q", tc.ip, rep.Code, rep.Body, tc.code, tc.want)
		}
	}
	// A config that gives a its disk again, not yet deployed: kept.
	again := goldenStarter()
	again.Properties.PersistentDisks = map[string]contract.PersistentDisk{a: disks[a]}
	if err := bus.StoreConfig(ctx, s.b.Res.Config, again); err != nil {
		t.Fatal(err)
	}
	if rep := del(a); rep.Code != 409 || !strings.Contains(string(rep.Body), "gives "+a+" a persistent disk again") {
		t.Errorf("delete a disk the stored config gives back: %d %s", rep.Code, rep.Body)
	}
	again.Properties.PersistentDisks = map[string]contract.PersistentDisk{b: disks[b], c: disks[c]}
	if err := bus.StoreConfig(ctx, s.b.Res.Config, again); err != nil {
		t.Fatal(err)
	}

	rep := del(a)
	var started contract.DiskDeleteStarted
	if rep.Code != 202 || json.Unmarshal(rep.Body, &started) != nil || started.IP != a {
		t.Fatalf("delete a's orphaned disk: %d %s", rep.Code, rep.Body)
	}
	d, err := s.p.deployment(ctx, contract.DeployGet{ID: started.ID})
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != contract.KindDisk || len(d.Steps) != 1 || d.Steps[0].Node != a {
		t.Fatalf("the deletion's deployment: kind %q, steps %+v", d.Kind, d.Steps)
	}
	if got := list(); got[a+" orphaned"].IP != a {
		t.Errorf("a's disk left the list before its deletion succeeded: %+v", got)
	}
	s.p.disksAfter(ctx, started.ID, contract.KindDisk, []string{a})
	if got := list(); len(got) != 2 || got[a+" orphaned"].IP != "" {
		t.Errorf("after a's deletion succeeded: %+v", got)
	}
}
