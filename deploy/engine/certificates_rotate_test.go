package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// servedCert does a TLS handshake with the server at addr, trusting caPEM
// alone, as a client of name host, and returns what the server presented.
// nats: the server speaks first (INFO), as NATS does.
func servedCert(t *testing.T, addr, host, caPEM string, nats bool) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("no CA to trust")
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if nats {
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake with %s trusting the CA alone: %v", addr, err)
	}
	return tc.ConnectionState().PeerCertificates[0]
}

// The agents' listener, rotated through its command on the bus, presents
// a new certificate from the next handshake on the live NATS listener,
// issued by the same CA (which the handshake alone trusts) for the same
// names; the answer names the one now served and the one it replaced.
func TestAgentListenerRotates(t *testing.T) {
	certs := autoCerts(t)
	b := bustest.Start(t, bus.ServerOptions{Host: "127.0.0.1", Port: -1, TLS: certs.Config()})
	addr := b.Srv.Addr().String()
	before := servedCert(t, addr, "127.0.0.1", certs.CAPEM(), true)
	secret := []byte("rotation-secret")
	b.Srv.SetAgentSecret(secret)
	const ip = "10.0.0.9"
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certs.CAPEM()))
	agent := func() *nats.Conn {
		t.Helper()
		nc, err := nats.Connect("nats://"+addr, nats.UserInfo(bus.AgentUser(ip), bus.AgentPassword(secret, ip)), nats.Timeout(2*time.Second),
			nats.MaxReconnects(0), nats.Secure(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
		if err != nil {
			t.Fatalf("an agent pinning the CA: %v", err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	heard := func(nc *nats.Conn) {
		t.Helper()
		sub, err := b.NC.SubscribeSync(subject.Node(ip, "heartbeat"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := b.NC.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(subject.Node(ip, "heartbeat"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(3 * time.Second); err != nil {
			t.Fatalf("the engine did not hear the agent: %v", err)
		}
	}
	early := agent()
	heard(early)

	r := &certRotation{log: quiet(), holders: map[string]rotator{contract.CertAgentsListener: reissue(certs.rotate)}}
	svc := kit.NewService(quiet(), "certificates")
	t.Cleanup(func() { svc.Stop(time.Second) })
	if err := svc.Serve(b.NC, "test", r.endpoints()); err != nil {
		t.Fatal(err)
	}
	rep, err := kit.Request(context.Background(), b.NC, subject.CertificateRotate(contract.CertAgentsListener),
		contract.CertificateRotate{V: 1, Name: contract.CertAgentsListener, Actor: "admin"})
	if err != nil || rep.Code != http.StatusAccepted {
		t.Fatalf("rotate: %v %d %s", err, rep.Code, rep.Body)
	}
	var got contract.CertificateRotated
	if err := json.Unmarshal(rep.Body, &got); err != nil {
		t.Fatal(err)
	}

	after := servedCert(t, addr, "127.0.0.1", certs.CAPEM(), true)
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("the listener presents the same certificate after the rotation")
	}
	if got.Certificate.Serial != after.SerialNumber.Text(16) || got.PreviousSerial != before.SerialNumber.Text(16) {
		t.Fatalf("answer %+v; served %x, before %x", got, after.SerialNumber, before.SerialNumber)
	}
	// The agent connected before is still connected, on the same
	// connection; a new one gets in under the new certificate.
	if !early.IsConnected() || early.Stats().Reconnects != 0 {
		t.Fatalf("the agent connected before the rotation: connected %v, reconnects %d", early.IsConnected(), early.Stats().Reconnects)
	}
	heard(early)
	heard(agent())
	if strings.Join(after.DNSNames, ",") != strings.Join(before.DNSNames, ",") || len(after.IPAddresses) != len(before.IPAddresses) ||
		after.Issuer.String() != before.Issuer.String() {
		t.Fatalf("names or issuer changed: %v %v %s, before %v %v %s", after.DNSNames, after.IPAddresses, after.Issuer,
			before.DNSNames, before.IPAddresses, before.Issuer)
	}
	select {
	case <-certs.issued:
	default:
		t.Fatal("the rotation was not signalled to the summary's watch")
	}
}

// A pair given by --tls-cert is not the engine's to rotate: its holder
// answers 409 and serves it still.
func TestGivenCertificateIsNotRotated(t *testing.T) {
	certFile, keyFile := caExpiringAt(t, time.Now().AddDate(1, 0, 0))
	o := Options{DataDir: t.TempDir(), TLSCert: certFile, TLSKey: keyFile}
	a, err := loadTLS(o)
	if err != nil {
		t.Fatal(err)
	}
	b := bustest.Start(t, bus.ServerOptions{})
	r := &certRotation{log: quiet(), holders: map[string]rotator{contract.CertAPI: reissue(a.rotate)}}
	svc := kit.NewService(quiet(), "certificates")
	t.Cleanup(func() { svc.Stop(time.Second) })
	if err := svc.Serve(b.NC, "test", r.endpoints()); err != nil {
		t.Fatal(err)
	}
	before := a.current()
	rep, err := kit.Request(context.Background(), b.NC, subject.CertificateRotate(contract.CertAPI), contract.CertificateRotate{V: 1, Name: "api"})
	if err != nil || rep.Code != http.StatusConflict || !strings.Contains(string(rep.Body), "--tls-cert") {
		t.Fatalf("rotate a given pair: %v %d %s", err, rep.Code, rep.Body)
	}
	if a.current() != before {
		t.Fatal("the given pair was replaced")
	}
}

// With --tls auto, POST /certificates/api/rotate on a running engine
// makes https present a new certificate from the next connection, issued
// by the auto pair that clients pin (the handshake trusts it alone), and
// listed at once; a restart serves the same one again.
func TestAPICertificateRotates(t *testing.T) {
	dir := t.TempDir()
	addr, stop := engineStop(t, Options{DataDir: dir, TLS: TLSAuto, NoAgents: true})
	caPEM, err := os.ReadFile(filepath.Join(dir, AutoCertFile))
	if err != nil {
		t.Fatal(err)
	}
	before := servedCert(t, addr, "127.0.0.1", string(caPEM), false)
	if !before.IsCA {
		t.Fatalf("before any rotation https presents %s, want the auto pair itself", before.Subject)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+"/deployment-engine"+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return resp.StatusCode, b.String()
	}
	// The summary is written at start, asynchronously.
	listed := func(serial string) bool {
		code, body := call("GET", "/certificates")
		var certs contract.Certificates
		_ = json.Unmarshal([]byte(body), &certs)
		for _, c := range certs.Certificates {
			if c.Name == contract.CertAPI {
				return code == 200 && c.Serial == serial
			}
		}
		return false
	}
	waitFor(t, "the API's certificate listed", func() bool { return listed(before.SerialNumber.Text(16)) })

	code, body := call("POST", "/certificates/api/rotate")
	if code != http.StatusAccepted {
		t.Fatalf("rotate: %d %s", code, body)
	}
	after := servedCert(t, addr, "127.0.0.1", string(caPEM), false)
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 || after.IsCA || after.CheckSignatureFrom(before) != nil {
		t.Fatalf("after the rotation https presents %s (serial %x, CA %v), want a new certificate issued by the auto pair", after.Subject, after.SerialNumber, after.IsCA)
	}
	if !strings.Contains(body, fmt.Sprintf(`"serial":"%s"`, after.SerialNumber.Text(16))) {
		t.Fatalf("the answer %s does not name the certificate served (%x)", body, after.SerialNumber)
	}
	waitFor(t, "the new certificate listed", func() bool { return listed(after.SerialNumber.Text(16)) })
	// No agents, no agents' CA: nothing to rotate.
	if code, body := call("POST", "/certificates/agents-ca/rotate"); code != http.StatusConflict {
		t.Fatalf("rotate the agents' CA of an engine without agents: %d %s", code, body)
	}
	if fi, err := os.Stat(filepath.Join(dir, RotatedKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the rotated key's file: %v %v", err, fi)
	}
	stop()

	addr = engineWith(t, Options{DataDir: dir, TLS: TLSAuto, NoAgents: true})
	if again := servedCert(t, addr, "localhost", string(caPEM), false); again.SerialNumber.Cmp(after.SerialNumber) != 0 {
		t.Fatalf("after a restart https presents serial %x, want the rotated %x", again.SerialNumber, after.SerialNumber)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10 s", what)
}
