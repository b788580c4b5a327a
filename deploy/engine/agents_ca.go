package engine

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

// The agents' own CA, below the data dir, once a rotation made one: it
// issues the NATS listener's certificate in the auto pair's place, which
// the API keeps (rotating the agents' CA changes nothing API clients
// trust). AgentsCAKeyFile holds the CA's certificate and key (mode 0600)
// and is what a start loads; AgentsCAFile is its certificate alone, for
// observers to pin, written again from it at each start.
// agentsCAPendingFile is a rotation's new CA until the rotation makes it
// the agents' (by renaming it to AgentsCAKeyFile).
const (
	AgentsCAFile        = "tls/agents-ca.pem"
	AgentsCAKeyFile     = "tls/agents-ca-key.pem"
	agentsCAPendingFile = "tls/agents-ca-next.pem"
)

// trustTimeout bounds one agent's answer to a trust command.
const trustTimeout = 10 * time.Second

// trustFanout bounds the trust commands in flight at once.
const trustFanout = 32

// errRotating refuses a rotation of the agents' CA while one runs.
var errRotating = errors.New("a rotation of the agents' CA is under way")

// errDeploying refuses a rotation of the agents' CA while a deployment
// runs: its agent steps were planned with the CA of before, and an agent
// given that alone after the rotation could not reach the engine again.
type errDeploying struct{ id string }

func (e errDeploying) Error() string {
	return fmt.Sprintf("deployment %s is running, and its agent steps give the agents the CA of now: rotate the agents' CA once it ends", e.id)
}

// loadAgentsCA returns the files of the agents' own CA, or "" when no
// rotation made one. A pending CA is a rotation that stopped before the new
// CA became the agents' (a crash, a stop): no agent was told to trust it
// alone by then, and those told to trust it trust the old one too, so
// dropping it strands none — the rotation is undone, to be asked again.
func loadAgentsCA(dataDir string, log *slog.Logger) (certFile, keyFile string, err error) {
	pending := filepath.Join(dataDir, agentsCAPendingFile)
	switch err := os.Remove(pending); {
	case err == nil:
		if log != nil {
			log.Warn("a rotation of the agents' CA did not finish: it is undone and agents keep the CA they had (some may trust the new one too); rotate it again")
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("the agents' pending CA: %w", err)
	}
	keyFile = filepath.Join(dataDir, AgentsCAKeyFile)
	b, err := os.ReadFile(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("the agents' CA: %w", err)
	}
	if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		return "", "", fmt.Errorf("the agents' CA key %s is open to group or others (mode %04o): whoever reads it can impersonate the engine to "+
			"its agents; run chmod 600 %s", keyFile, st.Mode().Perm(), keyFile)
	}
	certPEM := certificatesOf(b)
	if len(certPEM) == 0 {
		return "", "", fmt.Errorf("the agents' CA %s holds no certificate", keyFile)
	}
	certFile = filepath.Join(dataDir, AgentsCAFile)
	if cur, err := os.ReadFile(certFile); err != nil || !bytes.Equal(cur, certPEM) {
		if err := writeAtomic(certFile, certPEM, 0o644); err != nil {
			return "", "", err
		}
	}
	return certFile, keyFile, nil
}

// certificatesOf are the CERTIFICATE blocks of b, in PEM: never its key.
func certificatesOf(b []byte) []byte {
	var out []byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, pem.EncodeToMemory(blk)...)
		}
	}
}

// makeAgentsCA makes a CA as the auto pair is made (a P-256 key, ten
// years), for the agents alone: its certificate, its key, the certificate
// in PEM and the certificate with its key in PEM.
func makeAgentsCA() (*x509.Certificate, crypto.Signer, string, []byte, error) {
	key, tmpl, _, err := serverCert("deployment-engine agents CA", time.Now().AddDate(10, 0, 0), nil)
	if err != nil {
		return nil, nil, "", nil, err
	}
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("make the agents' CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, "", nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, "", nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pair := append(bytes.Clone(certPEM), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})...)
	return ca, key, string(certPEM), pair, nil
}

// current is the CA of the moment, its key and its certificate in PEM.
func (c *agentCerts) current() (*x509.Certificate, crypto.Signer, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ca, c.caKey, c.caPEM
}

// setTrust is what agents a deployment installs from now on trust.
func (c *agentCerts) setTrust(bundle string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trust = bundle
}

// useCA makes ca the agents' CA: the listener presents a certificate it
// issued, for the same hosts, from its next handshake on.
func (c *agentCerts) useCA(ca *x509.Certificate, key crypto.Signer, caPEM string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	prevCA, prevKey := c.ca, c.caKey
	c.ca, c.caKey = ca, key
	if err := c.issueLocked(c.hosts); err != nil {
		c.ca, c.caKey = prevCA, prevKey
		return err
	}
	c.caPEM = caPEM
	return nil
}

// caRotation rotates the agents' CA, in the process that runs the
// embedded NATS: it holds the listener's certificates, and its connection
// reaches every agent.
type caRotation struct {
	certs *agentCerts
	nc    *nats.Conn
	// agents lists the nodes whose agent is to trust the new CA: those
	// connected now, and the config's.
	agents func(ctx context.Context) ([]string, error)
	// password is a node's agent password, from which the trust
	// command's sealing key derives.
	password func(ip string) string
	// deploying is the deployment running, "" when none does; nil: none
	// can (a test).
	deploying func(ctx context.Context) (string, error)
	log       *slog.Logger

	mu sync.Mutex
}

// rotate replaces the agents' CA through a transition in which they trust
// the old one and the new, so that none loses the engine:
//
//  1. a new CA is made and kept as pending (a start drops a pending CA:
//     see loadAgentsCA);
//  2. every agent is told to trust the old CA and the new (a trust
//     command: it keeps them in its config file and verifies the next
//     handshake with them, on the connection it has); agents a deployment
//     installs meanwhile are given both;
//  3. the listener's certificate is issued by the new CA, presented from
//     the next handshake;
//  4. the new CA becomes the agents' on disk (the pending file renamed:
//     a restart keeps it), and every agent is told to trust it alone, as
//     agents installed from then on are.
//
// No connection is dropped: TLS verifies the server at the handshake
// alone. An agent that took neither command (not connected, or older
// than the command) is named in the answer: once its connection drops it
// cannot reach the engine until the next deploy's agent step gives it the
// new CA.
func (r *caRotation) rotate(ctx context.Context) (rotated, error) {
	if !r.mu.TryLock() {
		return rotated{}, errRotating
	}
	defer r.mu.Unlock()
	c := r.certs
	if c.fixed != nil || c.given || c.dataDir == "" {
		return rotated{}, errGiven
	}
	// Once begun, a rotation ends as one, whoever stops waiting for its
	// answer: a cancelled request must not pass for agents that did not
	// answer. Each agent's answer is bounded (trustTimeout).
	ctx = context.WithoutCancel(ctx)
	if r.deploying != nil {
		id, err := r.deploying(ctx)
		switch {
		case err != nil:
			return rotated{}, fmt.Errorf("whether a deployment runs: %w", err)
		case id != "":
			return rotated{}, errDeploying{id}
		}
	}
	ips, err := r.agents(ctx)
	if err != nil {
		return rotated{}, fmt.Errorf("list the agents: %w", err)
	}
	prev, prevKey, prevPEM := c.current()
	next, nextKey, nextPEM, pair, err := makeAgentsCA()
	if err != nil {
		return rotated{}, err
	}
	pending := filepath.Join(c.dataDir, agentsCAPendingFile)
	if err := writeAtomic(pending, pair, 0o600); err != nil {
		return rotated{}, err
	}
	undo := func() {
		_ = c.useCA(prev, prevKey, prevPEM)
		c.setTrust(prevPEM)
		_ = os.Remove(pending)
	}

	bundle := strings.TrimRight(prevPEM, "\n") + "\n" + nextPEM
	c.setTrust(bundle)
	both := r.tell(ctx, ips, bundle)
	r.log.Info("agents' CA rotation: agents trust the old CA and the new", "agents", len(ips), "missed", len(ips)-countOK(both))

	if err := c.useCA(next, nextKey, nextPEM); err != nil {
		undo()
		return rotated{}, err
	}
	if err := r.promote(nextPEM); err != nil {
		// Back to the old CA, which every agent still trusts.
		undo()
		return rotated{}, err
	}
	c.setTrust(nextPEM)
	signal(c.issued)

	// Agents that connected meanwhile are told too.
	if now, err := r.agents(ctx); err == nil {
		ips = union(ips, now)
	}
	alone := r.tell(ctx, ips, nextPEM)
	out := rotated{prev: prev, next: next}
	for _, ip := range ips {
		bothErr, asked := both[ip]
		switch err := alone[ip]; {
		case err == nil:
			out.updated = append(out.updated, ip)
		case asked && bothErr == nil:
			out.missed = append(out.missed, contract.AgentMissed{Node: ip,
				Error: "trusts the old CA and the new one still, until the next deploy: " + err.Error()})
		default:
			out.missed = append(out.missed, contract.AgentMissed{Node: ip,
				Error: "did not take the new CA (it reaches the engine again after the next deploy's agent step): " + err.Error()})
		}
	}
	return out, nil
}

// promote makes the pending CA the agents' on disk: the rename is the
// moment a restart keeps the new CA instead of dropping it.
func (r *caRotation) promote(certPEM string) error {
	dir := r.certs.dataDir
	if err := os.Rename(filepath.Join(dir, agentsCAPendingFile), filepath.Join(dir, AgentsCAKeyFile)); err != nil {
		return fmt.Errorf("keep the agents' new CA: %w", err)
	}
	// Observers pin this one. The new CA is the agents' already: should
	// this write fail, a start writes it again from the key file.
	if err := writeAtomic(filepath.Join(dir, AgentsCAFile), []byte(certPEM), 0o644); err != nil {
		r.log.Warn("the agents' new CA certificate, for observers: the next start writes it", "err", err)
	}
	return nil
}

// tell sends every agent of ips the trust command for bundle, some at
// once, and returns each one's outcome (nil: it trusts bundle now).
func (r *caRotation) tell(ctx context.Context, ips []string, bundle string) map[string]error {
	var mu sync.Mutex
	out := make(map[string]error, len(ips))
	sem := make(chan struct{}, trustFanout)
	var wg sync.WaitGroup
	for _, ip := range ips {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := sendTrust(ctx, r.nc, ip, r.password(ip), bundle)
			if err != nil {
				r.log.Warn("an agent did not take the CA certificates sent", "node", ip, "err", err)
			}
			mu.Lock()
			out[ip] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// sendTrust asks node ip's agent to trust bundle, sealed with the key its
// password derives, and waits for its answer.
func sendTrust(ctx context.Context, nc *nats.Conn, ip, password, bundle string) error {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	body, err := json.Marshal(nodeexec.Trust{V: contract.Version, Node: ip, CA: bundle, Time: time.Now().UnixMilli(), Nonce: hex.EncodeToString(nonce)})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, trustTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject.Node(ip, subject.VerbTrust), nodeexec.Seal(nodeexec.TrustKey(password, ip), body))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return errors.New("no agent answers: not connected, or one older than the trust command")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("the agent did not answer within %s", trustTimeout)
	case err != nil:
		return err
	}
	var rep nodeexec.TrustReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("the agent's answer: %w", err)
	}
	if rep.Error != "" {
		return fmt.Errorf("the agent refused: %s", contract.Clip(rep.Error))
	}
	return nil
}

// agentsToTrust lists the nodes whose agent a rotation tells: those
// connected to srv now and, where the engine installs agents, the
// config's (one not connected is named among those missed).
func agentsToTrust(srv *bus.Server, res *bus.Resources, installs bool, log *slog.Logger) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		ips, err := srv.ConnectedAgents()
		if err != nil {
			return nil, err
		}
		if !installs {
			return ips, nil
		}
		cfg, err := bus.LoadConfig(ctx, res.Config)
		switch {
		case err == nil:
			ips = union(ips, cfg.Nodes())
		case !bus.IsNotFound(err):
			log.Warn("the config's nodes, for the agents' CA rotation: only the connected agents are told", "err", err)
		}
		return ips, nil
	}
}

// union is a and b, each once, sorted.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

func countOK(m map[string]error) int {
	n := 0
	for _, err := range m {
		if err == nil {
			n++
		}
	}
	return n
}
