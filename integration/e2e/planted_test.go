package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

// vaultRelease is a BOSH release whose one job renders two properties named
// like secrets and one that is not into its config file.
func vaultRelease() []byte {
	job := targz(map[string][]byte{
		"job.MF": []byte(`---
name: vault
templates: {vault.conf.erb: config/vault.conf}
packages: []
properties:
  admin_password: {description: a secret by its name}
  api_token: {description: a secret by its name}
  greeting: {default: hello}
`),
		"monit":                    nil,
		"templates/vault.conf.erb": []byte("password=<%= p('admin_password') %>\ntoken=<%= p('api_token') %>\ngreeting=<%= p('greeting') %>\n"),
	})
	mf := fmt.Sprintf("---\nname: vault\nversion: '1'\npackages: []\njobs:\n- name: vault\n  version: '1'\n  fingerprint: %s\n  sha1: %s\n", sha1hex(job), sha1hex(job))
	return targz(map[string][]byte{"jobs/vault.tgz": job, "release.MF": []byte(mf)})
}

// A distinct secret planted in each place a config holds one (the nodes'
// user and root passwords, a webhook's signing secret, BOSH job properties
// named like secrets), with the engine's own (API token, agents' NATS
// passwords, the observer's), is found in none of what the engine shows or
// keeps: API answers (plans with their file diffs, with the secrets sent
// back as "<redacted>" too), server-sent events, NATS events, its log,
// every log it keeps, its metrics, audit, the webhook's deliveries, its
// data dir and a backup of its store. The node itself holds
// the rendered file, as it must.
func TestPlantedSecretsGoNowhere(t *testing.T) {
	natsPort := bustest.FreePort(t)
	hook := newHookReceiver(t)
	e := engine(t, "--nats-listen", fmt.Sprintf("%s:%d", bed.Home, natsPort), "--webhook-allow", "127.0.0.1/32")
	defer resetBosh(t, "vault")

	planted := map[string]string{
		"user password":          "Planted-UserPw-7c1e",
		"root password":          "Planted-RootPw-91ab",
		"webhook secret":         "Planted-HookSecret-4f2d",
		"job admin_password":     "Planted-JobPw-Q7w3",
		"job api_token":          "Planted-JobToken-z8k5",
		"the engine's API token": e.Token,
	}
	observer, err := os.ReadFile(filepath.Join(e.Data, "nats-observer"))
	if err != nil {
		t.Fatal(err)
	}
	planted["the NATS observer's password"] = strings.TrimSpace(string(observer))

	// NATS events, as another tool would follow them.
	var mu sync.Mutex
	var events bytes.Buffer
	nc, err := nats.Connect(fmt.Sprintf("nats://%s:%d", bed.Home, natsPort), nats.UserInfo("observer", planted["the NATS observer's password"]),
		nats.RootCAs(filepath.Join(e.Data, "tls", "cert.pem")))
	if err != nil {
		t.Fatalf("observer connect: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe(subject.AllEvents, func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&events, "%s %s\n", m.Subject, m.Data)
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()

	upload(t, e, vaultRelease(), 201)
	jobs := map[string]any{"vault": map[string]any{"admin_password": planted["job admin_password"], "api_token": planted["job api_token"], "greeting": "hi"}}
	cfg := boshConfig("vault/1", map[string][]string{"vault": ips(0)}, jobs)
	props := cfg["properties"].(map[string]any)
	props["password"], props["root"] = planted["user password"], planted["root password"]
	props["notify"] = map[string]any{"webhooks": []map[string]any{{"url": hook.url, "secret": planted["webhook secret"]}}}

	// Everything the API answers is kept, to be searched at the end.
	var answers bytes.Buffer
	keep := func(what string, code int, body []byte) []byte {
		fmt.Fprintf(&answers, "== %s %d\n%s\n", what, code, body)
		return body
	}
	do := func(method, path string, body any) (int, []byte) {
		code, out := e.Do(method, path, body)
		keep(method+" "+path, code, out)
		return code, out
	}
	// A plan of the config before it is stored: its diff shows the rendered file.
	if code, body := do("POST", "/deployment-engine/plan", cfg); code != 200 || !strings.Contains(string(body), "greeting=hi") {
		t.Fatalf("plan of the new config: %d %s (want the rendered file's diff)", code, body)
	}
	if code, body := do("POST", "/deployment-engine/config", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	id := deploy(t, e)
	sse := readEvents(t, e, id)
	if d := wait(t, e, id, 10*time.Minute); d.State != "succeeded" {
		t.Fatalf("deployment %s:\n%s\n%s", d.State, failures(d), tail(e.Log(), 30))
	}
	keep("SSE /deployments/"+id+"/events", 200, <-sse)
	// The node holds the rendered secrets: the search below would find
	// them wherever the engine let them through.
	if got := inNode(t, 0, "cat /var/vcap/jobs/vault/config/vault.conf"); !strings.Contains(got, planted["job admin_password"]) || !strings.Contains(got, planted["job api_token"]) {
		t.Fatalf("the node's rendered file lacks the job's secrets:\n%s", got)
	}
	if pw := strings.TrimSpace(inNode(t, 0, "cat /var/lib/deployment-engine/agent.pass 2>/dev/null; true")); pw != "" {
		planted["the node agent's NATS password"] = pw
	} else {
		t.Error("the node has no agent password (agents are on by default)")
	}

	// The stored config, sent back as GET /config gives it ("<redacted>"
	// for each secret), with one property changed: a plan and a deploy.
	_, stored := do("GET", "/deployment-engine/config", nil)
	var back map[string]any
	if err := json.Unmarshal(stored, &back); err != nil {
		t.Fatalf("GET /config: %v %s", err, stored)
	}
	back["properties"].(map[string]any)["jobs"].(map[string]any)["vault"].(map[string]any)["greeting"] = "hey"
	if code, body := do("POST", "/deployment-engine/plan", back); code != 200 || !strings.Contains(string(body), "greeting=hey") {
		t.Fatalf("plan of the redacted config sent back: %d %s", code, body)
	}
	if code, body := do("POST", "/deployment-engine/config", back); code != 201 {
		t.Fatalf("config sent back redacted: %d %s", code, body)
	}
	id2 := deploy(t, e)
	if d := wait(t, e, id2, 6*time.Minute); d.State != "succeeded" {
		t.Fatalf("second deployment %s:\n%s", d.State, failures(d))
	}
	if got := inNode(t, 0, "cat /var/vcap/jobs/vault/config/vault.conf"); !strings.Contains(got, "greeting=hey") || !strings.Contains(got, planted["job admin_password"]) {
		t.Fatalf("the kept secrets did not reach the node with the change:\n%s", got)
	}

	// Every read route, and every log the engine keeps.
	for _, p := range []string{"/config", "/config/history", "/deployments", "/deployments/" + id, "/deployments/" + id + "/report",
		"/deployments/" + id2, "/audit", "/status", "/heal", "/releases", "/download", "/precheck", "/hardware"} {
		do("GET", "/deployment-engine"+p, nil)
	}
	_, list := e.Do("GET", "/deployment-engine/download", nil)
	var logs []string
	_ = json.Unmarshal(list, &logs)
	if len(logs) == 0 {
		t.Errorf("no logs listed: %s", list)
	}
	for _, name := range logs {
		do("GET", "/deployment-engine/logs/"+name, nil)
	}
	do("GET", "/metrics", nil)
	mu.Lock()
	keep("NATS de.evt.>", 0, events.Bytes())
	mu.Unlock()
	keep("webhook deliveries", 0, hook.received())
	e.Stop()
	keep("the engine's log", 0, []byte(e.Log()))
	keep("data dir", 0, treeText(t, e.Data))
	keep("a backup, decompressed", 0, backupText(t, e))

	all := answers.String()
	for what, secret := range planted {
		if secret == "" {
			continue
		}
		// In clear, or base64-encoded inside a larger value (JSON carries
		// a file's bytes so), at any alignment.
		for _, form := range append([]string{secret}, base64Cores(secret)...) {
			if i := strings.Index(all, form); i >= 0 {
				t.Errorf("%s (%q) leaked, as %q:\n%s", what, secret, form, around(all, i))
				break
			}
		}
	}
}

// base64Cores are the parts of s's base64 encoding that stay the same
// wherever s starts in what is encoded: one for each of the three
// alignments, without the characters that depend on the bytes around it.
func base64Cores(s string) []string {
	var out []string
	for k := range 3 {
		b := append(make([]byte, k), s...)
		enc := base64.StdEncoding.EncodeToString(b[:len(b)/3*3])
		skip := map[int]int{0: 0, 1: 4, 2: 4}[k]
		if core := enc[min(skip, len(enc)):]; len(core) >= 8 {
			out = append(out, core)
		}
	}
	return out
}

// around is the place a secret was found, with the section it is in.
func around(s string, i int) string {
	head := strings.LastIndex(s[:i], "\n== ")
	start := max(i-300, 0)
	return fmt.Sprintf("in %q …%s…", strings.SplitN(s[head+1:], "\n", 2)[0], s[start:min(i+100, len(s))])
}

// readEvents follows a deployment's server-sent events until it finishes.
func readEvents(t *testing.T, e *harness.Engine, id string) <-chan []byte {
	t.Helper()
	out := make(chan []byte, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	go func() {
		defer cancel()
		_, b, err := e.Events(ctx, id)
		if err != nil {
			b = fmt.Appendf(b, "error: %v", err)
		}
		out <- b
	}()
	return out
}

// ownSecretFiles are the files of a data dir that hold the engine's own
// credentials (each 0600): the search for those leaves them out.
var ownSecretFiles = map[string]bool{"api-token": true, "api-tokens": true, "nats-observer": true, "engine-key": true}

// treeText is every file under dir, named, byte for byte, but the
// engine's own credential files, whose modes it checks instead.
func treeText(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		if ownSecretFiles[fi.Name()] {
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is mode %v: others may read the engine's credentials", p, fi.Mode().Perm())
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&buf, "\n== file %s\n", p)
		buf.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// backupText backs the stopped engine's store up and returns the backup
// with each stream's snapshot decompressed: the store as a copy of it
// holds it (the data dir itself is encrypted at rest).
func backupText(t *testing.T, e *harness.Engine) []byte {
	t.Helper()
	file := filepath.Join(t.TempDir(), "engine.bak")
	if out, err := exec.Command(e.Bin, "backup", file, "--data", e.Data).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read the backup: %v", err)
		}
		fmt.Fprintf(&buf, "\n== backup entry %s\n", h.Name)
		var r io.Reader = tr
		if strings.HasSuffix(h.Name, ".snap") {
			r = s2.NewReader(tr)
		}
		if _, err := io.Copy(&buf, r); err != nil {
			t.Fatalf("backup entry %s: %v", h.Name, err)
		}
	}
	if buf.Len() < 1000 {
		t.Fatalf("the backup holds next to nothing: %q", buf.String())
	}
	return buf.Bytes()
}

// hookReceiver is a webhook endpoint on loopback that keeps what it is sent.
type hookReceiver struct {
	url string
	mu  sync.Mutex
	buf bytes.Buffer
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String() + "/hook"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h.mu.Lock()
		fmt.Fprintf(&h.buf, "%s %v\n%s\n", r.URL, r.Header, b)
		h.mu.Unlock()
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return h
}

func (h *hookReceiver) received() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]byte(nil), h.buf.Bytes()...)
}
