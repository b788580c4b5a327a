package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

func TestReplicasOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-server cluster")
	}
	c := bustest.StartCluster(t, 3)
	// One URL is enough: the cluster announces the others.
	nc, err := bus.Dial(strings.Split(c.URL(), ",")[0], "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := bus.ClusterSize(nc); got != 3 {
		t.Fatalf("ClusterSize = %d, want 3 (servers %v)", got, nc.Servers())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A store made with one replica is raised, not recreated: what it
	// held is still there.
	res, err := bus.Declare(ctx, nc, bus.WithReplicas(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Config.Put(ctx, "kept", []byte("yes")); err != nil {
		t.Fatal(err)
	}
	if _, err := res.JS.Publish(ctx, subject.EngineEvent("test"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := res.JS.CreateOrUpdateConsumer(ctx, bus.StreamSteps, jetstream.ConsumerConfig{Durable: "installer", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if res, err = bus.Declare(ctx, nc); err != nil {
		t.Fatal(err)
	}
	if res.Replicas != 3 {
		t.Errorf("default replicas on a 3-server cluster = %d, want 3", res.Replicas)
	}
	for _, name := range []string{bus.StreamSteps, bus.StreamEvents, bus.StreamAudit, "KV_" + bus.KVConfig, "KV_" + bus.KVDeployments, "KV_" + bus.KVEngine} {
		replicasAre(ctx, t, res.JS, name, 3)
	}
	// A durable consumer made before the raise lives on 3 servers too.
	raisedAt := time.Now()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, err := res.JS.Consumer(ctx, bus.StreamSteps, "installer")
		if err != nil {
			t.Fatal(err)
		}
		ci := c.CachedInfo()
		if ci.Cluster != nil && len(ci.Cluster.Replicas) == 2 {
			t.Logf("the consumer has 3 replicas %s after the raise", time.Since(raisedAt).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the installer's consumer after the raise: replicas %d, cluster %+v", ci.Config.Replicas, ci.Cluster)
		}
	}
	if e, err := res.Config.Get(ctx, "kept"); err != nil || string(e.Value()) != "yes" {
		t.Errorf("a key stored before the raise: %v", err)
	}
	if info, err := res.Events.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("the events stored before the raise: %+v %v", info, err)
	}

	// Asking for fewer never lowers what others rely on.
	if res, err = bus.Declare(ctx, nc, bus.WithReplicas(1)); err != nil {
		t.Fatal(err)
	}
	replicasAre(ctx, t, res.JS, bus.StreamSteps, 3)

	// More than the cluster has is refused, naming what to do.
	if _, err := bus.Declare(ctx, nc, bus.WithReplicas(5)); err == nil || !strings.Contains(err.Error(), "more servers than the NATS cluster has (3)") {
		t.Errorf("--replicas 5 on 3 servers: %v", err)
	}
}

func replicasAre(ctx context.Context, t *testing.T, js jetstream.JetStream, name string, want int) {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	if got := s.CachedInfo().Config.Replicas; got != want {
		t.Errorf("stream %s has %d replicas, want %d", name, got, want)
	}
}

func TestReplicasOnOneServer(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	if b.Res.Replicas != 1 || bus.ClusterSize(b.NC) != 1 {
		t.Errorf("embedded server: replicas %d, cluster size %d; want 1 and 1", b.Res.Replicas, bus.ClusterSize(b.NC))
	}
	_, err := bus.Declare(context.Background(), b.NC, bus.WithReplicas(3))
	if err == nil || !strings.Contains(err.Error(), "--replicas 3") {
		t.Errorf("--replicas 3 on one server: %v", err)
	}
}
