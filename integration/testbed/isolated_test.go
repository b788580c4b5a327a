package testbed

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An isolated bed's nodes are out of this machine's reach but for the
// gateway's sshd, and still reach home (masqueraded as the gateway);
// Down leaves nothing of it behind.
func TestIsolatedBed(t *testing.T) {
	name := Options{Name: "tbiso"}.name()
	t.Cleanup(func() {
		if left := leftovers(name); left != "" {
			t.Errorf("left behind after Down: %s", left)
		}
	})
	b := New(t, Options{Name: "tbiso", Nodes: 1, Isolated: true, Disk: 1 << 30})
	n := b.Nodes[0]
	if b.Gateway == nil || !strings.HasPrefix(n.IP, "10.214.") {
		t.Fatalf("not isolated: gateway %+v, node %s", b.Gateway, n.IP)
	}
	// This machine's default route may lead to something that accepts
	// any connection: what matters is that the node's sshd never answers.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(n.IP, "22"), time.Second); err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		banner, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(banner, "SSH-") {
			t.Fatalf("this machine reaches %s's sshd directly: %q", n.IP, banner)
		}
	}
	if out, _ := exec.Command("ip", "route", "get", n.IP).Output(); strings.Contains(string(out), b.Inner) || strings.Contains(string(out), b.Bridge) {
		t.Fatalf("this machine has a route to %s on the bed: %s", n.IP, out)
	}

	ctx := context.Background()
	gc, err := b.Gateway.SSH(ctx)
	if err != nil {
		t.Fatalf("ssh to the gateway: %v", err)
	}
	defer gc.Close()
	conn, err := gc.Dial("tcp", net.JoinHostPort(n.IP, "22"))
	if err != nil {
		t.Fatalf("the gateway does not reach %s: %v", n.IP, err)
	}
	banner, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Errorf("through the gateway, %s answers %q", n.IP, banner)
	}

	// The node reaches home, seen as the gateway.
	l, err := net.Listen("tcp", net.JoinHostPort(b.Home, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	go func() {
		_, _ = n.Exec(ctx, "exec bash -c 'exec 3<>/dev/tcp/"+b.Home+"/"+port+"; echo home >&3'")
	}()
	_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("the node does not reach home %s: %v", b.Home, err)
	}
	defer c.Close()
	if host, _, _ := net.SplitHostPort(c.RemoteAddr().String()); host != b.Gateway.IP {
		t.Errorf("home sees the node as %s, want the gateway %s", host, b.Gateway.IP)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "home\n" {
		t.Errorf("home read %q", line)
	}
}
