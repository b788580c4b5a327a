package bustest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
)

// Cluster is a NATS JetStream cluster of real servers in this process, on
// loopback, each with its own store; a member can be stopped and started
// again on the same store and ports.
type Cluster struct {
	t       testing.TB
	name    string
	opts    []*server.Options
	Servers []*server.Server // nil where a member is stopped
}

// Connect dials the cluster as the engine does and declares everything;
// the connection closes when the test ends.
func (c *Cluster) Connect() (*nats.Conn, *bus.Resources) {
	c.t.Helper()
	nc, err := bus.Dial(c.URL(), "test")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	res, err := bus.Declare(context.Background(), nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return nc, res
}

// StartCluster runs n servers clustered together and waits until
// JetStream has a leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := NewCluster(t, n)
	for i := range n {
		c.Start(i)
	}
	c.WaitLeader(30 * time.Second)
	c.waitPeers(n, 30*time.Second)
	return c
}

// NewCluster configures n servers clustered together, on ports chosen now,
// and starts none: a test may start them later, as a cold start does. They
// are stopped when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: fmt.Sprintf("de-test-%d", FreePort(t)), Servers: make([]*server.Server, n)}
	routes := make([]string, n)
	clusterPorts := make([]int, n)
	for i := range n {
		clusterPorts[i] = FreePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", clusterPorts[i])
	}
	dir := t.TempDir()
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("s%d", i+1), Host: "127.0.0.1", Port: FreePort(t), NoSigs: true,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			Cluster: server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: clusterPorts[i]},
		}
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.opts = append(c.opts, o)
	}
	t.Cleanup(func() {
		for i := range c.Servers {
			c.Stop(i)
		}
	})
	return c
}

// waitPeers waits until the JetStream leader counts n members online: a
// stream of 3 replicas asked for before then finds "no suitable peers".
func (c *Cluster) waitPeers(n int, d time.Duration) {
	c.t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, s := range c.Servers {
			if s != nil && len(s.JetStreamClusterPeers()) >= n {
				return
			}
		}
	}
	c.t.Fatalf("the JetStream leader does not count %d members online after %s", n, d)
}

// URL names every member, for a client to fail over between them.
func (c *Cluster) URL() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// Start starts member i (again).
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if err := c.Launch(i); err != nil {
		c.t.Fatal(err)
	}
}

// Launch starts member i (again) and waits until it takes connections; it
// may run on a goroutine of its own, apart from the test's other calls.
func (c *Cluster) Launch(i int) error {
	if c.Servers[i] != nil {
		return nil
	}
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		return fmt.Errorf("cluster member %d: %w", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("cluster member %d not ready", i)
	}
	c.Servers[i] = s
	return nil
}

// Stop shuts member i down.
func (c *Cluster) Stop(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// WaitLeader waits until a running member sees a JetStream meta leader.
func (c *Cluster) WaitLeader(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s != nil && s.JetStreamIsCurrent() && s.JetStreamIsLeader() {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("the cluster has no JetStream leader after %s", d)
}
