package installer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/contract"
)

// The gateway (properties.gateway) is a jump host, used as OpenSSH's
// ProxyJump: the installer logs in to it with its own credentials, with
// the deadlines and tries a node's connection has and its host key
// pinned as a node's is, then opens each node's TCP connection as a
// channel of that one connection ("direct-tcpip") and speaks SSH to the
// node over it. The node's own host key and login are checked end to end:
// the gateway sees only encrypted bytes. One gateway connection serves
// every node; it is dialled again once it fails, and closed on Stop.

// gatewayErr marks a failure to reach or log in to the gateway: the
// gateway's own dial has made its tries already, so the node's does not
// make more.
type gatewayErr struct{ err error }

func (g gatewayErr) Error() string { return g.err.Error() }
func (g gatewayErr) Unwrap() error { return g.err }

// gatewayConn is the installer's one connection to the gateway.
type gatewayConn struct {
	// mu is held while the gateway is dialled: the callers that wait on
	// it want the same connection.
	mu     sync.Mutex
	id     string
	client *ssh.Client
	dead   chan struct{}
}

// gatewayID tells gateways apart: another address, user or key is another
// connection.
func gatewayID(g contract.Gateway) string {
	h := sha256.Sum256([]byte(g.Addr() + "\x00" + g.LoginUser() + "\x00" + g.Key))
	return hex.EncodeToString(h[:8])
}

// gatewayClient returns the connection to g, dialling it when there is
// none, it failed, or the config now names another gateway.
func (i *Installer) gatewayClient(ctx context.Context, g contract.Gateway) (*ssh.Client, error) {
	gw := &i.gateway
	gw.mu.Lock()
	defer gw.mu.Unlock()
	id := gatewayID(g)
	if gw.client != nil {
		select {
		case <-gw.dead:
		default:
			if gw.id == id {
				return gw.client, nil
			}
		}
		gw.client.Close()
		gw.client = nil
	}
	if i.ctx.Err() != nil {
		return nil, errors.New("the installer is stopping")
	}
	methods, err := authMethods(contract.Auth{Key: g.Key}, g.Host)
	if err != nil {
		return nil, gatewayErr{fmt.Errorf("the gateway %s: %w", g.Addr(), err)}
	}
	c, err := i.dialTarget(ctx, target{ip: g.Host, addr: g.Addr(), user: g.LoginUser(), methods: methods, isGateway: true})
	if err != nil {
		return nil, gatewayErr{fmt.Errorf("the gateway %s: %w", g.Addr(), err)}
	}
	i.log.Info("connected to the gateway", "gateway", g.Addr(), "user", g.LoginUser())
	dead := make(chan struct{})
	go func() { _ = c.Wait(); close(dead) }()
	gw.client, gw.id, gw.dead = c, id, dead
	return c, nil
}

// dropGateway closes c, the gateway's connection, if it is still the
// current one: the next node's dial makes a new one.
func (i *Installer) dropGateway(c *ssh.Client) {
	gw := &i.gateway
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if gw.client == c {
		gw.client.Close()
		gw.client = nil
	}
}

// closeGateway closes the gateway's connection, on Stop.
func (i *Installer) closeGateway() {
	gw := &i.gateway
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if gw.client != nil {
		gw.client.Close()
		gw.client = nil
	}
}

// connectTCP opens the TCP connection to t within ConnectTimeout: directly,
// or as a channel of the gateway's connection.
func (i *Installer) connectTCP(ctx context.Context, t target) (net.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, i.o.ConnectTimeout)
	defer cancel()
	if t.via == nil {
		var d net.Dialer
		conn, err := d.DialContext(cctx, "tcp", t.addr)
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return nil, fmt.Errorf("connect to %s: %w (is the node up and sshd listening on port %s?)", t.addr, err, i.port)
		}
		return conn, nil
	}
	gc, err := t.via(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := gc.DialContext(cctx, "tcp", t.addr)
	if err != nil {
		var refused *ssh.OpenChannelError
		if !errors.As(err, &refused) {
			// No answer from the gateway at all: its connection is
			// not to be trusted with the next try.
			i.dropGateway(gc)
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("connect to %s through the gateway %s: %w (is the node up, sshd listening on port %s, and forwarding allowed on the gateway?)", t.addr, t.gateway, err, i.port)
	}
	return &deadlineConn{Conn: conn}, nil
}

// deadlineConn gives a channel of the gateway's connection the deadlines
// the phases of a dial set, which an SSH channel has not: once the
// deadline passes, the channel is closed, and what waited on it fails.
type deadlineConn struct {
	net.Conn
	mu    sync.Mutex
	timer *time.Timer
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	c.timer = time.AfterFunc(time.Until(t), func() { _ = c.Conn.Close() })
	return nil
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }
