package bus_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

// Two clusters declare the same buckets and see only their own values,
// also after the server starts again on the same data dir; the default
// cluster is the data dir's store of before clusters.
func TestClustersKeepApart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for run := range 2 {
		s, err := bus.StartServer(ctx, bus.ServerOptions{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{bus.DefaultCluster, "prod", "stage"} {
			nc, err := s.ConnectCluster(c, "test")
			if err != nil {
				t.Fatalf("connect %s: %v", c, err)
			}
			res, err := bus.Declare(ctx, nc)
			if err != nil {
				t.Fatalf("declare %s: %v", c, err)
			}
			if run == 0 {
				if _, err := res.Config.Put(ctx, bus.KeyConfig, []byte("config of "+c)); err != nil {
					t.Fatal(err)
				}
			} else {
				e, err := res.Config.Get(ctx, bus.KeyConfig)
				if err != nil || string(e.Value()) != "config of "+c {
					t.Fatalf("cluster %s after a restart: %v %v", c, e, err)
				}
			}
			nc.Close()
		}
		s.Stop()
	}
}

func TestClusterNames(t *testing.T) {
	s, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, name := range []string{"", "Prod", "a.b", "a>", "prod_1", "../x", strings.Repeat("a", 64)} {
		if nc, err := s.ConnectCluster(name, "test"); err == nil {
			nc.Close()
			t.Errorf("connected to cluster %q", name)
		}
	}
}

// A node's agent joins the account of the cluster that holds its node:
// its heartbeats reach that cluster's engine and no other's.
func TestAgentJoinsItsCluster(t *testing.T) {
	ctx := context.Background()
	port := bustest.FreePort(t)
	s, err := bus.StartServer(ctx, bus.ServerOptions{DataDir: t.TempDir(), Host: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	secret := []byte("agent-secret")
	s.SetAgentSecret(secret)
	s.SetAgentClusters(func(ip string) string {
		if ip == "10.0.0.6" {
			return "prod"
		}
		return ""
	})
	def, err := s.ConnectCluster(bus.DefaultCluster, "engine")
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	prod, err := s.ConnectCluster("prod", "engine")
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	inDefault, _ := def.SubscribeSync(subject.AllHeartbeats)
	inProd, _ := prod.SubscribeSync(subject.AllHeartbeats)
	_ = def.Flush()
	_ = prod.Flush()

	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	for _, ip := range []string{"10.0.0.5", "10.0.0.6"} {
		agent, err := nats.Connect(url, nats.UserInfo(bus.AgentUser(ip), bus.AgentPassword(secret, ip)))
		if err != nil {
			t.Fatalf("agent %s: %v", ip, err)
		}
		defer agent.Close()
		if err := agent.Publish(subject.Node(ip, subject.VerbHeartbeat), []byte(ip)); err != nil {
			t.Fatal(err)
		}
		_ = agent.Flush()
	}
	for _, c := range []struct {
		name string
		sub  *nats.Subscription
		want string
	}{{"default", inDefault, "10.0.0.5"}, {"prod", inProd, "10.0.0.6"}} {
		m, err := c.sub.NextMsg(2 * time.Second)
		if err != nil || string(m.Data) != c.want {
			t.Fatalf("cluster %s's first heartbeat: %v %v, want %s's", c.name, m, err, c.want)
		}
		if m, err := c.sub.NextMsg(300 * time.Millisecond); err == nil {
			t.Fatalf("cluster %s saw another cluster's heartbeat: %s", c.name, m.Data)
		}
	}
	// A cluster the server has no account for lets no agent in.
	s.SetAgentClusters(func(string) string { return "gone" })
	if nc, err := nats.Connect(url, nats.UserInfo(bus.AgentUser("10.0.0.7"), bus.AgentPassword(secret, "10.0.0.7"))); err == nil {
		nc.Close()
		t.Fatal("an agent of a cluster with no account got in")
	}
}

// The global account sees a named cluster's events under the cluster's
// prefix: one subscription follows one cluster, and no cluster's events
// reach another.
func TestClusterEventsFollowed(t *testing.T) {
	s, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conns := map[string]*nats.Conn{}
	for _, c := range []string{bus.DefaultCluster, "prod", "stage"} {
		nc, err := s.ConnectCluster(c, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns[c] = nc
	}
	prodEvents, _ := conns[bus.DefaultCluster].SubscribeSync(subject.ClusterEvents("prod"))
	defaultEvents, _ := conns[bus.DefaultCluster].SubscribeSync(subject.AllEvents)
	stageSees, _ := conns["stage"].SubscribeSync(">")
	_ = conns[bus.DefaultCluster].Flush()
	_ = conns["stage"].Flush()
	for c, nc := range conns {
		if c == "stage" {
			continue
		}
		if err := nc.Publish("de.evt.deploy.d-1.state", []byte(c)); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
	}
	m, err := prodEvents.NextMsg(2 * time.Second)
	if err != nil || string(m.Data) != "prod" || m.Subject != "de.cluster.prod.evt.deploy.d-1.state" {
		t.Fatalf("prod's event: %v %v", m, err)
	}
	m, err = defaultEvents.NextMsg(2 * time.Second)
	if err != nil || string(m.Data) != bus.DefaultCluster {
		t.Fatalf("the default cluster's event: %v %v", m, err)
	}
	for name, sub := range map[string]*nats.Subscription{"prod's": prodEvents, "the default's": defaultEvents, "stage's": stageSees} {
		if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
			t.Errorf("%s subscription saw %s %q", name, m.Subject, m.Data)
		}
	}
}
