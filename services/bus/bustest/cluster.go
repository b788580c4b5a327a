package bustest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
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
	mu      sync.Mutex // guards opts' ports, which a launch may change
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
	ports := freePorts(t, 2*n)
	dir := t.TempDir()
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("s%d", i+1), Host: "127.0.0.1", Port: ports[2*i], NoSigs: true,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			Cluster: server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: ports[2*i+1]},
		})
	}
	c.route()
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
	c.mu.Lock()
	defer c.mu.Unlock()
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
// A port chosen free may have been taken since by another process of the
// machine (a client's ephemeral port): the member then gets new ports and
// the others' routes follow.
func (c *Cluster) Launch(i int) error {
	if c.Servers[i] != nil {
		return nil
	}
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		o := *c.opts[i]
		c.mu.Unlock()
		s, err := server.NewServer(&o)
		if err != nil {
			return fmt.Errorf("cluster member %d: %w", i, err)
		}
		go s.Start()
		if s.ReadyForConnections(20 * time.Second) {
			c.Servers[i] = s
			return nil
		}
		s.Shutdown()
		taken := portTaken(o.Port) || portTaken(o.Cluster.Port)
		if !taken || attempt == 3 {
			return fmt.Errorf("cluster member %d not ready after 20s (client port %d, cluster port %d, taken by another process: %v)",
				i, o.Port, o.Cluster.Port, taken)
		}
		ports, err := pickPorts(2)
		if err != nil {
			return fmt.Errorf("cluster member %d: %w", i, err)
		}
		c.mu.Lock()
		c.opts[i].Port, c.opts[i].Cluster.Port = ports[0], ports[1]
		c.mu.Unlock()
		c.route()
	}
}

// route points every member's routes at every member's cluster port.
func (c *Cluster) route() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var routes []string
	for _, o := range c.opts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.Cluster.Port))
	}
	for _, o := range c.opts {
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	}
}

// portTaken says whether port cannot be listened on on loopback now.
func portTaken(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return true
	}
	l.Close()
	return false
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
