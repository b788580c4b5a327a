package engine

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/monitor/heal/repair"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// RotatedCertFile and RotatedKeyFile, below the data dir, are the API's
// certificate issued by the --tls auto pair on a rotation: kept beside the
// CA that issued it, so that a restart serves it again.
const (
	RotatedCertFile = "tls/api-cert.pem"
	RotatedKeyFile  = "tls/api-key.pem"
)

// apiCert is the certificate the API serves over https, of the moment:
// the https server asks it at each handshake (GetCertificate), so that a
// rotation takes effect on the next connection, without a restart. Under
// --tls auto it holds the auto pair, a CA, which issues the API a
// certificate of its own on a rotation; a --tls-cert pair is served as
// it is.
type apiCert struct {
	made bool
	// dataDir, hosts, ca and caKey issue a new certificate (made only);
	// hosts are the names it is for, read at each rotation.
	dataDir string
	hosts   func() []string
	ca      *x509.Certificate
	caKey   crypto.Signer
	// issued is signalled (without blocking) on each rotation, for the
	// summary of the engine's certificates.
	issued chan struct{}

	mu   sync.Mutex
	cert *tls.Certificate
}

// newAPICert holds pair; with --tls auto (made) it loads the certificate
// an earlier rotation kept in the data dir, when the pair issued it.
func newAPICert(o Options, pair tls.Certificate, made bool) (*apiCert, error) {
	a := &apiCert{made: made, issued: make(chan struct{}, 1), cert: &pair}
	if !made {
		return a, nil
	}
	ca, err := leafOf(pair)
	if err != nil {
		return nil, fmt.Errorf("--tls auto: the pair's certificate: %w", err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("--tls auto: the pair's key cannot sign")
	}
	a.dataDir, a.ca, a.caKey = o.DataDir, ca, key
	a.hosts = func() []string { return certHosts(o) }
	rotated, err := a.loadRotated()
	if err != nil {
		return nil, err
	}
	if rotated != nil {
		a.cert = rotated
	}
	return a, nil
}

// loadRotated is the certificate a rotation kept, or nil when there is
// none or the CA did not issue it (the auto pair was made anew since).
func (a *apiCert) loadRotated() (*tls.Certificate, error) {
	certFile, keyFile := filepath.Join(a.dataDir, RotatedCertFile), filepath.Join(a.dataDir, RotatedKeyFile)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the API's rotated certificate %s, %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil || pair.Leaf.CheckSignatureFrom(a.ca) != nil {
		return nil, nil
	}
	return &pair, nil
}

// Config is the https server's TLS, nil without TLS.
func (a *apiCert) Config() *tls.Config {
	if a == nil {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return a.current(), nil
	}}
}

func (a *apiCert) current() *tls.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cert
}

// summary is what the API's certificate says of itself.
func (a *apiCert) summary(now time.Time) []contract.Certificate {
	leaf, err := leafOf(*a.current())
	if err != nil {
		return nil
	}
	src := contract.CertGiven
	if a.made {
		src = contract.CertMade
	}
	return []contract.Certificate{contract.DescribeCertificate(contract.CertAPI, src, leaf, now)}
}

// errGiven refuses to rotate a certificate the engine was given.
var errGiven = errors.New("given by --tls-cert, not made by the engine: replace its files and restart the engine")

// rotate issues the API a new certificate from the auto pair, for this
// machine's names and addresses of now, valid until the CA's end; keeps
// it in the data dir and serves it from the next handshake.
func (a *apiCert) rotate() (prev, next *x509.Certificate, err error) {
	if !a.made {
		return nil, nil, errGiven
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	key, tmpl, _, err := serverCert("deployment-engine api", a.ca.NotAfter, a.hosts())
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, &key.PublicKey, a.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue the API's certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a certificate on disk without its key would stop the
	// next start.
	if err := writeAtomic(filepath.Join(a.dataDir, RotatedKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, nil, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ca.Raw})...)
	if err := writeAtomic(filepath.Join(a.dataDir, RotatedCertFile), chain, 0o644); err != nil {
		return nil, nil, err
	}
	if prev, err = leafOf(*a.cert); err != nil {
		return nil, nil, err
	}
	a.cert = &tls.Certificate{Certificate: [][]byte{der, a.ca.Raw}, PrivateKey: key, Leaf: leaf}
	signal(a.issued)
	return prev, leaf, nil
}

// writeAtomic writes b to path through a temporary file renamed over it:
// a crash leaves the old file or the new, never half of one.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// rotate issues the agents' listener a new certificate from the CA, for
// the same hosts; the listener presents it from the next handshake, and
// agents, which pin the CA, trust it as they did the old one.
func (c *agentCerts) rotate() (prev, next *x509.Certificate, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed != nil {
		return nil, nil, errGiven
	}
	prev = c.cert.Leaf
	if err := c.issueLocked(c.hosts); err != nil {
		return nil, nil, err
	}
	return prev, c.cert.Leaf, nil
}

// rotated is what a rotation did: the certificate it replaced and the
// one now served; for the agents' CA, the agents that took the new one and
// those that did not.
type rotated struct {
	prev, next *x509.Certificate
	updated    []string
	missed     []contract.AgentMissed
}

// rotator is a certificate this process holds and can issue again.
type rotator func(ctx context.Context) (rotated, error)

// reissue is the rotator of a certificate issued again by the same CA.
func reissue(f func() (prev, next *x509.Certificate, err error)) rotator {
	return func(context.Context) (rotated, error) {
		prev, next, err := f()
		return rotated{prev: prev, next: next}, err
	}
}

// certRotation answers de.cmd.certificates.rotate-<name> for the
// certificates this process holds: the API's where it serves the API, the
// agents' listener and CA where it runs the embedded NATS.
type certRotation struct {
	log     *slog.Logger
	holders map[string]rotator
}

// endpoints are the rotation commands of the certificates held.
func (r *certRotation) endpoints() map[string]kit.Handler {
	eps := map[string]kit.Handler{}
	for name, rot := range r.holders {
		eps[subject.CertificateRotate(name)] = func(ctx context.Context, req micro.Request) (int, any, error) {
			return r.rotate(ctx, req, name, rot)
		}
	}
	return eps
}

func (r *certRotation) rotate(ctx context.Context, req micro.Request, name string, rot rotator) (int, any, error) {
	var in contract.CertificateRotate
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	res, err := rot(ctx)
	var deploying errDeploying
	switch {
	case errors.Is(err, errGiven):
		return 0, nil, kit.Errorf(http.StatusConflict, "certificate %s is %v", name, err)
	case errors.Is(err, errRotating):
		return 0, nil, kit.Errorf(http.StatusConflict, "%v: wait for its answer", err)
	case errors.As(err, &deploying):
		return 0, nil, kit.Errorf(http.StatusConflict, "%v", err)
	case err != nil:
		r.log.Error("rotate a certificate", "name", name, "err", err)
		return 0, nil, kit.Errorf(http.StatusInternalServerError, "rotate certificate %s: %v", name, err)
	}
	now := time.Now()
	src := contract.CertMade
	r.log.Info("certificate rotated", "name", name, "actor", contract.Clip(in.Actor),
		"previous_serial", res.prev.SerialNumber.Text(16), "serial", res.next.SerialNumber.Text(16), "not_after", res.next.NotAfter,
		"agents_updated", len(res.updated), "agents_missed", len(res.missed))
	for _, m := range res.missed {
		r.log.Warn("an agent missed the agents' new CA", "node", m.Node, "why", m.Error)
	}
	return http.StatusAccepted, contract.CertificateRotated{V: contract.Version,
		Certificate: contract.DescribeCertificate(name, src, res.next, now), PreviousSerial: res.prev.SerialNumber.Text(16),
		AgentsUpdated: res.updated, AgentsMissed: res.missed}, nil
}

// startCertRotation answers the rotation of the certificates this process
// holds until the engine stops; it holds none without TLS.
func startCertRotation(o Options, b *engineBus, api *apiCert, stops *[]func()) error {
	r := &certRotation{log: o.Logger.With("service", "certificates"), holders: map[string]rotator{}}
	if api != nil && o.runs("api") {
		r.holders[contract.CertAPI] = reissue(api.rotate)
	}
	if b.certs != nil {
		r.holders[contract.CertAgentsListener] = reissue(b.certs.rotate)
		nc := b.nc
		ca := &caRotation{certs: b.certs, nc: nc, agents: agentsToTrust(b.srv, b.res, b.agent != nil, r.log),
			password: b.agentPass, log: r.log, deploying: func(ctx context.Context) (string, error) {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				id, err := repair.DeploymentRunning(ctx, nc)
				if errors.Is(err, nats.ErrNoResponders) {
					return "", nil // no planner runs, and so no deployment
				}
				return id, err
			}}
		r.holders[contract.CertAgentsCA] = ca.rotate
	}
	if len(r.holders) == 0 {
		return nil
	}
	svc := kit.NewService(o.Logger, "certificates")
	*stops = append(*stops, func() { svc.Stop(5 * time.Second) })
	return svc.Serve(b.nc, "rotates the certificates this process holds", r.endpoints())
}
