package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

func TestAgentsStopAtTheirNode(t *testing.T) {
	ctx := context.Background()
	port := bustest.FreePort(t)
	s, err := bus.StartServer(ctx, bus.ServerOptions{DataDir: t.TempDir(), Host: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	secret := []byte("agent-secret")
	s.SetAgentSecret(secret)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)

	engine, err := s.Connect("engine")
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("anonymous client got in")
	}
	if nc, err := nats.Connect(url, nats.UserInfo(bus.AgentUser("10.0.0.5"), "wrong")); err == nil {
		nc.Close()
		t.Fatal("agent with a wrong password got in")
	}
	if nc, err := nats.Connect(url, nats.UserInfo(bus.EngineUser, "guess")); err == nil {
		nc.Close()
		t.Fatal("a guessed engine password got in")
	}

	errs := make(chan error, 10)
	agent, err := nats.Connect(url, nats.UserInfo(bus.AgentUser("10.0.0.5"), bus.AgentPassword(secret, "10.0.0.5")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("agent with its password: %v", err)
	}
	defer agent.Close()

	own, _ := engine.SubscribeSync(subject.AllHeartbeats)
	_ = engine.Flush() // the subscription reaches the server before the agent publishes
	if err := agent.Publish(subject.Node("10.0.0.5", subject.VerbHeartbeat), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := agent.Publish(subject.Node("10.0.0.6", subject.VerbHeartbeat), []byte("spoof")); err != nil {
		t.Fatal(err)
	}
	_ = agent.Flush()
	m, err := own.NextMsg(2 * time.Second)
	if err != nil || m.Subject != subject.Node("10.0.0.5", subject.VerbHeartbeat) {
		t.Fatalf("own heartbeat: %v %v", m, err)
	}
	if m, err := own.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("agent published for another node: %s", m.Subject)
	}
	if _, err := agent.SubscribeSync(subject.AllEvents); err != nil {
		t.Fatal(err)
	}
	_ = agent.Flush()
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("no permission error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("agent subscribed to the engine's events without a permission error")
	}

	// An agent answers requests sent to its node.
	sub, _ := agent.Subscribe(subject.Node("10.0.0.5", subject.VerbControl), func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	defer sub.Unsubscribe()
	_ = agent.Flush()
	rep, err := engine.Request(subject.Node("10.0.0.5", subject.VerbControl), nil, 2*time.Second)
	if err != nil || string(rep.Data) != "ok" {
		t.Fatalf("request to agent: %v %v", rep, err)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		s, err := bus.StartServer(ctx, bus.ServerOptions{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := s.Connect("test")
		if err != nil {
			t.Fatal(err)
		}
		res, err := bus.Declare(ctx, nc)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := res.Config.Put(ctx, bus.KeyConfig, []byte("v1")); err != nil {
				t.Fatal(err)
			}
		} else {
			e, err := res.Config.Get(ctx, bus.KeyConfig)
			if err != nil || string(e.Value()) != "v1" {
				t.Fatalf("after restart: %v %v", e, err)
			}
		}
		nc.Close()
		s.Stop()
	}
}

func ExampleAgentUser() {
	fmt.Println(bus.AgentUser("10.0.0.5"))
	// Output: node-10-0-0-5
}

// With TLS, the listener takes TLS clients that trust its certificate and
// no one else; in-process connections need none.
func TestServerTLS(t *testing.T) {
	certPEM, keyPEM := selfSigned(t)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	port := bustest.FreePort(t)
	s, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: t.TempDir(), Host: "127.0.0.1", Port: port,
		TLS: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	s.SetObserverPassword("obs-pw")
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	if nc, err := nats.Connect(url, nats.UserInfo(bus.ObserverUser, "obs-pw"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without TLS got in")
	}
	if nc, err := nats.Connect(url, nats.UserInfo(bus.ObserverUser, "obs-pw"), nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client that does not trust the engine's certificate got in")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	nc, err := nats.Connect(url, nats.UserInfo(bus.ObserverUser, "obs-pw"), nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatalf("a client pinning the certificate: %v", err)
	}
	nc.Close()
	in, err := s.Connect("in-process")
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
}

func selfSigned(t *testing.T) ([]byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
