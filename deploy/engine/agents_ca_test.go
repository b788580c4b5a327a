package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/monitor/agent"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// testAgent is a real node agent run in the test, with its config file.
type testAgent struct {
	ip, conf string
	done     chan error
}

// runAgent runs node ip's agent against the engine's NATS at natsAddr,
// trusting caPEM, reporting every second; it stops when the test ends.
func runAgent(t *testing.T, dataDir, natsAddr, ip, caPEM string) *testAgent {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(dataDir, "agent-secret"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pass, conf := filepath.Join(dir, "agent.pass"), filepath.Join(dir, "agent.json")
	if err := os.WriteFile(pass, []byte(bus.AgentPassword([]byte(strings.TrimSpace(string(secret))), ip)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := contract.AgentConfig{V: 1, IP: ip, NATS: "nats://" + natsAddr, User: bus.AgentUser(ip), PasswordFile: pass, CA: caPEM,
		Listen: "127.0.0.1:0", IntervalS: 1, Components: []contract.AgentComponent{}}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(conf, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &testAgent{ip: ip, conf: conf, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		a.done <- agent.Run(ctx, cfg, agent.Options{Logger: quiet(), MonitURL: "http://127.0.0.1:1/", MonitCmd: []string{"false"},
			StateFile: filepath.Join(dir, "offsets.json"), ConfigFile: conf, MarkDir: dir})
	}()
	t.Cleanup(func() {
		cancel()
		<-a.done
	})
	return a
}

// running fails the test when the agent stopped (a restart included).
func (a *testAgent) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-a.done:
		t.Fatalf("agent %s stopped: %v", a.ip, err)
	default:
	}
}

// beatWatch hears node ip's heartbeats as a second client of its agent's
// user (which may subscribe to its own node's subjects), trusting the
// engine's CAs of the moment, and keeps the longest silence.
type beatWatch struct {
	mu      sync.Mutex
	last    time.Time
	longest time.Duration
}

func watchBeats(t *testing.T, dataDir, natsAddr, ip string) *beatWatch {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(dataDir, "agent-secret"))
	if err != nil {
		t.Fatal(err)
	}
	roots := func() (*x509.CertPool, error) {
		pool := x509.NewCertPool()
		for _, f := range []string{AutoCertFile, AgentsCAFile} {
			if b, err := os.ReadFile(filepath.Join(dataDir, f)); err == nil {
				pool.AppendCertsFromPEM(b)
			}
		}
		return pool, nil
	}
	nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo(bus.AgentUser(ip), bus.AgentPassword([]byte(strings.TrimSpace(string(secret))), ip)),
		nats.ClientTLSConfig(nil, roots), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := &beatWatch{}
	if _, err := nc.Subscribe(subject.Node(ip, subject.VerbHeartbeat), func(*nats.Msg) {
		w.mu.Lock()
		defer w.mu.Unlock()
		now := time.Now()
		if !w.last.IsZero() {
			w.longest = max(w.longest, now.Sub(w.last))
		}
		w.last = now
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// since is the time of the last heartbeat, and the longest silence
// between two until now (the one running now included).
func (w *beatWatch) since() (time.Time, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last.IsZero() {
		return w.last, 0
	}
	return w.last, max(w.longest, time.Since(w.last))
}

// reset forgets the silences so far.
func (w *beatWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last, w.longest = time.Time{}, 0
}

// The agents' CA rotates on a running engine with real agents connected:
// they keep reporting (no silence over 10 s) without restarting, each
// trusts the new CA alone afterwards (its config file too), the listener
// presents a certificate of the new CA and refuses a client that trusts
// the old one, the API's certificate and pin do not change, and a restart
// of the engine over the same data dir keeps the new CA — which the
// agents, reconnecting, verify.
func TestAgentsCARotates(t *testing.T) {
	dir := t.TempDir()
	// The auto pair the engine made, 20 days from its end: it is warned
	// of; the agents' own CA the rotation makes is not.
	seedAutoPair(t, dir, time.Now().Add(20*24*time.Hour))
	natsAddr := "127.0.0.1:" + freePort(t)
	o := Options{DataDir: dir, TLS: TLSAuto, NATSListen: natsAddr}
	addr, stop := engineStop(t, o)
	autoPEM, err := os.ReadFile(filepath.Join(dir, AutoCertFile))
	if err != nil {
		t.Fatal(err)
	}
	apiBefore := servedCert(t, addr, "127.0.0.1", string(autoPEM), false)
	listenerBefore := servedCert(t, natsAddr, "127.0.0.1", string(autoPEM), true)

	ips := []string{"10.0.0.21", "10.0.0.22"}
	var agents []*testAgent
	var watches []*beatWatch
	for _, ip := range ips {
		watches = append(watches, watchBeats(t, dir, natsAddr, ip))
		agents = append(agents, runAgent(t, dir, natsAddr, ip, string(autoPEM)))
	}
	reporting := func(what string) {
		t.Helper()
		for i, w := range watches {
			waitFor(t, what+": agent "+ips[i]+" reports", func() bool {
				last, _ := w.since()
				return time.Since(last) < 2*time.Second
			})
		}
	}
	reporting("before the rotation")
	for _, w := range watches {
		w.reset()
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(autoPEM)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path string, body ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+"/deployment-engine"+path, strings.NewReader(strings.Join(body, "")))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(bufio.NewReader(resp.Body))
		return resp.StatusCode, b
	}
	warned := func() int {
		_, body := call("GET", "/logs/local.log")
		return strings.Count(string(body), "certificate agents-ca (CN=test ca")
	}
	waitFor(t, "the agents' CA with 20 days left warned of", func() bool { return warned() > 0 })
	if _, log := call("GET", "/logs/local.log"); !strings.Contains(string(log), "fewer than 30") {
		t.Fatalf("the warning: %s", log)
	}

	// A node of the config whose agent does not run misses the new CA,
	// and is named.
	down := "10.0.0.23"
	cfg := `{"components": {"web": ["` + strings.Join(append(slices.Clone(ips), down), `", "`) + `"]}, "properties": {"catalog": "starter", ` +
		`"domain": "t.local", "home": "127.0.0.1", "root": "pw", "checkdisk": 0, "adduser": 0}}`
	if code, body := call("POST", "/config?check=0", cfg); code != http.StatusCreated {
		t.Fatalf("config: %d %s", code, body)
	}
	code, body := call("POST", "/certificates/agents-ca/rotate")
	if code != http.StatusAccepted {
		t.Fatalf("rotate the agents' CA: %d %s", code, body)
	}
	var got contract.CertificateRotated
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(autoPEM)
	auto, _ := x509.ParseCertificate(block.Bytes)
	if got.Certificate.Name != contract.CertAgentsCA || !got.Certificate.IsCA || got.PreviousSerial != auto.SerialNumber.Text(16) ||
		got.Certificate.Serial == got.PreviousSerial || !slices.Equal(got.AgentsUpdated, ips) || len(got.AgentsMissed) != 1 ||
		got.AgentsMissed[0].Node != down || !strings.Contains(got.AgentsMissed[0].Error, "next deploy") {
		t.Fatalf("the answer: %s", body)
	}

	// The agents' own CA is on disk, its key its owner's alone; nothing
	// is pending.
	caPEM, err := os.ReadFile(filepath.Join(dir, AgentsCAFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, AgentsCAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the agents' CA key file: %v %v", err, fi)
	}
	if _, err := os.Stat(filepath.Join(dir, agentsCAPendingFile)); !os.IsNotExist(err) {
		t.Fatalf("a pending CA is left: %v", err)
	}
	if strings.Contains(string(caPEM), "PRIVATE KEY") {
		t.Fatal("the agents' CA certificate file holds a key")
	}
	for _, a := range agents {
		cfg, err := agent.LoadConfig(a.conf)
		if err != nil || cfg.CA != string(caPEM) {
			t.Fatalf("agent %s's config trusts %q (%v), want the new CA alone", a.ip, cfg.CA, err)
		}
	}

	// The listener presents a certificate of the new CA, for the same
	// names, and a client trusting the old CA alone is refused.
	listener := servedCert(t, natsAddr, "127.0.0.1", string(caPEM), true)
	if listener.Issuer.String() == listenerBefore.Issuer.String() || strings.Join(listener.DNSNames, ",") != strings.Join(listenerBefore.DNSNames, ",") {
		t.Fatalf("the listener presents %s issued by %s, before %s by %s", listener.Subject, listener.Issuer, listenerBefore.Subject, listenerBefore.Issuer)
	}
	if err := handshake(natsAddr, "127.0.0.1", string(autoPEM)); err == nil {
		t.Fatal("a client trusting the old CA alone was let in after the rotation")
	}
	// The API's certificate and what its clients pin do not change.
	if api := servedCert(t, addr, "127.0.0.1", string(autoPEM), false); api.SerialNumber.Cmp(apiBefore.SerialNumber) != 0 {
		t.Fatalf("the API presents serial %x after the rotation, %x before", api.SerialNumber, apiBefore.SerialNumber)
	}
	listed := func(name string) string {
		code, body := call("GET", "/certificates")
		var certs contract.Certificates
		_ = json.Unmarshal(body, &certs)
		for _, c := range certs.Certificates {
			if code == http.StatusOK && c.Name == name {
				return c.Serial
			}
		}
		return ""
	}
	waitFor(t, "the new agents' CA listed", func() bool { return listed(contract.CertAgentsCA) == got.Certificate.Serial })
	if left := time.Until(got.Certificate.NotAfter); left < 365*24*time.Hour {
		t.Fatalf("the new agents' CA ends in %s", left)
	}
	if s := listed(contract.CertAPI); s != apiBefore.SerialNumber.Text(16) {
		t.Fatalf("the API's certificate listed is %s, want %x as before", s, apiBefore.SerialNumber)
	}

	// The agents kept reporting, over the connections they had, and none
	// restarted (each checks its config every second).
	time.Sleep(2 * time.Second)
	if n := warned(); n != 1 {
		t.Errorf("the agents' CA warned of %d times; once, before the rotation, and never the new one", n)
	}
	for i, w := range watches {
		_, longest := w.since()
		t.Logf("agent %s: longest silence through the rotation %s", ips[i], longest)
		if longest > 10*time.Second {
			t.Fatalf("agent %s was silent for %s during the rotation", ips[i], longest)
		}
		agents[i].running(t)
	}

	// A restart drops every connection: the agents reach the engine again
	// verifying its listener with the new CA alone, which the restarted
	// engine still has; the API keeps its pin.
	stop()
	for _, w := range watches {
		w.reset()
	}
	addr = engineWith(t, o)
	reporting("after a restart")
	if api := servedCert(t, addr, "127.0.0.1", string(autoPEM), false); api.SerialNumber.Cmp(apiBefore.SerialNumber) != 0 {
		t.Fatalf("the API presents serial %x after a restart, %x before", api.SerialNumber, apiBefore.SerialNumber)
	}
	nb, _ := pem.Decode(caPEM)
	newCA, err := x509.ParseCertificate(nb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if c := servedCert(t, natsAddr, "127.0.0.1", string(caPEM), true); c.CheckSignatureFrom(newCA) != nil {
		t.Fatalf("after a restart the listener presents %s issued by %s", c.Subject, c.Issuer)
	}
	waitFor(t, "the new agents' CA listed after a restart", func() bool { return listed(contract.CertAgentsCA) == got.Certificate.Serial })
	for _, a := range agents {
		a.running(t)
	}
}

// A rotation that stopped before the new CA became the agents' (its
// pending file left) is undone at the next start: the listener's CA is
// the one agents had. Once a rotation finished, a start loads the
// agents' own CA, and writes its certificate again for observers.
func TestAgentsCAAtStart(t *testing.T) {
	start := func(dir string) *agentCerts {
		t.Helper()
		c, err := natsCerts(Options{DataDir: dir, Logger: quiet()}, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dir := t.TempDir()
	first := start(dir)
	if err := os.WriteFile(filepath.Join(dir, agentsCAPendingFile), []byte("half a rotation"), 0o600); err != nil {
		t.Fatal(err)
	}
	again := start(dir)
	if again.CAPEM() != first.CAPEM() {
		t.Fatal("a start with a pending CA changed the agents' CA")
	}
	if _, err := os.Stat(filepath.Join(dir, agentsCAPendingFile)); !os.IsNotExist(err) {
		t.Fatalf("the pending CA is left: %v", err)
	}

	ca, _, caPEM, pair, err := makeAgentsCA()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, AgentsCAKeyFile), pair, 0o600); err != nil {
		t.Fatal(err)
	}
	rotated := start(dir)
	if rotated.CAPEM() != caPEM || rotated.Trust() != caPEM || rotated.cert.Leaf.CheckSignatureFrom(ca) != nil {
		t.Fatal("a start does not take the agents' own CA")
	}
	if b, err := os.ReadFile(filepath.Join(dir, AgentsCAFile)); err != nil || string(b) != caPEM {
		t.Fatalf("the agents' CA certificate for observers: %v %q", err, b)
	}
	if err := os.Chmod(filepath.Join(dir, AgentsCAKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natsCerts(Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)}, ""); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key file open to others: %v", err)
	}
}

// One rotation of the agents' CA at a time; a CA given by --tls-cert is
// not the engine's to rotate.
func TestAgentsCARotationRefused(t *testing.T) {
	none := func(context.Context) ([]string, error) { return nil, nil }
	busy := &caRotation{certs: autoCerts(t), agents: none, log: quiet()}
	busy.mu.Lock()
	defer busy.mu.Unlock()
	given := autoCerts(t)
	given.given = true
	for _, tc := range []struct {
		name string
		r    *caRotation
		want error
	}{
		{"under way", busy, errRotating},
		{"given", &caRotation{certs: given, agents: none, log: quiet()}, errGiven},
		{"no data dir", &caRotation{certs: autoCerts(t), agents: none, log: quiet()}, errGiven},
	} {
		if _, err := tc.r.rotate(context.Background()); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// While a deployment runs (its agent steps carry the CA of before),
	// and when whether one runs is not known, nothing is made.
	certs := autoCerts(t)
	certs.dataDir = t.TempDir()
	for _, tc := range []struct {
		name      string
		deploying func(context.Context) (string, error)
		says      string
	}{
		{"a deployment runs", func(context.Context) (string, error) { return "d-1", nil }, "deployment d-1 is running"},
		{"the planner fails", func(context.Context) (string, error) { return "", errors.New("planner down") }, "planner down"},
	} {
		r := &caRotation{certs: certs, agents: none, deploying: tc.deploying, log: quiet()}
		if _, err := r.rotate(context.Background()); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.says)
		}
		if _, err := os.Stat(filepath.Join(certs.dataDir, agentsCAPendingFile)); !os.IsNotExist(err) {
			t.Errorf("%s: a pending CA was made: %v", tc.name, err)
		}
	}
}

// seedAutoPair writes, as --tls auto's pair in dir, a CA that ends at
// notAfter (CN "test ca", for 127.0.0.1).
func seedAutoPair(t *testing.T, dir string, notAfter time.Time) {
	t.Helper()
	certFile, keyFile := caExpiringAt(t, notAfter)
	for from, to := range map[string]string{certFile: AutoCertFile, keyFile: AutoKeyFile} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
