package installer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

type netDialer struct{}

func (netDialer) dial(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}

// fakeIP is where the fake nodes below listen, apart from the real sshd.
const fakeIP = "127.0.78.1"

// fakeNode is a TCP listener on loopback standing in for a node whose sshd
// misbehaves in a way a real one cannot be made to: it counts the
// connections it accepts, then holds them without a word, or speaks SSH
// and is slow to log in, or refuses the key.
type fakeNode struct {
	port    string
	accepts atomic.Int32
}

type behaviour struct {
	silent     bool
	loginDelay time.Duration
	refuse     bool
}

func startFakeNode(t *testing.T, b behaviour) *fakeNode {
	t.Helper()
	return startFakeNodeAt(t, net.JoinHostPort(fakeIP, "0"), b)
}

// startFakeNodeAt is startFakeNode listening at addr.
func startFakeNodeAt(t *testing.T, addr string, b behaviour) *fakeNode {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	n := &fakeNode{port: port}
	done := make(chan struct{})
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
		select {
		case <-time.After(b.loginDelay):
		case <-done:
		}
		if b.refuse {
			return nil, errors.New("not this key")
		}
		return nil, nil
	}}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AddHostKey(signer)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.accepts.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if b.silent {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					_ = ch.Reject(ssh.Prohibited, "a fake node runs nothing")
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return n
}

func onPort(port string, more ...func(*Options)) func(*Options) {
	return func(o *Options) {
		o.Port = port
		for _, f := range more {
			f(o)
		}
	}
}

var fastTries = func(o *Options) { o.DialBackoff = 50 * time.Millisecond }

// A node that accepts the connection but never speaks SSH (an sshd too
// loaded to start its session) fails in the handshake, named as a
// timeout of that phase, after every try and within their bound.
func TestDialHandshakeTimeout(t *testing.T) {
	n := startFakeNode(t, behaviour{silent: true})
	e := newEnv(t, onPort(n.port, fastTries, func(o *Options) { o.HandshakeTimeout = 300 * time.Millisecond }))
	start := time.Now()
	_, err := e.ins.dial(context.Background(), fakeIP, contract.Auth{Key: keyPath})
	took := time.Since(start)
	if err == nil {
		t.Fatal("dial to a node that never speaks SSH succeeded")
	}
	got := describe(err)
	if !strings.HasPrefix(got, "timeout: ssh handshake with ") || !strings.Contains(got, "3 tries") {
		t.Errorf("error %q: want a handshake timeout after 3 tries", got)
	}
	if a := n.accepts.Load(); a != 3 {
		t.Errorf("%d connections, want 3 (one per try)", a)
	}
	// 3 handshakes of 300ms and pauses of 50 and 100ms, each up to half
	// again for jitter.
	if bound := 3*300*time.Millisecond + 225*time.Millisecond + time.Second; took > bound {
		t.Errorf("took %s, want at most %s", took, bound)
	}
}

// The caller's deadline bounds every phase: a probe gives each node its
// ProbeTimeout, whatever the phases' own deadlines are.
func TestDialWithinContext(t *testing.T) {
	n := startFakeNode(t, behaviour{silent: true})
	e := newEnv(t, onPort(n.port))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.ins.dial(ctx, fakeIP, contract.Auth{Key: keyPath})
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("dial with 500ms left took %s", took)
	}
	if got := describe(err); !strings.HasPrefix(got, "timeout: ssh handshake with ") {
		t.Errorf("error %q: want a handshake timeout", got)
	}
}

// A node slow to log in (PAM on a loaded node) is no failure: the login
// has a deadline of its own, longer than the old 5s for all phases.
func TestDialSlowLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 5.5s for a slow login")
	}
	n := startFakeNode(t, behaviour{loginDelay: 5500 * time.Millisecond})
	e := newEnv(t, onPort(n.port))
	c, err := e.ins.dial(context.Background(), fakeIP, contract.Auth{Key: keyPath})
	if err != nil {
		t.Fatalf("dial to a node that logs in within the login deadline: %v", err)
	}
	c.Close()
	if a := n.accepts.Load(); a != 1 {
		t.Errorf("%d connections, want 1", a)
	}
}

// A login past its deadline is named as the login's timeout, not the
// handshake's: the handshake, host key check included, was done.
func TestDialLoginTimeout(t *testing.T) {
	n := startFakeNode(t, behaviour{loginDelay: time.Minute})
	e := newEnv(t, onPort(n.port, fastTries, func(o *Options) { o.LoginTimeout = 300 * time.Millisecond; o.DialTries = 2 }))
	_, err := e.ins.dial(context.Background(), fakeIP, contract.Auth{Key: keyPath})
	if got := describe(err); !strings.HasPrefix(got, "timeout: ssh login to ") || !strings.Contains(got, "2 tries") {
		t.Errorf("error %q: want a login timeout after 2 tries", got)
	}
}

// A port nothing listens on fails fast, named refused, after its tries;
// an sshd that comes back meanwhile (restarting) is reached.
func TestDialRefused(t *testing.T) {
	l, err := net.Listen("tcp", net.JoinHostPort(fakeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	e := newEnv(t, onPort(port, fastTries))
	start := time.Now()
	_, err = e.ins.dial(context.Background(), fakeIP, contract.Auth{Key: keyPath})
	if took := time.Since(start); took > time.Second {
		t.Errorf("a refused port took %s to fail", took)
	}
	if got := describe(err); !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, "3 tries") {
		t.Errorf("error %q: want refused after 3 tries", got)
	}
}

func TestDialWhileSSHDRestarts(t *testing.T) {
	e := newEnv(t)
	storeConfig(t, e)
	stopSSHD()
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		restarted <- startSSHD()
	}()
	c, err := e.ins.dial(context.Background(), nodeIP, contract.Auth{Key: keyPath})
	if err := <-restarted; err != nil {
		t.Fatalf("restart sshd: %v", err)
	}
	if err != nil {
		t.Fatalf("dial while sshd restarts: %v", err)
	}
	c.Close()
}

// What no try mends is not tried again: a host key that is not the
// pinned one, and credentials the node rejects.
func TestDialNoRetry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse bool
		pin    bool
		want   string
		is     error
	}{
		{name: "host key changed", pin: true, want: "host key: ", is: errHostKeyChanged},
		{name: "credentials rejected", refuse: true, want: "auth: ", is: errAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startFakeNode(t, behaviour{refuse: tc.refuse})
			e := newEnv(t, onPort(n.port, fastTries))
			if tc.pin {
				tok, _ := subject.IPToken(fakeIP)
				if _, err := e.res.HostKeys.Create(context.Background(), tok, []byte("ssh-ed25519 SHA256:another")); err != nil {
					t.Fatal(err)
				}
			}
			_, err := e.ins.dial(context.Background(), fakeIP, contract.Auth{Key: keyPath})
			if !errors.Is(err, tc.is) || !isPermanent(err) || !strings.HasPrefix(describe(err), tc.want) {
				t.Errorf("error %v (%q): want %v, permanent", err, describe(err), tc.is)
			}
			if a := n.accepts.Load(); a != 1 {
				t.Errorf("%d connections, want 1: %s is not tried again", a, tc.name)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("connect: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("handshake: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("login: %w", os.ErrDeadlineExceeded), true},
		{fmt.Errorf("handshake: %w", errors.New("EOF")), true},
		{fmt.Errorf("connect: %w", syscall.EHOSTUNREACH), false},
		{fmt.Errorf("connect: %w", syscall.ENETUNREACH), false},
		{fmt.Errorf("read pinned host key: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("x: %w", permanent{errHostKeyChanged}), false},
		{permanent{errAuth}, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
