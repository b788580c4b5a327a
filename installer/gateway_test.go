package installer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// syncBuffer is the gateway sshd's log, written by its process and read
// by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

type testGateway struct {
	ip  string
	log *syncBuffer
}

func (g testGateway) gateway() *contract.Gateway {
	port, _ := strconv.Atoi(nodePort)
	return &contract.Gateway{Host: g.ip, Port: port, Key: keyPath}
}

// startGateway starts a real sshd at an address of its own that lets root
// log in with the tests' key and forward TCP connections only to the
// tests' node (and the fake nodes): what a jump host is. Its debug log says which channels it
// opened.
func startGateway(t *testing.T) testGateway {
	t.Helper()
	ip, err := pickNodeIP()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	cfg := fmt.Sprintf(`Port %s
ListenAddress %s
HostKey %s/host_key
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
StrictModes no
UsePAM no
AllowTcpForwarding yes
PermitOpen %s:%s %s:*
LogLevel DEBUG1
`, nodePort, ip, dir, sshDir, dir, nodeIP, nodePort, fakeIP)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := (&netDialer{}).dial(ip + ":" + nodePort); err == nil {
			c.Close()
			return testGateway{ip: ip, log: log}
		}
	}
	t.Fatalf("the gateway's sshd did not start on %s:%s: %s", ip, nodePort, log.String())
	return testGateway{}
}

// A node's connection goes through the gateway, as ProxyJump's does: the
// gateway opens a channel to the node for each connection, one login to
// the gateway serves them all, the node's connection ends with the
// gateway's, and the next one dials the gateway again.
func TestGatewayCarriesTheNodesConnections(t *testing.T) {
	g := startGateway(t)
	e := newEnv(t)
	auth := contract.Auth{Key: keyPath, Gateway: g.gateway()}
	channel := fmt.Sprintf("target %s port %s", nodeIP, nodePort)
	logins := "Accepted publickey for root"
	run := func() *ssh.Client {
		t.Helper()
		c, err := e.ins.dial(context.Background(), nodeIP, auth)
		if err != nil {
			t.Fatalf("dial through the gateway: %v", err)
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if out, err := s.Output("echo through"); err != nil || strings.TrimSpace(string(out)) != "through" {
			t.Fatalf("run on the node: %v %q", err, out)
		}
		return c
	}
	first, second := run(), run()
	defer second.Close()
	if n := g.log.count(channel); n != 2 {
		t.Errorf("the gateway opened %d channels to %s:%s, want 2 (one per node connection):\n%s", n, nodeIP, nodePort, g.log.String())
	}
	if n := g.log.count(logins); n != 1 {
		t.Errorf("%d logins to the gateway for two node connections, want 1", n)
	}
	// The gateway's host key is pinned as a node's is.
	tok, _ := subject.IPToken(g.ip)
	if _, err := e.res.HostKeys.Get(context.Background(), tok); err != nil {
		t.Errorf("the gateway's host key is not pinned: %v", err)
	}

	e.ins.closeGateway()
	done := make(chan struct{})
	go func() { _ = first.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the node's connection outlived the gateway's")
	}
	run().Close()
	if n := g.log.count(logins); n != 2 {
		t.Errorf("%d logins to the gateway after it was closed, want 2 (dialled again)", n)
	}
}

// The deploy's pre-checks reach the node through the gateway too: the
// probe request carries it.
func TestGatewayProbe(t *testing.T) {
	g := startGateway(t)
	e := newEnv(t)
	rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(), contract.Probe{V: 1, Nodes: []string{nodeIP},
		Auth: contract.Auth{Key: keyPath, Gateway: g.gateway()}, TimeoutMS: 8000})
	if err != nil || rep.Code != 200 {
		t.Fatalf("probe: %v %+v", err, rep)
	}
	var res contract.ProbeReply
	if err := json.Unmarshal(rep.Body, &res); err != nil || len(res.Nodes) != 1 || !res.Nodes[0].Reachable || res.Nodes[0].Error != "" {
		t.Fatalf("probe result: %v %s", err, rep.Body)
	}
	if n := g.log.count(fmt.Sprintf("target %s port %s", nodeIP, nodePort)); n != 1 {
		t.Errorf("the probe opened %d channels through the gateway, want 1", n)
	}
}

// A step's connection goes through the config's gateway: the installer
// reads it with the nodes' credentials, the gateway's key being the
// nodes' when it gives none.
func TestGatewayStep(t *testing.T) {
	g := startGateway(t)
	e := newEnv(t)
	gw := g.gateway()
	gw.Key = ""
	cfg := contract.Config{Components: map[string][]string{"x": {nodeIP}},
		Properties: contract.Properties{Domain: "t.local", Home: "127.0.0.1", Key: keyPath, Gateway: gw}}
	b, _ := json.Marshal(cfg)
	if _, err := e.res.Config.Put(context.Background(), bus.KeyConfig, b); err != nil {
		t.Fatal(err)
	}
	r := record(t, e, "d-gw")
	queue(t, e, contract.Step{Deployment: "d-gw", Action: "install", Key: "x.gw-" + uniq(), Hash: uniq(), TimeoutS: 30, Script: "true\n"})
	if ev := r.final(t, 20*time.Second); ev.State != contract.StateSucceeded {
		t.Fatalf("step: %+v", ev)
	}
	if n := g.log.count(fmt.Sprintf("target %s port %s", nodeIP, nodePort)); n != 1 {
		t.Errorf("the step opened %d channels through the gateway, want 1", n)
	}
}

// A gateway that cannot be reached, or refuses the login, or will not
// forward to the node, fails the node's dial with an error that names
// the gateway and what to check, after the gateway's own tries alone.
func TestGatewayFailures(t *testing.T) {
	g := startGateway(t)
	_, other := newKey(t)
	for _, tc := range []struct {
		name string
		gw   func() *contract.Gateway
		node string
		want []string
	}{
		{"nothing listening", func() *contract.Gateway { gw := g.gateway(); gw.Port = 1; return gw },
			nodeIP, []string{"the gateway " + g.ip + ":1", "connect to " + g.ip + ":1", "3 tries"}},
		{"key refused", func() *contract.Gateway { gw := g.gateway(); gw.Key = other; return gw },
			nodeIP, []string{"the gateway " + g.ip + ":" + nodePort, "check properties.gateway"}},
		{"no forwarding to that node", g.gateway,
			"127.0.79.1", []string{"through the gateway " + g.ip + ":" + nodePort, "administratively prohibited"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.DialBackoff = 10 * time.Millisecond })
			_, err := e.ins.dial(context.Background(), tc.node, contract.Auth{Key: keyPath, Gateway: tc.gw()})
			if err == nil {
				t.Fatal("dialled through a gateway that should have failed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Count(err.Error(), "tries in") > 1 {
				t.Errorf("tries were made of tries: %v", err)
			}
		})
	}
}

// newKey writes a fresh private key no sshd of the tests accepts.
func newKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other_key")
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	return signer, path
}

// A node behind the gateway that accepts the connection but never speaks
// SSH fails in the handshake, named as its timeout, after every try and
// within their bound, as a node reached directly does: a channel through
// the gateway keeps the phases' deadlines.
func TestGatewayHandshakeTimeout(t *testing.T) {
	g := startGateway(t)
	n := startFakeNode(t, behaviour{silent: true})
	e := newEnv(t, onPort(n.port, fastTries, func(o *Options) { o.HandshakeTimeout = 300 * time.Millisecond }))
	start := time.Now()
	_, err := e.ins.dial(context.Background(), fakeIP, contract.Auth{Key: keyPath, Gateway: g.gateway()})
	took := time.Since(start)
	if got := describe(err); !strings.HasPrefix(got, "timeout: ssh handshake with ") || !strings.Contains(got, "3 tries") {
		t.Errorf("error %q: want a handshake timeout after 3 tries", got)
	}
	if a := n.accepts.Load(); a != 3 {
		t.Errorf("%d connections, want 3 (one per try)", a)
	}
	if bound := 3*300*time.Millisecond + 225*time.Millisecond + 2*time.Second; took > bound {
		t.Errorf("took %s, want at most %s", took, bound)
	}
}
