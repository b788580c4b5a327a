package engine

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// autoCerts makes the engine's auto pair in a temp dir and the agents'
// certificates from it.
func autoCerts(t *testing.T) *agentCerts {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, AutoCertFile), filepath.Join(dir, AutoKeyFile)
	if err := ensureSelfSigned(cert, key, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	c, err := newAgentCerts(cert, key, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake speaks to the NATS listener at addr as a client does: it
// reads the server's INFO, then does the TLS handshake trusting caPEM
// alone, for server name ip.
func handshake(addr, ip, caPEM string) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	info, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"tls_required":true`) {
		return fmt.Errorf("the server does not require TLS: %s", info)
	}
	return tls.Client(c, &tls.Config{RootCAs: pool, ServerName: ip, MinVersion: tls.VersionTLS12}).Handshake()
}

// The door lets an agent in at home over TLS only, with its own
// credentials only; at a new home it listens there without a restart,
// with a certificate issued again to cover the new address under the same
// CA the agents pin.
func TestAgentDoorFollowsHome(t *testing.T) {
	certs := autoCerts(t)
	b := bustest.Start(t, bus.ServerOptions{Host: "127.0.0.1", Port: -1, TLS: certs.Config()})
	secret := []byte("door-secret")
	b.Srv.SetAgentSecret(secret)
	port := bustest.FreePort(t)
	door := newAgentDoor(certs, b.Srv.Addr().String(), port, quiet())
	t.Cleanup(door.Close)

	const ip = "10.0.0.5"
	url := func(home string) string { return "nats://" + net.JoinHostPort(home, strconv.Itoa(port)) }
	connect := func(home, pass string, opts ...nats.Option) (*nats.Conn, error) {
		return nats.Connect(url(home), append([]nats.Option{nats.UserInfo(bus.AgentUser(ip), pass), nats.Timeout(2 * time.Second), nats.MaxReconnects(0)}, opts...)...)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(certs.CAPEM())) {
		t.Fatal("the CA agents pin is no PEM certificate")
	}
	pinned := nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})

	if err := door.Listen("127.0.0.1"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	nc, err := connect("127.0.0.1", bus.AgentPassword(secret, ip), pinned)
	if err != nil {
		t.Fatalf("agent through the door: %v", err)
	}
	defer nc.Close()
	// Its permissions are the agent's: its own node's subjects only.
	sub, err := b.NC.SubscribeSync(subject.NodeAll(ip))
	if err != nil {
		t.Fatal(err)
	}
	// The server must hold the subscription before the agent publishes:
	// SUB is buffered like any other protocol line.
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subject.Node(ip, "heartbeat"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(3 * time.Second); err != nil {
		t.Fatalf("the engine did not get the agent's message: %v", err)
	}
	if c, err := connect("127.0.0.1", bus.AgentPassword(secret, ip)); err == nil {
		c.Close()
		t.Fatal("an agent got in without TLS")
	}
	if c, err := connect("127.0.0.1", "wrong", pinned); err == nil {
		c.Close()
		t.Fatal("a wrong password got in through the door")
	}

	// Same home: nothing moves. A new home: the certificate does not
	// cover it yet; after Listen it does, under the same CA.
	if err := door.Listen("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	ca := certs.CAPEM()
	if err := door.Listen("127.0.0.2"); err != nil {
		t.Fatalf("move to 127.0.0.2: %v", err)
	}
	if certs.CAPEM() != ca {
		t.Error("the CA agents pin changed with home")
	}
	if err := handshake(net.JoinHostPort("127.0.0.2", strconv.Itoa(port)), "127.0.0.2", ca); err != nil {
		t.Fatalf("TLS at the new home, for its address: %v", err)
	}
	if err := handshake(net.JoinHostPort("127.0.0.2", strconv.Itoa(port)), "192.0.2.9", ca); err == nil {
		t.Error("the certificate is valid for an address that is no home")
	}
	nc2, err := connect("127.0.0.2", bus.AgentPassword(secret, ip), pinned)
	if err != nil {
		t.Fatalf("agent at the new home: %v", err)
	}
	nc2.Close()
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		c.Close()
		t.Error("the old home still accepts connections")
	}
	if err := nc.Flush(); err != nil {
		t.Errorf("the connection made at the old home broke: %v", err)
	}

	// A home that is not an address of this machine is a clear error.
	if err := door.Listen("192.0.2.1"); err == nil {
		t.Error("listening at an address not on this machine succeeded")
	}
	if err := door.Listen("not-an-ip"); err == nil {
		t.Error("a home that is no IP was accepted")
	}
}

// With --tls-cert the listener presents that pair as it is: a home it
// does not cover is an error that says so, not agents that cannot verify.
func TestAgentCertsOfAGivenPair(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	// A CA-less pair: a leaf of another CA, here a self-signed one
	// without the right to sign.
	if err := ensureSelfSigned(cert, key, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	leaf := autoCerts(t)
	if err := leaf.cover("127.0.0.3"); err != nil {
		t.Fatal(err)
	}
	pair := leaf.cert
	if err := os.WriteFile(cert, pemCert(pair.Certificate[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pemKey(t, pair), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := newAgentCerts(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.fixed == nil {
		t.Fatal("a pair that cannot sign is used as a CA")
	}
	if err := c.cover("127.0.0.3"); err != nil {
		t.Errorf("a home the pair covers: %v", err)
	}
	if err := c.cover("127.0.0.4"); err == nil {
		t.Error("a home the pair does not cover was accepted")
	}
}

// The engine listens for agents at home once a config names it, over TLS
// with a certificate for home that the data dir's CA signed; it stops with
// the engine and listens again at the stored home after a restart.
func TestServeListensAtHome(t *testing.T) {
	dir := t.TempDir()
	port := bustest.FreePort(t)
	serve := func() (string, func()) {
		addr, stop := engineStop(t, Options{DataDir: dir, NATSListen: ":" + strconv.Itoa(port)})
		return "http://" + addr, stop
	}
	at := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
	listening := func(ip string) bool {
		c, err := net.DialTimeout("tcp", at(ip), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	base, stop := serve()
	if listening("127.0.0.1") {
		t.Fatal("listening for agents before any config names home")
	}
	post := func(home string) {
		cfg := `{"components": {"web": ["127.0.0.2"]}, "properties": {"catalog": "starter", "domain": "t.local", "home": "` + home + `", "root": "pw", "checkdisk": 0, "adduser": 0}}`
		if code, body, _ := do(t, "POST", base+"/deployment-engine/config?check=0", cfg, true); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
	}
	post("127.0.0.1")
	ca, err := os.ReadFile(filepath.Join(dir, AutoCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(at("127.0.0.1"), "127.0.0.1", string(ca)); err != nil {
		t.Fatalf("no TLS listener for agents at home after the config named it: %v", err)
	}
	post("127.0.0.5")
	if err := handshake(at("127.0.0.5"), "127.0.0.5", string(ca)); err != nil {
		t.Fatalf("no TLS listener for agents at the new home: %v", err)
	}
	if listening("127.0.0.1") {
		t.Error("still listening at the old home")
	}
	stop()
	if listening("127.0.0.5") {
		t.Fatal("still listening for agents after the engine stopped")
	}
	_, stop = serve()
	defer stop()
	if err := handshake(at("127.0.0.5"), "127.0.0.5", string(ca)); err != nil {
		t.Fatalf("not listening for agents at the stored home after a restart: %v", err)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(t *testing.T, c *tls.Certificate) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
}
