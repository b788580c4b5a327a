package engine

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultAgentPort is where node agents reach the engine's NATS at home.
const DefaultAgentPort = 4222

// agentListenFlag reads --nats-listen: "" follows home on the default
// port, ":PORT" follows home on PORT, "HOST:PORT" pins the address.
func agentListenFlag(v string) (host string, port int, err error) {
	if v == "" {
		return "", DefaultAgentPort, nil
	}
	host, p, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, fmt.Errorf("--nats-listen %q: %w", v, err)
	}
	if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("--nats-listen %q: bad port", v)
	}
	return host, port, nil
}

// agentDoor is where node agents reach the embedded NATS: a TCP listener
// at the config's home that forwards each connection, untouched, to the
// server's own TLS listener on loopback, so TLS runs end to end between
// agent and server and nothing passes in clear. It follows home: when a
// config names another address the door moves there without a restart
// (connections made through the old one live on until their agents move),
// and the server's certificate is issued again to cover it. With
// --nats-listen HOST:PORT the server itself listens there (target ""):
// the door only keeps the certificate covering home.
type agentDoor struct {
	certs  *agentCerts
	target string
	port   int
	log    *slog.Logger

	mu     sync.Mutex
	host   string
	ln     net.Listener
	closed bool
}

func newAgentDoor(certs *agentCerts, target string, port int, log *slog.Logger) *agentDoor {
	return &agentDoor{certs: certs, target: target, port: port, log: log}
}

// Listen makes the engine listen for agents at home (at once, or already):
// the certificate covers home, and the door is open there.
func (d *agentDoor) Listen(home string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("the engine is stopping")
	}
	if net.ParseIP(home) == nil {
		return fmt.Errorf("home %q is not an IP address", home)
	}
	if err := d.certs.cover(home); err != nil {
		return err
	}
	if d.target == "" || (d.ln != nil && d.host == home) {
		return nil
	}
	addr := net.JoinHostPort(home, strconv.Itoa(d.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for node agents at %s: %w (home must be an address of this machine)", addr, err)
	}
	if d.ln != nil {
		d.log.Info("node agents' address moves with home", "from", d.ln.Addr().String(), "to", addr)
		_ = d.ln.Close()
	} else {
		d.log.Info("listening for node agents", "addr", addr)
	}
	d.ln, d.host = ln, home
	go d.serve(ln)
	return nil
}

// Close stops listening; connections already made end with the server.
func (d *agentDoor) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.ln != nil {
		_ = d.ln.Close()
	}
}

func (d *agentDoor) serve(ln net.Listener) {
	delay := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (out of descriptors): back off.
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		go d.pipe(c)
	}
}

// pipe joins one agent's connection to one of the server's listener; the
// server authenticates it like any other client, over TLS.
func (d *agentDoor) pipe(c net.Conn) {
	s, err := net.DialTimeout("tcp", d.target, 5*time.Second)
	if err != nil {
		d.log.Warn("node agent connection refused", "remote", c.RemoteAddr().String(), "err", err)
		_ = c.Close()
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true)
		_ = tc.SetKeepAlivePeriod(30 * time.Second)
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(s, c)
		_ = s.Close()
		close(done)
	}()
	_, _ = io.Copy(c, s)
	_ = c.Close()
	<-done
}

// agentCerts is the TLS identity of the NATS listener for agents. With
// the engine's own CA (the auto pair in the data dir, or the agents' own
// CA a rotation made, agents_ca.go), the server presents a certificate it
// issues for the addresses agents dial — home, loopback, a pinned
// --nats-listen host — and issues again when home changes; agents pin the
// CA, which changes only by a rotation. With --tls-cert the server
// presents that pair as it is, and a home it does not cover is an error.
type agentCerts struct {
	fixed *tls.Certificate
	base  []string
	// given: the pair is --tls-cert's, not one the engine made.
	given bool
	// issued is signalled (without blocking) each time a certificate is
	// issued, for the summary of the engine's certificates.
	issued chan struct{}
	// dataDir keeps the agents' own CA once a rotation made one.
	dataDir string

	mu sync.Mutex
	// caPEM is the certificate agents and observers trust; trust is what
	// an agent installed now is told to trust: caPEM, or while the CA
	// rotates the old CA and the new.
	caPEM, trust string
	ca           *x509.Certificate
	caKey        crypto.Signer
	hosts        []string
	cert         *tls.Certificate
}

// newAgentCerts loads the pair; base are the hosts always covered.
func newAgentCerts(certFile, keyFile string, base []string) (*agentCerts, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("the NATS listener's TLS pair %s, %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("the NATS listener's certificate %s: %w", certFile, err)
	}
	c := &agentCerts{caPEM: string(caPEM), trust: string(caPEM), base: base, issued: make(chan struct{}, 1)}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || !ok {
		c.fixed = &pair
		return c, nil
	}
	c.ca, c.caKey = ca, key
	if err := c.issue(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// CAPEM is the certificate agents and observers trust.
func (c *agentCerts) CAPEM() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caPEM
}

// Trust is what an agent a deployment installs now trusts: the CA, or
// while it rotates the old CA and the new.
func (c *agentCerts) Trust() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trust
}

// Config is the server's TLS: the certificate of the moment.
func (c *agentCerts) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fixed != nil {
			return c.fixed, nil
		}
		return c.cert, nil
	}}
}

// cover makes the certificate valid for home.
func (c *agentCerts) cover(home string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed != nil {
		leaf, err := x509.ParseCertificate(c.fixed.Certificate[0])
		if err != nil {
			return err
		}
		if err := leaf.VerifyHostname(home); err != nil {
			return fmt.Errorf("the certificate of --tls-cert, which node agents pin, is not valid for home %s: give one that covers it, or use --tls auto", home)
		}
		return nil
	}
	if slices.Contains(c.hosts, home) {
		return nil
	}
	return c.issueLocked([]string{home})
}

func (c *agentCerts) issue(extra []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.issueLocked(extra)
}

// issueLocked issues a certificate for the base hosts and extra.
func (c *agentCerts) issueLocked(extra []string) error {
	key, tmpl, hosts, err := serverCert("deployment-engine nats", c.ca.NotAfter, append(append([]string{}, c.base...), extra...))
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.caKey)
	if err != nil {
		return fmt.Errorf("issue the NATS listener's certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	c.cert = &tls.Certificate{Certificate: [][]byte{der, c.ca.Raw}, PrivateKey: key, Leaf: leaf}
	c.hosts = hosts
	select {
	case c.issued <- struct{}{}:
	default:
	}
	return nil
}
