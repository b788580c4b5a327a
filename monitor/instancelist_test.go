package monitor_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Instances: a deployed manifest's group holds every component on its
// machine, each with its processes as the agent read them (a second one
// gone makes the instance failing); a component on a node no group holds
// is an instance of its own; zones come from the config; a node in
// maintenance makes its instance maintenance.
func TestInstances(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const a, b, c = "10.213.250.1", "10.213.250.2", "10.213.250.3"
	cfg := contract.Config{Components: map[string][]string{"db": {a}, "backup": {a}, "web": {b, c}},
		Properties: contract.Properties{AZs: map[string][]string{"z1": {a}, "z2": {b, c}}}}
	raw, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(ctx, bus.KeyConfig, raw); err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(contract.ManifestRecord{Name: "shop", Placement: map[string][]string{"data": {a}, "gone": {"10.213.250.9"}}})
	if _, err := e.res.Engine.Put(ctx, bus.KeyManifest, rec); err != nil {
		t.Fatal(err)
	}
	beat := func(ip string, comps ...contract.ComponentState) {
		hb, _ := json.Marshal(contract.Heartbeat{V: 1, IP: ip, Time: time.Now(), IntervalS: 5, Components: comps})
		if err := e.nc.Publish(subject.Node(ip, subject.VerbHeartbeat), hb); err != nil {
			t.Fatal(err)
		}
		_ = e.nc.Flush()
	}
	db := contract.ComponentState{Name: "db", Process: "db", Processes: []string{"db", "db-worker"}, Monit: "db-worker: Does not exist",
		Procs: []contract.ProcessState{{Name: "db", State: "OK", Running: true}, {Name: "db-worker", State: "Does not exist"}}}
	beat(a, db, contract.ComponentState{Name: "backup", Monit: "OK", Running: true})
	web := contract.ComponentState{Name: "web", Process: "web", Monit: "OK", Running: true} // an agent without Procs
	beat(b, web)
	beat(c, web)

	var got []contract.Instance
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := e.ask(t, subject.MonitorInstances(), nil)
		got = nil
		if code != 200 || json.Unmarshal(body, &got) != nil {
			t.Fatalf("instances: %d %s", code, body)
		}
		if len(got) == 3 && len(got[1].Jobs) == 1 && got[1].Jobs[0].Status == contract.StatusRunning && got[2].State == contract.InstanceRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances: %s", body)
		}
	}
	data := got[0]
	if data.ID != "data/0" || data.Group != "data" || data.AZ != "z1" || data.IP != a || data.State != contract.InstanceFailing || len(data.Jobs) != 2 {
		t.Fatalf("the data instance: %+v", data)
	}
	if data.Jobs[0].Name != "backup" || data.Jobs[0].Status != contract.StatusConfigured || len(data.Jobs[0].Processes) != 0 {
		t.Errorf("backup, a job without a process: %+v", data.Jobs[0])
	}
	want := []contract.ProcessState{{Name: "db", State: "OK", Running: true}, {Name: "db-worker", State: "Does not exist"}}
	if j := data.Jobs[1]; j.Name != "db" || j.Status != "DOWN" || !reflect.DeepEqual(j.Processes, want) {
		t.Errorf("db: %+v, want its processes %+v", j, want)
	}
	for i, ip := range []string{b, c} {
		w := got[1+i]
		if w.ID != "web/"+string(rune('0'+i)) || w.AZ != "z2" || w.IP != ip || w.State != contract.InstanceRunning ||
			!reflect.DeepEqual(w.Jobs[0].Processes, []contract.ProcessState{{Name: "web", State: "OK", Running: true}}) {
			t.Errorf("web %d: %+v", i, w)
		}
	}

	if _, err := bus.UpdateMaintenance(ctx, e.res.Engine, func(m *contract.Maintenances) error {
		m.Nodes = map[string]contract.NodeMaintenance{b: {IP: b, On: true, Reason: "disk", Actor: "alice"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	code, body := e.ask(t, subject.MonitorInstances(), nil)
	if json.Unmarshal(body, &got) != nil || code != 200 || got[1].State != contract.InstanceMaintenance || got[2].State != contract.InstanceRunning {
		t.Errorf("with %s in maintenance: %d %s", b, code, body)
	}
}
