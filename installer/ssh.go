package installer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// errHostKeyChanged marks the one SSH failure that retrying cannot mend.
var errHostKeyChanged = errors.New("host key changed")

// errAuth marks a node that refused the config's credentials.
var errAuth = errors.New("authentication failed")

// permanent wraps errors that retrying cannot mend.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// authMethods turns an Auth into the SSH auth methods offered to ip: the
// password only where it was given for.
func authMethods(a contract.Auth, ip string) ([]ssh.AuthMethod, error) {
	var out []ssh.AuthMethod
	if a.Key != "" {
		pem := []byte(a.Key)
		if !strings.Contains(a.Key, "PRIVATE KEY") {
			b, err := os.ReadFile(a.Key)
			if err != nil {
				return nil, permanent{fmt.Errorf("read the SSH key %s: %w", a.Key, err)}
			}
			pem = b
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, permanent{fmt.Errorf("the SSH key in the config is not a usable private key (passphrase-protected keys are not supported): %w", err)}
		}
		out = append(out, ssh.PublicKeys(signer))
	}
	if a.OffersPassword(ip) {
		pw := a.Password
		out = append(out, ssh.Password(pw), ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			ans := make([]string, len(qs))
			for i := range ans {
				ans[i] = pw
			}
			return ans, nil
		}))
	}
	if len(out) == 0 && a.Password != "" {
		return nil, permanent{fmt.Errorf("the kept root password is offered only to the nodes it was given for, and %s is not one: post the config with the root password in clear (or a key) to use it there", ip)}
	}
	if len(out) == 0 {
		return nil, permanent{errors.New("the config has neither a root password nor a key")}
	}
	return out, nil
}

func authID(a contract.Auth) string {
	h := sha256.Sum256([]byte(a.Password + "\x00" + a.Key))
	return hex.EncodeToString(h[:8])
}

// hostKeyCallback pins each node's host key in KV on first contact.
func (i *Installer) hostKeyCallback(ip string) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		tok, err := subject.IPToken(ip)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got := key.Type() + " " + ssh.FingerprintSHA256(key)
		e, err := i.o.Res.HostKeys.Get(ctx, tok)
		if bus.IsNotFound(err) {
			if _, err := i.o.Res.HostKeys.Create(ctx, tok, []byte(got)); err != nil {
				// Someone pinned it meanwhile: compare with that.
				if e2, err2 := i.o.Res.HostKeys.Get(ctx, tok); err2 == nil && string(e2.Value()) == got {
					return nil
				}
				return fmt.Errorf("pin host key of %s: %w", ip, err)
			}
			i.log.Info("pinned host key", "node", ip, "key", got)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read pinned host key of %s: %w", ip, err)
		}
		if string(e.Value()) != got {
			return permanent{fmt.Errorf("%w: %s now presents %s but %s was pinned at first contact; if the node was reinstalled, forget the old key with `nats kv del %s %s` and deploy again",
				errHostKeyChanged, ip, got, string(e.Value()), bus.KVHostKeys, tok)}
		}
		return nil
	}
}

// dial opens an SSH connection to ip:22 within the dial timeout.
func (i *Installer) dial(ctx context.Context, ip string, auth contract.Auth) (*ssh.Client, error) {
	methods, err := authMethods(auth, ip)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            methods,
		HostKeyCallback: i.hostKeyCallback(ip),
		Timeout:         i.o.DialTimeout,
	}
	addr := net.JoinHostPort(ip, i.port)
	d := net.Dialer{Timeout: i.o.DialTimeout}
	dctx, cancel := context.WithTimeout(ctx, i.o.DialTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w (is the node up and sshd listening on port %s?)", addr, err, i.port)
	}
	// The handshake gets the same deadline as the dial.
	_ = conn.SetDeadline(time.Now().Add(i.o.DialTimeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		if errors.Is(err, errHostKeyChanged) {
			return nil, permanent{unwrapHostKey(err)}
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, permanent{fmt.Errorf("log in to %s as root: %w; check the config's root password or key", ip, errAuth)}
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	i.metrics.conns.Inc()
	return ssh.NewClient(c, chans, reqs), nil
}

func unwrapHostKey(err error) error {
	var p permanent
	if errors.As(err, &p) {
		return p.err
	}
	return err
}

// pooled is one connection per node, shared by every session to it.
type pooled struct {
	client *ssh.Client
	auth   string
	dead   chan struct{}
}

type pool struct {
	mu    sync.Mutex
	conns map[string]*pooled
}

// client returns the node's connection, dialling it if needed. A
// keepalive closes it when the node stops answering, so commands on a
// cut node fail within a few keepalive intervals.
func (i *Installer) client(ctx context.Context, ip string, auth contract.Auth) (*ssh.Client, error) {
	id := authID(auth)
	i.pool.mu.Lock()
	if p := i.pool.conns[ip]; p != nil {
		select {
		case <-p.dead:
		default:
			if p.auth == id {
				i.pool.mu.Unlock()
				return p.client, nil
			}
			p.client.Close()
		}
		delete(i.pool.conns, ip)
	}
	i.pool.mu.Unlock()

	c, err := i.dial(ctx, ip, auth)
	if err != nil {
		return nil, err
	}
	return i.keep(ip, id, c), nil
}

// keep makes c, just dialled with credentials id, the node's pooled
// connection, unless another one is there already: that one is returned,
// and c closed.
func (i *Installer) keep(ip, id string, c *ssh.Client) *ssh.Client {
	p := &pooled{client: c, auth: id, dead: make(chan struct{})}
	i.pool.mu.Lock()
	if old := i.pool.conns[ip]; old != nil {
		// Another step dialled meanwhile; keep one.
		i.pool.mu.Unlock()
		c.Close()
		return old.client
	}
	i.pool.conns[ip] = p
	i.pool.mu.Unlock()
	go i.keepalive(ip, p)
	return c
}

func (i *Installer) keepalive(ip string, p *pooled) {
	defer close(p.dead)
	go func() { _ = p.client.Wait(); p.client.Close() }()
	t := time.NewTicker(i.o.Keepalive)
	defer t.Stop()
	for range t.C {
		done := make(chan error, 1)
		go func() {
			_, _, err := p.client.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				p.client.Close()
				return
			}
		case <-time.After(3 * i.o.Keepalive):
			i.log.Warn("node stopped answering keepalives; closing its connection", "node", ip)
			p.client.Close()
			return
		}
	}
}

func (i *Installer) closeAll() {
	i.pool.mu.Lock()
	defer i.pool.mu.Unlock()
	for ip, p := range i.pool.conns {
		p.client.Close()
		delete(i.pool.conns, ip)
	}
}
