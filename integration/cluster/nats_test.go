package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsCluster is three nats-server members in this process, each started
// from a config file written from testdata/nats.conf.tmpl (the README's),
// with its own store and ports on loopback. A member can be stopped and
// started again on the same store and ports.
type natsCluster struct {
	dir       string
	files     []string
	names     []string
	ports     []int
	servers   []*server.Server
	bin       string      // a nats-server binary the members run as, or "" for in this process
	procs     []*exec.Cmd // the members' processes when bin is set
	enginePW  string
	observePW string
}

type member struct {
	Name, Host, StoreDir             string
	Port, ClusterPort                int
	Routes                           []string
	EnginePassword, ObserverPassword string
	Agents                           []agentUser
}

type agentUser struct{ IP, User, Password, Subjects string }

func secret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startNATS(dir string, agents []agentUser) (*natsCluster, error) {
	c, err := newNATS(dir, agents, "")
	if err != nil {
		return nil, err
	}
	for i := range 3 {
		if err := c.start(i); err != nil {
			c.stopAll()
			return nil, err
		}
	}
	return c, c.waitStreams(30 * time.Second)
}

// newNATS writes the members' configs and starts none of them. With bin
// (a nats-server binary) each member runs as its own process of it.
func newNATS(dir string, agents []agentUser, bin string) (*natsCluster, error) {
	tmpl, err := template.ParseFiles("testdata/nats.conf.tmpl")
	if err != nil {
		return nil, err
	}
	c := &natsCluster{dir: dir, bin: bin, enginePW: secret(), observePW: secret(), servers: make([]*server.Server, 3), procs: make([]*exec.Cmd, 3)}
	var routes []string
	var cports []int
	for range 3 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		c.ports, cports = append(c.ports, p), append(cports, cp)
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", cp))
	}
	for i := range 3 {
		m := member{Name: fmt.Sprintf("s%d", i+1), Host: "127.0.0.1", StoreDir: filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			Port: c.ports[i], ClusterPort: cports[i], Routes: routes, EnginePassword: c.enginePW, ObserverPassword: c.observePW, Agents: agents}
		var b strings.Builder
		if err := tmpl.Execute(&b, m); err != nil {
			return nil, err
		}
		f := filepath.Join(dir, m.Name+".conf")
		if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
			return nil, err
		}
		c.files, c.names = append(c.files, f), append(c.names, m.Name)
	}
	return c, nil
}

func (c *natsCluster) start(i int) error {
	if c.servers[i] != nil || c.procs[i] != nil {
		return nil
	}
	if c.bin != "" {
		return c.startProcess(i)
	}
	o, err := server.ProcessConfigFile(c.files[i])
	if err != nil {
		return fmt.Errorf("%s: %w", c.files[i], err)
	}
	o.NoSigs = true
	s, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("%s: %w", c.names[i], err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("%s not ready", c.names[i])
	}
	c.servers[i] = s
	return nil
}

// startProcess runs member i as a process of c.bin and waits until its
// client port accepts connections.
func (c *natsCluster) startProcess(i int) error {
	cmd := exec.Command(c.bin, "-c", c.files[i])
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", c.names[i], err)
	}
	c.procs[i] = cmd
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.ports[i])); err == nil {
			conn.Close()
			return nil
		}
	}
	return fmt.Errorf("%s (%s) not ready", c.names[i], c.bin)
}

func (c *natsCluster) stop(i int) {
	if p := c.procs[i]; p != nil {
		_ = p.Process.Kill()
		_ = p.Wait()
		c.procs[i] = nil
	}
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i] = nil
	}
}

func (c *natsCluster) stopAll() {
	for i := range c.servers {
		c.stop(i)
	}
}

// url lists every member, with the engine's user.
func (c *natsCluster) url() string {
	var urls []string
	for _, p := range c.ports {
		urls = append(urls, fmt.Sprintf("nats://engine:%s@127.0.0.1:%d", c.enginePW, p))
	}
	return strings.Join(urls, ",")
}

func (c *natsCluster) index(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// connect opens a connection of the engine's user, for the test's own
// look at the streams.
func (c *natsCluster) connect() (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(c.url(), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// leaderOf names the member that leads stream name.
func (c *natsCluster) leaderOf(name string) (int, error) {
	nc, js, err := c.connect()
	if err != nil {
		return -1, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		s, err := js.Stream(ctx, name)
		if err == nil {
			if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader != "" {
				return c.index(ci.Leader), nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no leader of %s: %v", name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitStreams waits until JetStream answers on the cluster: a meta leader
// is elected.
func (c *natsCluster) waitStreams(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, s := range c.servers {
			if s != nil && s.JetStreamIsLeader() {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no JetStream meta leader after %s", d)
}

// waitCurrent waits until the step stream and the deployments bucket have
// a leader and every replica current.
func (c *natsCluster) waitCurrent(d time.Duration) error {
	nc, js, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	deadline := time.Now().Add(d)
	for _, name := range []string{"DE_STEPS", "DE_EVENTS", "KV_DE_DEPLOYMENTS"} {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s, err := js.Stream(ctx, name)
			cancel()
			ok := false
			if err == nil {
				if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader != "" && len(ci.Replicas) == 2 {
					ok = true
					for _, r := range ci.Replicas {
						ok = ok && r.Current && !r.Offline
					}
				}
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("stream %s not whole again after %s (%v)", name, d, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}
