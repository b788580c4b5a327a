package sched

import (
	"context"
	"strings"
	"sync"
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
	// The scheduler's lock, which every command waits for, is never held
	// for long while the store does not answer.
	var mu sync.Mutex
	var longest time.Duration
	probing, probed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(probed)
		for {
			select {
			case <-probing:
				return
			case <-time.After(100 * time.Millisecond):
			}
			start := time.Now()
			s.Running()
			mu.Lock()
			longest = max(longest, time.Since(start))
			mu.Unlock()
		}
	}()
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
	if id, ok := s.Ending(); !ok || id != "d-gone" {
		t.Errorf("with the store gone, the failed deployment's placement is not waiting to be written: %q %v", id, ok)
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
	if id, ok := s.Ending(); ok {
		t.Errorf("the store is back, but %s's placement still waits", id)
	}
	close(probing)
	<-probed
	t.Logf("the scheduler's lock was held at most %s while the store was gone", longest.Round(time.Millisecond))
	// A tick's try at the end (storeTry), then its flush, one request of
	// the store's own timeout (5 s); unbounded, 17 s was seen here.
	if longest > storeTry+7*time.Second {
		t.Errorf("a command waited %s for the scheduler's lock while the store was gone", longest.Round(time.Millisecond))
	}
}
