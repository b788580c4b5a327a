package installer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
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
// password only where it was given for, and never to a node logged in to
// as another user than root (the password is root's).
func authMethods(a contract.Auth, ip string) ([]ssh.AuthMethod, error) {
	if a.UserFor(ip) != "root" {
		a.Password = ""
	}
	var out []ssh.AuthMethod
	if key := a.KeyFor(ip); key != "" {
		pem := []byte(key)
		if !strings.Contains(key, "PRIVATE KEY") {
			b, err := os.ReadFile(key)
			if err != nil {
				return nil, permanent{fmt.Errorf("read the SSH key %s: %w", key, err)}
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
	if len(out) == 0 && a.UserFor(ip) != "root" {
		return nil, permanent{fmt.Errorf("%s is logged in to as %s, with a key alone (the config's password is root's): give the config a key, or %s its own (node_keys)", ip, a.UserFor(ip), ip)}
	}
	if len(out) == 0 {
		return nil, permanent{errors.New("the config has neither a root password nor a key")}
	}
	return out, nil
}

// authID tells credentials apart, the gateway they go through included:
// a pooled connection made under others is dialled again.
func authID(a contract.Auth) string {
	via := ""
	if a.Gateway != nil {
		via = gatewayID(*a.Gateway)
	}
	keys := ""
	for _, ip := range contract.SortedKeys(a.Keys) {
		keys += ip + "=" + a.Keys[ip] + "\x00"
	}
	for _, ip := range contract.SortedKeys(a.Users) {
		keys += ip + "@" + a.Users[ip] + "\x00"
	}
	h := sha256.Sum256([]byte(a.Password + "\x00" + a.Key + "\x00" + via + "\x00" + keys))
	return hex.EncodeToString(h[:8])
}

// checkHostKey pins ip's host key in KV on first contact and compares it
// with the pinned one after.
func (i *Installer) checkHostKey(ctx context.Context, ip string, key ssh.PublicKey) error {
	tok, err := subject.IPToken(ip)
	if err != nil {
		return err
	}
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

// dial opens an SSH connection to ip as root. Each try has three phases
// with deadlines of their own, sized to what each costs: the TCP connect
// (sub-millisecond on a LAN; ConnectTimeout still covers a lost SYN
// sent again after 1s), the handshake (a few milliseconds of CPU, the
// host key check included, slower only on a node busy starting sshd) and
// the login (PAM took up to 1.5s on a loaded node). A try that failed
// for a reason that may pass — a deadline, a refused or reset connection
// while sshd restarts — is made again after a pause that doubles, up to
// DialTries; a changed host key, credentials the node rejects, or a
// network that says the node is not there end it at once. ctx bounds it
// all: a probe gives each node its ProbeTimeout.
func (i *Installer) dial(ctx context.Context, ip string, auth contract.Auth) (*ssh.Client, error) {
	methods, err := authMethods(auth, ip)
	if err != nil {
		return nil, err
	}
	t := target{ip: ip, addr: net.JoinHostPort(ip, i.port), user: auth.UserFor(ip), methods: methods}
	if g := auth.Gateway; g != nil {
		t.via = func(ctx context.Context) (*ssh.Client, error) { return i.gatewayClient(ctx, *g) }
		t.gateway = g.Addr()
	}
	return i.dialTarget(ctx, t)
}

// target is an sshd to log in to: a node, or the gateway to the nodes.
type target struct {
	ip, addr, user string
	methods        []ssh.AuthMethod
	// via, when set, is the gateway's connection the TCP connection to
	// addr is made through; gateway names it.
	via     func(context.Context) (*ssh.Client, error)
	gateway string
	// isGateway marks the gateway itself, for what its errors advise.
	isGateway bool
}

// credentials names what to check when t refuses the login.
func (t target) credentials() string {
	if t.isGateway {
		return "properties.gateway (user, key)"
	}
	return "the config's root password or key"
}

// dialTarget makes the tries at t's connection that dial describes.
func (i *Installer) dialTarget(ctx context.Context, t target) (*ssh.Client, error) {
	start, pause := time.Now(), i.o.DialBackoff
	for try := 1; ; try++ {
		c, err := i.dialOnce(ctx, t)
		if err == nil {
			return c, nil
		}
		if try > 1 {
			err = fmt.Errorf("%w (%d tries in %s)", err, try, time.Since(start).Round(time.Millisecond))
		}
		if try >= i.o.DialTries || ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
		// Jitter: the nodes of one host, probed together, should not all
		// come back at the same instant.
		wait := pause + rand.N(pause/2+1)
		i.log.Debug("ssh connection failed; trying again", "node", t.ip, "try", try, "in", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, err
		case <-timer.C:
		}
		pause *= 2
	}
}

// retryable says whether another try may mend a failed one: not when the
// node rejected something, nor when the network says it is not there.
// A gateway that could not be reached was tried as often as a node is
// already.
func retryable(err error) bool {
	var g gatewayErr
	return !isPermanent(err) && !errors.As(err, &g) && !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.ENETUNREACH)
}

// dialOnce makes one try at an SSH connection, each phase within its
// deadline and ctx; its error names the phase that failed.
func (i *Installer) dialOnce(ctx context.Context, t target) (*ssh.Client, error) {
	ip, addr := t.ip, t.addr
	conn, err := i.connectTCP(ctx, t)
	if err != nil {
		return nil, err
	}
	ph := &phases{conn: conn, ctx: ctx}
	stop := context.AfterFunc(ctx, ph.expire)
	ph.enter(phaseHandshake, i.o.HandshakeTimeout)
	cfg := &ssh.ClientConfig{
		User: t.user,
		Auth: t.methods,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			kctx, cancel := context.WithDeadline(ctx, ph.deadline())
			defer cancel()
			if err := i.checkHostKey(kctx, ip, key); err != nil {
				ph.keyFailed(err)
				return err
			}
			// The key exchange is done but for its last message: the
			// rest is the login's.
			ph.enter(phaseLogin, i.o.LoginTimeout)
			return nil
		},
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() && err == nil {
		// ctx ended as the login succeeded: the connection's deadline
		// may be past already.
		c.Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, ph.failed(t, err)
	}
	_ = conn.SetDeadline(time.Time{})
	i.metrics.conns.Inc()
	return ssh.NewClient(c, chans, reqs), nil
}

type phase int

const (
	phaseHandshake phase = iota
	phaseLogin
)

// phases keeps a connection's deadline on the phase it is in, and past
// once ctx ends.
type phases struct {
	conn net.Conn
	ctx  context.Context

	mu      sync.Mutex
	phase   phase
	limit   time.Duration
	until   time.Time
	expired bool
	keyErr  error // why the host key check failed
}

func (p *phases) enter(ph phase, limit time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.limit, p.until = ph, limit, time.Now().Add(limit)
	if !p.expired {
		_ = p.conn.SetDeadline(p.until)
	}
}

// expire runs when ctx ends: whatever the phase, its reads and writes end.
func (p *phases) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expired = true
	_ = p.conn.SetDeadline(time.Unix(1, 0))
}

func (p *phases) keyFailed(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keyErr = err
}

func (p *phases) deadline() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until
}

// failed names what went wrong, and in which phase.
func (p *phases) failed(t target, err error) error {
	ip, addr, user := t.ip, t.addr, t.user
	p.mu.Lock()
	ph, limit, until, keyErr := p.phase, p.limit, p.until, p.keyErr
	p.mu.Unlock()
	what := "ssh handshake with " + addr
	if ph == phaseLogin {
		what = "ssh login to " + addr + " as " + user
	}
	switch {
	case isPermanent(keyErr):
		return keyErr
	case keyErr != nil:
		// The engine's store, not the node, failed it.
		return fmt.Errorf("%s: check its host key: %w", what, keyErr)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return permanent{fmt.Errorf("log in to %s as %s: %w; check %s", ip, user, errAuth, t.credentials())}
	case strings.Contains(strings.ToLower(err.Error()), "too many authentication failures"):
		// sshd's MaxAuthTries: the same credentials fail the same way.
		return permanent{fmt.Errorf("log in to %s as %s: %w (it closed the login after too many attempts); check %s", ip, user, errAuth, t.credentials())}
	case p.ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, context.Cause(p.ctx))
	case !time.Now().Before(until):
		// Named as a timeout whatever the library made of it.
		return fmt.Errorf("%s: not done within %s: %w", what, limit, os.ErrDeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", what, err)
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
