package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/planner/periodic"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// testScheduleFailover runs a schedule of a rolling restart of c1 every
// minute, on the real clock: its first two runs are each one deployment
// of kind restart naming it, the second begun after the first ended;
// then the planner holding the schedules' lease is killed -9 and the next
// minute's run happens once, started by the other planner once it has
// taken the lease over.
func testScheduleFailover(t *testing.T, s *stack) {
	const name = "every-minute-c1"
	ensureDeployed(t, s)
	sc := addSchedule(t, s.apis[0], name)
	t.Cleanup(func() { deleteSchedule(t, s, name) })
	if sc.NextRun == nil || !sc.NextRun.After(sc.Created) || sc.NextRun.Sub(sc.Created) > time.Minute {
		t.Fatalf("schedule %s created at %s says its next run is %v, want the next whole minute", name, sc.Created, sc.NextRun)
	}
	due := []time.Time{*sc.NextRun, sc.NextRun.Add(time.Minute), sc.NextRun.Add(2 * time.Minute)}
	t.Logf("schedule %s created at %s; its runs are due at %s, %s and %s", name, sc.Created.Format(time.TimeOnly),
		due[0].Format(time.TimeOnly), due[1].Format(time.TimeOnly), due[2].Format(time.TimeOnly))

	// Two runs in two minutes, one after the other.
	runs := waitRuns(t, s.apis[0], name, 2, due[1].Add(90*time.Second))
	checkRuns(t, runs, due[:2])
	checkAudit(t, s.apis[0], name, runs)
	holder := leaseHolder(t, s.nats)
	lead := slices.IndexFunc(s.apis[:], func(e *harness.Engine) bool { return strings.HasSuffix(holder, ":"+e.Data) })
	if lead < 0 {
		t.Fatalf("the schedules' lease is held by %q, neither api+planner process", holder)
	}
	lastRun(t, s.apis[0], name, due[1], runs[1].ID, holder)

	// The planner that ran them is killed -9 between two runs.
	victim, other := s.apis[lead], s.apis[1-lead]
	victim.Kill9()
	killed := time.Now()
	t.Cleanup(func() {
		if victim.PID() == 0 {
			victim.Restart()
		}
	})
	t.Logf("killed -9 the planner holding the schedules' lease (process %d) at %s, %s before the next run is due",
		lead+1, killed.Format(time.TimeOnly), time.Until(due[2]).Round(time.Second))
	taker := waitTakeover(t, s.nats, holder, 20*time.Second)
	if !strings.HasSuffix(taker, ":"+other.Data) {
		t.Fatalf("the lease was taken by %q, not the other planner", taker)
	}
	t.Logf("the other planner took the schedules' lease over %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	if !time.Now().Before(due[2]) {
		t.Fatalf("the takeover came after the run due at %s: the test cannot tell a missed run from a lost one", due[2].Format(time.TimeOnly))
	}

	// The next minute's run, once, by the other planner.
	runs = waitRuns(t, other, name, 3, due[2].Add(90*time.Second))
	checkRuns(t, runs, due)
	lastRun(t, other, name, due[2], runs[2].ID, taker)
	// A run claimed twice would have tried a second deployment, refused
	// (409) while the first ran, and audited; give it time to show.
	time.Sleep(3 * time.Second)
	if again, err := deploymentsOf(other, name); err != nil || len(again) != 3 {
		t.Errorf("%d deployments name schedule %s, want 3 (%v): %+v", len(again), name, err, again)
	}
	checkAudit(t, other, name, runs)
}

// ensureDeployed reuses the stack's last deployment when it succeeded
// (the tests before leave c1 and c2 on every node) and deploys otherwise.
func ensureDeployed(t *testing.T, s *stack) {
	t.Helper()
	var list []contract.DeploymentSummary
	getJSON(t, s.apis[0], "/deployment-engine/deployments", &list)
	if len(list) > 0 {
		last := slices.MaxFunc(list, func(a, b contract.DeploymentSummary) int { return a.Created.Compare(b.Created) })
		if last.State == contract.DeploySucceeded && last.Kind == "" {
			t.Logf("c1 and c2 are deployed by %s", last.ID)
			return
		}
	}
	finish(t, s.apis[0], deploy(t, s.apis[0]), 2*time.Minute)
}

func addSchedule(t *testing.T, api *harness.Engine, name string) contract.Schedule {
	t.Helper()
	body := map[string]any{"name": name, "cron": "* * * * *", "action": "restart",
		"args": map[string]any{"name": "c1", "ip": "0.0.0.0", "max_in_flight": 1}}
	code, b := api.Do("POST", "/deployment-engine/schedules", body)
	if code != 201 {
		t.Fatalf("POST /schedules: %d %s", code, b)
	}
	var sc contract.Schedule
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatalf("POST /schedules answered %s: %v", b, err)
	}
	return sc
}

// deleteSchedule deletes the schedule through whichever API answers, so
// that it restarts nothing under the tests after.
func deleteSchedule(t *testing.T, s *stack, name string) {
	for _, api := range s.apis {
		if api.PID() == 0 {
			continue
		}
		code, b, err := api.DoErr(context.Background(), "DELETE", "/deployment-engine/schedules/"+name, nil)
		if err == nil && (code == 200 || code == 404) {
			return
		}
		t.Logf("DELETE /schedules/%s: %d %v %s", name, code, err, b)
	}
	t.Errorf("schedule %s could not be deleted", name)
}

// getJSON reads path into out, trying again for 20 s while the look
// fails (a store slow to answer on a busy machine).
func getJSON(t *testing.T, api *harness.Engine, path string, out any) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Second) {
		err := tryJSON(api, path, out)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		t.Log(err)
	}
}

// tryJSON reads path into out.
func tryJSON(api *harness.Engine, path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, b, err := api.DoErr(ctx, "GET", path, nil)
	if err != nil || code != 200 {
		return fmt.Errorf("GET %s: %d %v %.300s", path, code, err, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("GET %s answered %.300s: %w", path, b, err)
	}
	return nil
}

// deploymentsOf lists the deployments naming schedule name, oldest first.
func deploymentsOf(api *harness.Engine, name string) ([]contract.DeploymentSummary, error) {
	var list []contract.DeploymentSummary
	if err := tryJSON(api, "/deployment-engine/deployments", &list); err != nil {
		return nil, err
	}
	list = slices.DeleteFunc(list, func(d contract.DeploymentSummary) bool { return d.Schedule != name })
	slices.SortFunc(list, func(a, b contract.DeploymentSummary) int { return a.Created.Compare(b.Created) })
	return list, nil
}

// waitRuns waits until n deployments name schedule name and the last of
// them has ended, and returns them. A look that fails (a store slow to
// answer on a busy machine) is tried again until the deadline.
func waitRuns(t *testing.T, api *harness.Engine, name string, n int, deadline time.Time) []contract.DeploymentSummary {
	t.Helper()
	for {
		list, err := deploymentsOf(api, name)
		if err != nil {
			t.Log(err)
		}
		if len(list) > n {
			t.Fatalf("%d deployments name schedule %s, want %d: %+v", len(list), name, n, list)
		}
		if err == nil && len(list) == n && list[n-1].Finished != nil {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deployment(s) of schedule %s by %s, want %d ended: %+v\nthe planner's log ends:\n%s",
				len(list), name, deadline.Format(time.TimeOnly), n, list, harness.Tail(api.Log(), 30))
		}
		time.Sleep(time.Second)
	}
}

// checkRuns holds run i to the run due at due[i]: a rolling restart that
// succeeded, begun within 30 s of its due time, after the run before it
// ended.
func checkRuns(t *testing.T, runs []contract.DeploymentSummary, due []time.Time) {
	t.Helper()
	for i, d := range runs {
		took := "?"
		if d.Finished != nil {
			took = d.Finished.Sub(d.Created).Round(100 * time.Millisecond).String()
		}
		t.Logf("run due at %s: deployment %s (%s) %s, begun %s after its due time, took %s", due[i].Format(time.TimeOnly),
			d.ID, d.Kind, d.State, d.Created.Sub(due[i]).Round(100*time.Millisecond), took)
		if d.Kind != "restart" || d.State != contract.DeploySucceeded {
			t.Errorf("run due at %s: deployment %s is a %q that %s, want a restart that succeeded", due[i].Format(time.TimeOnly), d.ID, d.Kind, d.State)
		}
		if d.Created.Before(due[i]) || d.Created.After(due[i].Add(30*time.Second)) {
			t.Errorf("deployment %s begun at %s, want within 30 s after its due time %s", d.ID, d.Created.Format(time.TimeOnly), due[i].Format(time.TimeOnly))
		}
		if i > 0 && (runs[i-1].Finished == nil || !runs[i-1].Finished.Before(d.Created)) {
			t.Errorf("deployment %s begun at %s, before %s ended (%v): the runs overlap", d.ID, d.Created, runs[i-1].ID, runs[i-1].Finished)
		}
	}
}

// lastRun checks the schedule's last run as GET /schedules/{name} shows
// it.
func lastRun(t *testing.T, api *harness.Engine, name string, due time.Time, dep, planner string) {
	t.Helper()
	var sc contract.Schedule
	getJSON(t, api, "/deployment-engine/schedules/"+name, &sc)
	r := sc.LastRun
	if r == nil || !r.Due.Equal(due) || r.Result != contract.RunStarted || r.Deployment != dep || r.Planner != planner ||
		r.DeploymentState != contract.DeploySucceeded || r.Missed != 0 {
		t.Errorf("schedule %s's last run: %+v, want the run due at %s started as %s (succeeded) by %s", name, r, due.Format(time.TimeOnly), dep, planner)
	}
}

// checkAudit wants one audit entry of the schedule's actor for each run,
// each saying it started its deployment: none skipped, missed or refused.
func checkAudit(t *testing.T, api *harness.Engine, name string, runs []contract.DeploymentSummary) {
	t.Helper()
	var entries []contract.AuditEntry
	q := url.Values{"actor": {contract.ScheduleActor(name)}, "action": {contract.AuditScheduleRun}}
	getJSON(t, api, "/deployment-engine/audit?"+q.Encode(), &entries)
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %d %s", e.Result, e.Code, e.Deployment))
	}
	var want []string
	for _, d := range runs {
		want = append(want, fmt.Sprintf("ok 202 %s", d.ID))
	}
	if !slices.Equal(got, want) {
		t.Errorf("the audit entries of %s: %q, want %q", contract.ScheduleActor(name), got, want)
	}
}

// leaseHolder reads who holds the schedules' lease from the store.
func leaseHolder(t *testing.T, c *natsCluster) string {
	t.Helper()
	nc, js, err := c.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.KVScheduler)
	if err != nil {
		t.Fatalf("bucket %s: %v", bus.KVScheduler, err)
	}
	e, err := kv.Get(ctx, periodic.KeyLease)
	if err != nil {
		t.Fatalf("%s in %s: %v", periodic.KeyLease, bus.KVScheduler, err)
	}
	var d struct {
		Holder string `json:"holder"`
	}
	if err := json.Unmarshal(e.Value(), &d); err != nil || d.Holder == "" {
		t.Fatalf("%s in %s is %q: %v", periodic.KeyLease, bus.KVScheduler, e.Value(), err)
	}
	return d.Holder
}

// waitTakeover waits until another planner than was holds the lease.
func waitTakeover(t *testing.T, c *natsCluster, was string, within time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		if h := leaseHolder(t, c); h != was {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds the schedules' lease %s after it was killed", was, within)
		}
	}
}
