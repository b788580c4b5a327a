package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

// testCA is a CA that issues server certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue is a server certificate for ip.
func (ca *testCA) issue(t *testing.T, ip string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP(ip)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// The engine's trust command: the agent takes a CA bundle only when its
// engine sealed it for this node, fresh and once, and only CA
// certificates; it keeps the bundle in its config file without
// restarting, and verifies its next handshake with it on the connection
// it has. A listener whose certificate the trusted CAs did not issue, or
// issued for another name, is refused at the handshake.
func TestTrustCommand(t *testing.T) {
	const ip = "10.0.0.7"
	oldCA, newCA, wrongCA := newTestCA(t, "old"), newTestCA(t, "new"), newTestCA(t, "wrong")
	var served atomic.Pointer[tls.Certificate]
	served.Store(oldCA.issue(t, "127.0.0.1"))
	b := bustest.Start(t, bus.ServerOptions{Host: "127.0.0.1", Port: -1, TLS: &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return served.Load(), nil }}})
	secret := []byte("trust-secret")
	b.Srv.SetAgentSecret(secret)
	pass := bus.AgentPassword(secret, ip)

	dir := t.TempDir()
	passFile, confFile := filepath.Join(dir, "agent.pass"), filepath.Join(dir, "agent.json")
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := contract.AgentConfig{V: 1, IP: ip, NATS: "nats://" + b.Srv.Addr().String(), User: bus.AgentUser(ip), PasswordFile: passFile,
		CA: oldCA.pem, Listen: "127.0.0.1:0", IntervalS: 1, Components: []contract.AgentComponent{}}
	conf, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(confFile, append(conf, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}

	beats, err := b.NC.SubscribeSync(subject.Node(ip, subject.VerbHeartbeat))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MonitURL: "http://127.0.0.1:1/",
			MonitCmd: []string{"false"}, StateFile: filepath.Join(dir, "offsets.json"), ConfigFile: confFile, MarkDir: dir})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	heard := func(within time.Duration) bool {
		t.Helper()
		for end := time.Now().Add(within); time.Now().Before(end); {
			if _, err := beats.NextMsg(time.Until(end)); err == nil {
				return true
			}
		}
		return false
	}
	// drain forgets the heartbeats sent before now.
	drain := func() {
		for {
			if _, err := beats.NextMsg(10 * time.Millisecond); err != nil {
				return
			}
		}
	}
	if !heard(10 * time.Second) {
		t.Fatal("no heartbeat from the agent")
	}

	send := func(key []byte, tr nodeexec.Trust) nodeexec.TrustReply {
		t.Helper()
		body, _ := json.Marshal(tr)
		m, err := b.NC.Request(subject.Node(ip, subject.VerbTrust), nodeexec.Seal(key, body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep nodeexec.TrustReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	nonces := 0
	trust := func(ca string) nodeexec.Trust {
		nonces++
		return nodeexec.Trust{V: 1, Node: ip, CA: ca, Time: time.Now().UnixMilli(), Nonce: strings.Repeat("a", 15) + string(rune('a'+nonces))}
	}
	key := nodeexec.TrustKey(pass, ip)
	both := oldCA.pem + newCA.pem
	replayed := trust(both)
	keyPEM := "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
	for _, tc := range []struct {
		name string
		key  []byte
		tr   nodeexec.Trust
		says string
	}{
		{"sealed with another key", nodeexec.TrustKey("another-password", ip), trust(both), "not signed"},
		{"sealed with the exec key", nodeexec.Key(pass, ip), trust(both), "not signed"},
		{"for another node", key, func() nodeexec.Trust { tr := trust(both); tr.Node = "10.0.0.8"; return tr }(), "for node"},
		{"stale", key, func() nodeexec.Trust {
			tr := trust(both)
			tr.Time -= int64(2 * time.Minute / time.Millisecond)
			return tr
		}(), "stale"},
		{"no PEM", key, trust("not a certificate"), "no PEM certificate"},
		{"a key in the bundle", key, trust(oldCA.pem + keyPEM), "PRIVATE KEY"},
		{"the old CA and the new", key, replayed, ""},
		{"replayed", key, replayed, "replay"},
	} {
		rep := send(tc.key, tc.tr)
		if tc.says == "" && rep.Error != "" || tc.says != "" && !strings.Contains(rep.Error, tc.says) {
			t.Fatalf("%s: answered %q, want an error saying %q", tc.name, rep.Error, tc.says)
		}
	}
	got, err := LoadConfig(confFile)
	if err != nil || got.CA != both || got.IP != ip || got.IntervalS != 1 {
		t.Fatalf("the config after the trust command: %v, ca %q", err, got.CA)
	}
	if fi, err := os.Stat(confFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the config's mode: %v %v", err, fi)
	}

	// Its own write does not restart the agent (it checks every second).
	time.Sleep(2500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the agent stopped after its trust command: %v", err)
	default:
	}
	drain()
	if !heard(3 * time.Second) {
		t.Fatal("no heartbeat after the trust command")
	}

	// The listener presents a certificate of the new CA: the connection
	// the agent has carries on, and a new one verifies with the bundle.
	served.Store(newCA.issue(t, "127.0.0.1"))
	reconnect := func(want bool) {
		t.Helper()
		if n, err := b.Srv.DisconnectAgent(ip); err != nil || n == 0 {
			t.Fatalf("disconnect the agent: %d %v", n, err)
		}
		drain()
		if got := heard(4 * time.Second); got != want {
			t.Fatalf("the agent reconnected: %v, want %v", got, want)
		}
	}
	reconnect(true)
	if rep := send(key, trust(newCA.pem)); rep.Error != "" {
		t.Fatalf("the new CA alone: %s", rep.Error)
	}
	if got, _ := LoadConfig(confFile); got.CA != newCA.pem {
		t.Fatalf("the config holds %q, want the new CA alone", got.CA)
	}
	reconnect(true)

	// Refused at the handshake: a CA the agent does not trust (the old
	// one, now dropped, or another), or a trusted CA's certificate for
	// another name.
	for _, c := range []*tls.Certificate{oldCA.issue(t, "127.0.0.1"), wrongCA.issue(t, "127.0.0.1"), newCA.issue(t, "10.9.9.9")} {
		served.Store(c)
		reconnect(false)
		served.Store(newCA.issue(t, "127.0.0.1"))
		if !heard(5 * time.Second) {
			t.Fatal("the agent did not reach the listener again once it presented a certificate it trusts")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the agent stopped: %v", err)
	default:
	}
}
