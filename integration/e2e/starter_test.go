package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/api/asyncapitest"
	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// The starter stack, deployed through the API onto four nodes with
// components sharing nodes, answers real clients from this machine; a
// tool with its own NATS client follows the deployment; deploying again
// changes nothing.
func TestStarterStack(t *testing.T) {
	// No agent flag: agents are on by default and reach the engine at home.
	e := engine(t)

	comps := map[string][]string{
		"haproxy": ips(0), "etcd": ips(0),
		"web":   ips(1),
		"nats":  ips(1, 3),
		"redis": ips(2), "database": ips(3),
	}
	code, body := e.Do("POST", "/deployment-engine/config", config("starter", comps))
	if code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	var stored struct{ Hardware []struct{ IP string } }
	_ = json.Unmarshal(body, &stored)
	if len(stored.Hardware) != 4 {
		t.Errorf("config reply carries %d nodes' hardware, want 4: %s", len(stored.Hardware), body)
	}

	// Another tool follows the deployment on NATS as the observer.
	pw, err := os.ReadFile(filepath.Join(e.Data, "nats-observer"))
	if err != nil {
		t.Fatal(err)
	}
	// NATS speaks TLS only, with the engine's certificate (pinned).
	natsURL := fmt.Sprintf("nats://%s:4222", bed.Home)
	if plain, err := nats.Connect(natsURL, nats.UserInfo("observer", strings.TrimSpace(string(pw)))); err == nil {
		plain.Close()
		t.Fatal("the engine's NATS took a connection without TLS")
	}
	nc, err := nats.Connect(natsURL, nats.UserInfo("observer", strings.TrimSpace(string(pw))), nats.RootCAs(filepath.Join(e.Data, "tls", "cert.pem")))
	if err != nil {
		t.Fatalf("observer connect: %v", err)
	}
	defer nc.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	// Each event is held to the AsyncAPI document the engine serves: one
	// on a subject it lacks, or that its schema does not allow, fails.
	events := asyncAPIChecker(t, e)
	var drift []error
	checked := map[string]int{}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("events held to the AsyncAPI document, by channel: %v", checked)
		for _, err := range drift {
			t.Errorf("AsyncAPI drift: %v", err)
		}
	})
	if _, err := nc.Subscribe(subject.AllEvents, func(m *nats.Msg) {
		ch, err := events.Check(m.Subject, m.Data)
		mu.Lock()
		defer mu.Unlock()
		checked[ch]++
		if err != nil {
			drift = append(drift, err)
		}
		parts := strings.Split(m.Subject, ".")
		switch {
		case parts[2] == "log":
			seen["log"]++
		case parts[2] == "deploy":
			seen[parts[len(parts)-1]]++
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()

	id := deploy(t, e)
	d := wait(t, e, id, 12*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("deployment failed:\n%s", failures(d))
	}
	// The record says the deployment ended once its end is stored; the
	// event saying so reaches the observer a moment later (a loaded
	// machine took more than the poll's lag): it is waited for, bounded.
	observed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["started"] == 1 && seen["finished"] == 1 && seen["step"] >= len(d.Steps) && seen["log"] > 0
	}
	for deadline := time.Now().Add(30 * time.Second); !observed() && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
	}
	if !observed() {
		mu.Lock()
		t.Errorf("the observer saw %v, want started and finished once, every step (%d) and log lines", seen, len(d.Steps))
		mu.Unlock()
	}

	// HTTP through haproxy reaches the web backend.
	if got := backendsSeen("http://" + bed.Nodes[0].IP + "/"); len(got) != 1 || !got[ips(1)[0]] {
		t.Errorf("haproxy reached backends %v, want the web node %s", got, ips(1)[0])
	}
	if out, err := exec.Command("redis-cli", "-h", bed.Nodes[2].IP, "PING").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Errorf("redis PING: %s %v", out, err)
	}
	psql := exec.Command("psql", "-h", bed.Nodes[3].IP, "-U", "de", "-d", "de", "-Atc", "select 40+2")
	psql.Env = append(os.Environ(), "PGPASSWORD=de")
	if out, err := psql.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Errorf("PostgreSQL query: %s %v", out, err)
	}
	natsAcross(t, bed.Nodes[1].IP, bed.Nodes[3].IP)
	etcdPutGet(t, bed.Nodes[0].IP)

	// Convergence: nothing left to do.
	d2 := wait(t, e, deploy(t, e), 3*time.Minute)
	if d2.State != "succeeded" || d2.Changed != 0 {
		t.Fatalf("second deploy: %s changed=%d\n%s", d2.State, d2.Changed, failures(d2))
	}

	followHome(t, e, comps)
	logsThroughAPI(t, e, comps)
	comps = scaleOutAndIn(t, e, comps)
	maintenanceDrains(t, e, comps["web"][1])
	patchRolls(t, e, comps)
	operate(t, e, comps)
	stopStartEach(t, e, comps)
	frozenNode(t, e, bed.Nodes[3])
}

// scaleOutAndIn takes web from one instance to three with the scale route,
// then back to two through the config, while a client keeps asking
// haproxy: no request may fail, and haproxy's backends follow. It returns
// the config's components at the end.
func scaleOutAndIn(t *testing.T, e *harness.Engine, comps map[string][]string) map[string][]string {
	haproxy := "http://" + bed.Nodes[0].IP + "/"
	load := hammer(haproxy)
	newWeb := bed.Nodes[3].IP
	code, body := e.Do("POST", "/deployment-engine/scale", []map[string]string{{"Comp": "web", "Ip": bed.Nodes[2].IP}, {"Comp": "web", "Ip": newWeb}})
	if code != 202 {
		load.stop()
		t.Fatalf("scale: %d %s", code, body)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(body, &r)
	d := wait(t, e, r.ID, 5*time.Minute)
	if d.State != "succeeded" {
		load.stop()
		t.Fatalf("scale-out deployment: %s\n%s", d.State, failures(d))
	}
	for _, st := range d.Steps {
		if st.State == "succeeded" && st.Component != "web" && st.Component != "haproxy" && st.Component != "_node" {
			t.Errorf("scale-out re-ran %s", st.ID)
		}
	}
	if got := backendsWithin(haproxy, func(got map[string]bool) bool { return len(got) == 3 }); len(got) != 3 {
		t.Errorf("after scale-out haproxy reaches %v, want 3 web nodes", got)
	}

	// Scale in: the config without the last instance, then deploy.
	comps["web"] = ips(1, 2)
	code, body = e.Do("POST", "/deployment-engine/config", config("starter", comps))
	if code != 201 {
		load.stop()
		t.Fatalf("config for scale-in: %d %s", code, body)
	}
	d = wait(t, e, deploy(t, e), 5*time.Minute)
	served, failed, why := load.stop()
	if d.State != "succeeded" {
		t.Fatalf("scale-in deployment: %s\n%s", d.State, failures(d))
	}
	if got := backendsWithin(haproxy, func(got map[string]bool) bool { return len(got) == 2 && !got[newWeb] }); len(got) != 2 || got[newWeb] {
		t.Errorf("after scale-in haproxy reaches %v, want the 2 remaining web nodes", got)
	}
	if out, _ := bed.Nodes[3].Exec(context.Background(), "monit summary web 2>&1; true"); strings.Contains(string(out), "OK") {
		t.Errorf("web still supervised on the removed node: %s", out)
	}
	if failed > 0 || served < 20 {
		t.Errorf("during scale-out and scale-in: %d requests failed, %d served: %s", failed, served, strings.Join(why, "; "))
	}
	t.Logf("scale-out and scale-in: %d requests served, %d failed", served, failed)
	return comps
}

// maintenanceDrains puts web node ip in maintenance: its deployment
// takes it out of haproxy, which then reaches only the other web node;
// out of maintenance, it is put back.
func maintenanceDrains(t *testing.T, e *harness.Engine, ip string) {
	t.Helper()
	haproxy := "http://" + bed.Nodes[0].IP + "/"
	for _, on := range []bool{true, false} {
		code, body := e.Do("PUT", "/deployment-engine/nodes/"+ip+"/maintenance", map[string]any{"on": on, "reason": "e2e drain"})
		var m contract.NodeMaintenance
		if code != 200 || json.Unmarshal(body, &m) != nil || m.Deployment == "" || m.Warning != "" {
			t.Fatalf("maintenance %v on %s: %d %s", on, ip, code, body)
		}
		if d := wait(t, e, m.Deployment, 2*time.Minute); d.State != contract.DeploySucceeded || d.Kind != "maintenance" {
			t.Fatalf("maintenance %v deployment: %s %s\n%s", on, d.Kind, d.State, failures(d))
		}
		got := backendsWithin(haproxy, func(got map[string]bool) bool { return got[ip] != on && len(got) >= 1 })
		if got[ip] == on {
			t.Errorf("maintenance %v: haproxy reaches %v", on, got)
		}
	}
}

func backendsSeen(url string) map[string]bool {
	seen := map[string]bool{}
	for i := 0; i < 30; i++ {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, n := range bed.Nodes {
			if strings.Contains(string(b), "("+n.IP+")") {
				seen[n.IP] = true
			}
		}
	}
	return seen
}

// backendsWithin reads the backends haproxy reaches until ok holds or its
// health checks (every 1 s, rise 1) have had ample time to mark a changed
// backend: a deployment ends when haproxy has its new config, and the
// first check of a new backend follows within a second or two.
func backendsWithin(url string, ok func(map[string]bool) bool) map[string]bool {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := backendsSeen(url)
		if ok(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// natsAcross publishes on one nats node and receives on the other.
func natsAcross(t *testing.T, a, b string) {
	t.Helper()
	sub, err := nats.Connect("nats://" + a + ":4222")
	if err != nil {
		t.Fatalf("nats %s: %v", a, err)
	}
	defer sub.Close()
	pub, err := nats.Connect("nats://" + b + ":4222")
	if err != nil {
		t.Fatalf("nats %s: %v", b, err)
	}
	defer pub.Close()
	s, _ := sub.SubscribeSync("e2e.hello")
	_ = sub.Flush()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_ = pub.Publish("e2e.hello", []byte("across"))
		_ = pub.Flush()
		if m, err := s.NextMsg(500 * time.Millisecond); err == nil && string(m.Data) == "across" {
			return
		}
	}
	t.Errorf("a message published on nats %s never reached nats %s", b, a)
}

// etcdPutGet stores and reads a key over etcd's HTTP API (v2: Debian's
// etcd has no v3 JSON gateway).
func etcdPutGet(t *testing.T, ip string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", "http://"+ip+":2379/v2/keys/e2e", strings.NewReader(url.Values{"value": {"works"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("etcd put: %v", err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + ip + ":2379/v2/keys/e2e")
	if err != nil {
		t.Fatalf("etcd get: %v", err)
	}
	defer resp.Body.Close()
	var r struct{ Node struct{ Value string } }
	_ = json.NewDecoder(resp.Body).Decode(&r)
	if r.Node.Value != "works" {
		t.Errorf("etcd get: %+v (HTTP %d)", r, resp.StatusCode)
	}
}

// followHome gives the bridge a second address and makes it home: the
// engine listens for the agents there at once, without a restart, over TLS
// with a certificate for that address that the agents' pinned CA signed,
// and a deployment points every agent at it. (The scale-in below stores a
// config with the first home again, and the agents follow back.)
func followHome(t *testing.T, e *harness.Engine, comps map[string][]string) {
	parts := strings.Split(bed.Home, ".")
	home := strings.Join(append(parts[:3], "254"), ".")
	if out, err := exec.Command("ip", "addr", "add", home+"/24", "dev", bed.Bridge).CombinedOutput(); err != nil {
		t.Fatalf("add %s to the bridge: %v %s", home, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "addr", "del", home+"/24", "dev", bed.Bridge).Run() })
	cfg := config("starter", comps)
	cfg["properties"].(map[string]any)["home"] = home
	code, body := e.Do("POST", "/deployment-engine/config", cfg)
	if code != 201 || strings.Contains(string(body), "node agents") {
		t.Fatalf("config with a new home: %d %s", code, body)
	}
	pw, err := os.ReadFile(filepath.Join(e.Data, "nats-observer"))
	if err != nil {
		t.Fatal(err)
	}
	// The observer, pinning the engine's certificate, verifies the new
	// address: the listener's certificate was issued again for it.
	nc, err := nats.Connect("nats://"+net.JoinHostPort(home, "4222"), nats.UserInfo("observer", strings.TrimSpace(string(pw))),
		nats.RootCAs(filepath.Join(e.Data, "tls", "cert.pem")), nats.MaxReconnects(0), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("the engine does not listen for agents at the new home over TLS: %v", err)
	}
	nc.Close()
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(bed.Home, "4222"), 2*time.Second); err == nil {
		c.Close()
		t.Errorf("the engine still listens for agents at the old home")
	}
	d := wait(t, e, deploy(t, e), 5*time.Minute)
	if d.State != "succeeded" {
		t.Fatalf("deployment to the new home: %s\n%s", d.State, failures(d))
	}
	for _, st := range d.Steps {
		if st.State == "succeeded" && st.Component != "_node" {
			t.Errorf("the new home re-ran %s", st.ID)
		}
	}
	// Every agent reconnects there and reports.
	agentsAt(t, home)
	instances := 0
	for _, l := range comps {
		instances += len(l)
	}
	took := waitFor(t, e, 30*time.Second, "every instance RUNNING, reported by agents at the new home", func(st []statusEntry) bool {
		n := 0
		for _, s := range st {
			if s.Status == "RUNNING" {
				n++
			}
		}
		return n == instances
	})
	t.Logf("agents moved to home %s; every instance RUNNING %s after", home, took.Round(100*time.Millisecond))
}

// agentsAt waits until the agent of every node is connected to the engine
// at home: an agent restarts on its own, a little after a deployment
// changed its config, and a command sent to it meanwhile waits for an
// answer that does not come.
func agentsAt(t *testing.T, home string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range bed.Nodes {
		for {
			out, _ := n.Exec(context.Background(), "ss -Htn state established dst "+home+":4222 | wc -l")
			if strings.TrimSpace(string(out)) != "0" {
				break
			}
			if time.Now().After(deadline) {
				log, _ := n.Exec(context.Background(), "tail -5 /var/log/de-agent.log")
				t.Fatalf("the agent on %s did not connect to the engine at %s:\n%s", n.IP, home, log)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// asyncAPIChecker loads the AsyncAPI document e serves, without a token.
func asyncAPIChecker(t *testing.T, e *harness.Engine) *asyncapitest.Checker {
	t.Helper()
	code, doc := e.Do("GET", "/deployment-engine/asyncapi.json", nil)
	if code != 200 {
		t.Fatalf("GET asyncapi.json: %d %s", code, doc)
	}
	c, err := asyncapitest.Load(doc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
