package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// rogue is an SSH server on an address of the bed's subnet that no node
// owns: it records every password and key it is offered and lets nobody
// in.
type rogue struct {
	IP string

	mu        sync.Mutex
	passwords []string
	keys      int
	conns     int
}

func startRogue(t *testing.T) *rogue {
	t.Helper()
	third := strings.Split(bed.Subnet, ".")[2]
	r := &rogue{IP: "10.213." + third + ".250"}
	if out, err := exec.Command("ip", "addr", "add", r.IP+"/32", "dev", bed.Bridge).CombinedOutput(); err != nil {
		t.Fatalf("add the rogue's address: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "addr", "del", r.IP+"/32", "dev", bed.Bridge).Run() })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			r.mu.Lock()
			r.passwords = append(r.passwords, string(pw))
			r.mu.Unlock()
			return nil, fmt.Errorf("no")
		},
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
			r.mu.Lock()
			r.keys++
			r.mu.Unlock()
			return nil, fmt.Errorf("no")
		},
		KeyboardInteractiveCallback: func(_ ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			answers, err := ask("", "", []string{"Password: "}, []bool{false})
			r.mu.Lock()
			r.passwords = append(r.passwords, answers...)
			r.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("no")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", net.JoinHostPort(r.IP, "22"))
	if err != nil {
		t.Fatalf("rogue listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns++
			r.mu.Unlock()
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				_, _, _, _ = ssh.NewServerConn(c, cfg)
			}()
		}
	}()
	return r
}

func (r *rogue) seen() (passwords []string, keys, conns int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.passwords...), r.keys, r.conns
}

// A kept root password goes to no host it was not given for: a config (or
// a scale-out) that adds a new host with the redaction marker is refused
// with the host named, and with a key the new host is offered the key
// alone. The rogue host records what it is offered: never the password.
func TestKeptSecretsStayWithTheirHosts(t *testing.T) {
	r := startRogue(t)
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	const rootPW = "kept-root-pw-5b1e"

	// Password only, no key: the new host is refused by name, before
	// anything contacts it.
	cfg := config("e2e", map[string][]string{"alpha": ips(0)})
	props := cfg["properties"].(map[string]any)
	delete(props, "key")
	props["root"] = rootPW
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("store the config: %d %s", code, body)
	}
	props["root"] = "<redacted>"
	cfg["components"] = map[string][]string{"alpha": {bed.Nodes[0].IP, r.IP}}
	for _, check := range []string{"1", "0"} {
		code, body := e.Do("POST", "/deployment-engine/config?check="+check, cfg)
		if code != 400 || !strings.Contains(string(body), r.IP) || !strings.Contains(string(body), "properties.root") {
			t.Errorf("a new host with the kept root password (check=%s): %d %s, want 400 naming %s", check, code, body, r.IP)
		}
		if pws, _, _ := r.seen(); len(pws) > 0 {
			t.Fatalf("the rogue host was offered %d passwords (the kept root password: %v)", len(pws), slices.Contains(pws, rootPW))
		}
	}
	if code, body := e.Do("POST", "/deployment-engine/scale", map[string]string{"Comp": "alpha", "Ip": r.IP}); code != 400 || !strings.Contains(string(body), r.IP) {
		t.Fatalf("scale to a new host with the kept root password: %d %s, want 400 naming %s", code, body, r.IP)
	}

	// Password and key: the new host gets the key, never the password.
	props["root"], props["key"] = rootPW, bed.KeyPath
	cfg["components"] = map[string][]string{"alpha": ips(0)}
	if code, body := e.Do("POST", "/deployment-engine/config", cfg); code != 201 {
		t.Fatalf("store the config with a key: %d %s", code, body)
	}
	props["root"] = "<redacted>"
	cfg["components"] = map[string][]string{"alpha": {bed.Nodes[0].IP, r.IP}}
	code, body := e.Do("POST", "/deployment-engine/config", cfg)
	if code != 400 || !strings.Contains(string(body), r.IP) {
		t.Fatalf("a rogue host that refuses the key: %d %s, want 400 naming %s", code, body, r.IP)
	}
	if code, body := e.Do("POST", "/deployment-engine/scale", map[string]string{"Comp": "alpha", "Ip": r.IP}); code != 400 || !strings.Contains(string(body), r.IP) {
		t.Fatalf("scale to a rogue host: %d %s, want 400 naming %s", code, body, r.IP)
	}
	pws, keys, conns := r.seen()
	if conns == 0 || keys == 0 {
		t.Fatalf("the rogue host was never asked (%d connections, %d key offers): the test proves nothing", conns, keys)
	}
	for _, pw := range pws {
		if strings.Contains(pw, rootPW) {
			t.Fatalf("the rogue host was offered the kept root password (%d attempts)", len(pws))
		}
	}
	if len(pws) > 0 {
		t.Fatalf("the rogue host was offered %d passwords", len(pws))
	}
	if strings.Contains(e.Log(), rootPW) {
		t.Fatal("the engine's log holds the root password")
	}
}

// A changed user password re-runs what uses it: the adduser step's hash
// holds a keyed digest of it. Deploying again after the change reports
// changes and the node's user has the new password; once more, nothing.
func TestChangedSecretIsApplied(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	setSleep(t, 0, bed.Nodes[0])
	const user = "de12user"
	cfg := config("e2e", map[string][]string{"alpha": ips(0)})
	props := cfg["properties"].(map[string]any)
	props["adduser"], props["user"] = 1, user
	// The user's password, checked on the node against its shadow entry.
	hasPassword := func(pw string) bool {
		t.Helper()
		out, err := bed.Nodes[0].Exec(context.Background(),
			fmt.Sprintf(`perl -e 'my $h=(getpwnam($ARGV[0]))[1]; print((crypt($ARGV[1], $h) eq $h) ? "yes" : "no")' %s %s`, user, pw))
		if err != nil {
			t.Fatalf("check the password on the node: %v %s", err, out)
		}
		return strings.TrimSpace(string(out)) == "yes"
	}
	t.Cleanup(func() { _, _ = bed.Nodes[0].Exec(context.Background(), "userdel -r "+user+" 2>/dev/null; true") })

	for i, pw := range []string{"first-pw-81c2", "second-pw-3d9a"} {
		props["password"] = pw
		if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
			t.Fatalf("config: %d %s", code, body)
		}
		d := wait(t, e, deploy(t, e), 5*time.Minute)
		if d.State != "succeeded" {
			t.Fatalf("deploy %d: %s\n%s", i, d.State, failures(d))
		}
		if d.Changed == 0 {
			t.Fatalf("deploy %d with password %d: changed 0, want the adduser step to run", i, i+1)
		}
		ran := false
		for _, s := range d.Steps {
			if s.Action == "adduser" && s.State == "succeeded" {
				ran = true
			}
		}
		if !ran {
			t.Fatalf("deploy %d: the adduser step did not run", i)
		}
		if !hasPassword(pw) {
			t.Fatalf("after deploy %d the node's user does not have the new password", i)
		}
		if i == 1 && hasPassword("first-pw-81c2") {
			t.Fatal("the node's user still has the old password")
		}
	}
	d := wait(t, e, deploy(t, e), 5*time.Minute)
	if d.State != "succeeded" || d.Changed != 0 {
		t.Fatalf("deploy again with nothing changed: %s, changed %d\n%s", d.State, d.Changed, failures(d))
	}
	for _, pw := range []string{"first-pw-81c2", "second-pw-3d9a"} {
		if strings.Contains(e.Log(), pw) {
			t.Fatal("the engine's log holds the user's password")
		}
	}
}
