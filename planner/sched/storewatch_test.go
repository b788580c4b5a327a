package sched

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// A deployment whose store loses its quorum for longer than a step may be
// silent is failed, saying why, rather than left running; once the store
// answers again its record says so and its current mark and lock are
// gone, so the next deployment may start.
func TestStoreGoneFailsTheDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-server cluster")
	}
	c := bustest.StartCluster(t, 3)
	nc, res := c.Connect()
	ctx := context.Background()
	s := startScheduler(t, Options{NC: nc, Res: res, SilentAfter: 3 * time.Second, LeaseTTL: 3 * time.Second, Holder: "p1"})
	defer s.Stop()
	// No installer: the steps stay queued while the quorum goes.
	if err := s.Begin(ctx, diamond("d-gone")); err != nil {
		t.Fatal(err)
	}
	on := nc.ConnectedServerName()
	var stopped []int
	for i, srv := range c.Servers {
		if srv.Name() != on {
			c.Stop(i)
			stopped = append(stopped, i)
		}
	}
	var d *contract.Deployment
	var err error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if d, err = s.Snapshot(ctx, "d-gone"); err == nil && d.State == contract.DeployFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment is not failed a minute after its store went: %+v %v", d, err)
		}
	}
	if !strings.Contains(d.Error, "store (NATS JetStream) has not answered") {
		t.Errorf("the reason: %q", d.Error)
	}
	for _, i := range stopped {
		c.Start(i)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rec, rerr := loadRecord(ctx, res, "d-gone")
		_, lerr := res.Scheduler.Get(ctx, keyLease)
		cur, cerr := currentID(ctx, res)
		if rerr == nil && rec.State == contract.DeployFailed && bus.IsNotFound(lerr) && cerr == nil && cur == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the store came back: record %v %v, lock %v, current %q %v", rec, rerr, lerr, cur, cerr)
		}
	}
}
