// Package bustest runs the real embedded NATS JetStream server for tests:
// every package's tests talk to the same bus the engine runs on.
package bustest

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
)

// Bus is a running server, a connection of the engine's own user and the
// declared streams and buckets.
type Bus struct {
	Srv *bus.Server
	NC  *nats.Conn
	Res *bus.Resources
}

// Start runs a server with o (a fresh store in t's temp dir when
// o.DataDir is empty), connects and declares everything. It stops when the
// test ends, after the cleanups registered later.
func Start(t testing.TB, o bus.ServerOptions) *Bus {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	ctx := context.Background()
	srv, err := bus.StartServer(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); srv.Stop() })
	res, err := bus.Declare(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	return &Bus{Srv: srv, NC: nc, Res: res}
}

// freePorts are n distinct TCP ports free on loopback now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := pickPorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// pickPorts chooses n distinct TCP ports free on loopback now: each is
// held until all are chosen, so that the kernel cannot hand one out twice.
func pickPorts(n int) ([]int, error) {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choose a free port: %w", err)
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// FreePort is a TCP port free on loopback now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
