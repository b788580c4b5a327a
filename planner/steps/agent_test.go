package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

func testAgent(sha string) *Agent {
	return &Agent{URL: "http://10.0.0.1:50000/agent/" + sha + "/de-agent", SHA256: sha, NATSURL: "nats://10.0.0.1:4222",
		Password: func(string) string { return "pw" }}
}

// The agent's monit check finds and stops the agent by its binary's path,
// anchored: a shell whose command line only mentions the agent (an
// operator's script, a reset) is neither taken for it nor killed with it.
func TestAgentCheckAnchored(t *testing.T) {
	in := Builder{Config: contract.Config{Properties: contract.Properties{Home: "10.0.0.1"}}, Agent: testAgent(strings.Repeat("a", 64))}
	var monit string
	for _, f := range agentStep(in, "10.0.0.2").Spec.Files {
		if f.Path == "/etc/monit/conf.d/de-agent" {
			monit = string(f.Content)
		}
	}
	for _, want := range []string{`matching "^/usr/local/bin/de-agent "`, `pkill -f '^/usr/local/bin/de-agent '`,
		`start program = "/bin/sh -c '/usr/local/bin/de-agent --config /var/lib/deployment-engine/agent.json `} {
		if !strings.Contains(monit, want) {
			t.Errorf("the agent's monit check lacks %s:\n%s", want, monit)
		}
	}
}

// The agent step carries no binary: the node fetches it, and a new binary
// (a new SHA-256) is a new step.
func TestAgentStepFetches(t *testing.T) {
	in := Builder{Config: contract.Config{Properties: contract.Properties{Home: "10.0.0.1"}}, Agent: testAgent(strings.Repeat("a", 64))}
	s := agentStep(in, "10.0.0.2")
	for _, f := range s.Spec.Files {
		if f.LocalPath != "" || f.Path == AgentBin {
			t.Errorf("the step sends the agent's binary: %+v", f)
		}
	}
	if !strings.Contains(s.Spec.Script, in.Agent.URL) || !strings.Contains(s.Spec.Script, in.Agent.SHA256) {
		t.Errorf("the script does not fetch %s by its SHA-256:\n%s", in.Agent.URL, s.Spec.Script)
	}
	in.Agent = testAgent(strings.Repeat("b", 64))
	if agentStep(in, "10.0.0.2").Spec.Hash == s.Spec.Hash {
		t.Error("a new agent binary does not change the step's hash")
	}
}

// No step waits for the agent step, which waits for the node's last base
// step only (the mirror step may install monit, which it needs), and runs
// after its node's register steps, before its start steps: the agent's
// monit check is read by the reload the starts need, not by a second one
// after them.
func TestAgentOffTheCriticalPath(t *testing.T) {
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	in := Builder{Config: starterConfig(), Catalog: cat, Engine: "e-1", ID: "d-1", MirrorURL: "http://10.9.0.1:50000/mirror/",
		Agent: testAgent(strings.Repeat("a", 64))}
	planned, err := in.CatalogSteps()
	if err != nil {
		t.Fatal(err)
	}
	agents := 0
	for _, s := range planned {
		if s.Spec.Action == "agent" {
			agents++
			if want := []string{ID(s.Spec.Node, NodeComponent, "mirror")}; !slices.Equal(s.After, want) {
				t.Errorf("%s waits for %v, want %v", s.Spec.ID, s.After, want)
			}
			for _, o := range planned {
				if o.Spec.Node != s.Spec.Node || o == s {
					continue
				}
				if start := o.Spec.Action == "start"; start != (o.Prio > s.Prio) {
					t.Errorf("%s (priority %d) and the agent step (%d): want the agent step after every register, before every start", o.Spec.ID, o.Prio, s.Prio)
				}
			}
			continue
		}
		for _, a := range s.After {
			if strings.HasSuffix(a, "/agent") {
				t.Errorf("%s waits for %s", s.Spec.ID, a)
			}
		}
	}
	if agents != len(in.Config.Nodes()) {
		t.Errorf("%d agent steps for %d nodes", agents, len(in.Config.Nodes()))
	}
}

// agentBinary is a stand-in for the agent's binary and its SHA-256.
func agentBinary() ([]byte, string) {
	good := []byte("#!/bin/sh\necho agent\n")
	sum := sha256.Sum256(good)
	return good, hex.EncodeToString(sum[:])
}

// The node fetches the agent from the engine, checks its SHA-256 and
// installs it, once: a node that has that binary fetches nothing. A
// binary that is not the one named, or an engine the node cannot reach,
// fails the step with what happened, and leaves nothing behind.
func TestFetchAgent(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	good, sha := agentBinary()
	var fetches, busy atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		switch r.URL.Path {
		case "/agent/" + sha + "/de-agent":
			_, _ = w.Write(good)
		case "/busy":
			if busy.Add(1) <= 2 {
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return
			}
			_, _ = w.Write(good)
		case "/tampered":
			_, _ = w.Write([]byte("#!/bin/sh\necho evil\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "de-agent")
	// mv logs what it moves: a node without the binary gets it in place.
	mv, err := exec.LookPath("mv")
	if err != nil {
		t.Skip("no mv")
	}
	path := t.TempDir()
	moved := filepath.Join(path, "moved")
	if err := os.WriteFile(filepath.Join(path, "mv"), []byte("#!/bin/sh\necho \"$@\" >> "+moved+"\nexec "+mv+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(url string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", "set -eu\nPATH="+path+":$PATH\n"+fetchAgent(bin, url, sha)+"echo passed\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	leftovers := func() {
		t.Helper()
		if m, _ := filepath.Glob(filepath.Join(dir, ".de-agent.*")); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}

	out, errOut, err := run(srv.URL + "/agent/" + sha + "/de-agent")
	if err != nil || !strings.Contains(out, "fetched de-agent "+sha) || !strings.HasSuffix(out, "passed\n") {
		t.Fatalf("first install: %v: %q %q", err, out, errOut)
	}
	if b, _ := os.ReadFile(bin); !bytes.Equal(b, good) {
		t.Fatalf("installed %q", b)
	}
	if st, _ := os.Stat(bin); st.Mode().Perm() != 0o755 {
		t.Errorf("installed with mode %v", st.Mode())
	}
	if b, err := os.ReadFile(moved); err == nil {
		t.Errorf("a node without the agent had it moved into place: mv %s", b)
	}
	st1, _ := os.Stat(bin)
	n := fetches.Load()
	out, errOut, err = run(srv.URL + "/agent/" + sha + "/de-agent")
	st2, _ := os.Stat(bin)
	if err != nil || !strings.Contains(out, "is installed already") || fetches.Load() != n || !os.SameFile(st1, st2) {
		t.Fatalf("second run fetched again (%d fetches, same file %v): %v: %q %q", fetches.Load()-n, os.SameFile(st1, st2), err, out, errOut)
	}

	// An engine that answers 429 to a crowd of nodes is asked again.
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run(srv.URL + "/busy")
	if err != nil || !strings.Contains(out, "fetched de-agent "+sha) || busy.Load() != 3 {
		t.Fatalf("after two 429s (%d requests): %v: %q %q", busy.Load(), err, out, errOut)
	}
	if b, _ := os.ReadFile(bin); !bytes.Equal(b, good) {
		t.Fatalf("installed %q after two 429s", b)
	}
	leftovers()

	if err := os.WriteFile(bin, []byte("an older agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run(srv.URL + "/tampered")
	if err == nil || strings.Contains(out, "passed") || !strings.Contains(errOut, "not "+sha) {
		t.Errorf("a binary of another SHA-256 was accepted: %v: %q %q", err, out, errOut)
	}
	if b, _ := os.ReadFile(bin); string(b) != "an older agent" {
		t.Errorf("a rejected binary replaced the installed one: %q", b)
	}
	leftovers()
	// Where there was none, a rejected binary leaves none.
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err = run(srv.URL + "/tampered"); err == nil || !strings.Contains(errOut, "not "+sha) {
		t.Errorf("a binary of another SHA-256 was accepted: %v: %q", err, errOut)
	}
	if _, err := os.Lstat(bin); err == nil {
		t.Error("a rejected binary was left where the agent goes")
	}
	// An older binary is replaced by a move.
	if err := os.WriteFile(bin, []byte("an older agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(moved)
	if out, errOut, err = run(srv.URL + "/agent/" + sha + "/de-agent"); err != nil || !strings.Contains(out, "fetched de-agent "+sha) {
		t.Fatalf("over an older agent: %v: %q %q", err, out, errOut)
	}
	if b, _ := os.ReadFile(moved); strings.Count(string(b), "\n") != 1 {
		t.Errorf("over an older agent: mv ran %q, want once", b)
	}
	leftovers()

	if err := os.WriteFile(bin, []byte("an older agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	url := gone.URL + "/agent/" + sha + "/de-agent"
	out, errOut, err = run(url)
	if err == nil || strings.Contains(out, "passed") || !strings.Contains(errOut, "cannot fetch the node agent from the engine at "+url+": ") || !strings.Contains(errOut, "--listen") {
		t.Errorf("an unreachable engine: %v: %q %q", err, out, errOut)
	}
	leftovers()
}

// The binary is hashed by openssl where it answers a digest, by
// sha256sum where it answers anything else or fails; openssl's digest,
// where it gives one, decides.
func TestFetchAgentHashes(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	good, sha := agentBinary()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(good) }))
	defer srv.Close()
	real, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("no sha256sum")
	}
	realSSL, _ := exec.LookPath("openssl")
	cases := []struct {
		name, openssl  string // openssl's script; "" for the machine's own
		installed      bool
		openssls, sums int
	}{
		{"openssl", "", true, 1, 0},
		{"openssl fails", "exit 1", true, 1, 1},
		{"openssl answers no digest", "echo 'dgst: unknown option -r'", true, 1, 1},
		{"openssl answers another digest", "echo " + strings.Repeat("0", 64) + " '*'$4", false, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.openssl == "" && realSSL == "" {
				t.Skip("no openssl on this machine")
			}
			dir, bin := t.TempDir(), filepath.Join(t.TempDir(), "de-agent")
			calls := filepath.Join(dir, "calls")
			ssl := c.openssl
			if ssl == "" {
				ssl = "exec " + realSSL + ` "$@"`
			}
			for name, body := range map[string]string{"openssl": ssl, "sha256sum": "exec " + real + ` "$@"`} {
				script := "#!/bin/sh\necho " + name + " >> " + calls + "\n" + body + "\n"
				if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("bash", "-c", "set -eu\nPATH="+dir+":$PATH\n"+fetchAgent(bin, srv.URL+"/agent/"+sha+"/de-agent", sha)+"echo passed\n")
			out, err := cmd.CombinedOutput()
			log, _ := os.ReadFile(calls)
			if n, m := strings.Count(string(log), "openssl"), strings.Count(string(log), "sha256sum"); n != c.openssls || m != c.sums {
				t.Errorf("openssl ran %d times, sha256sum %d; want %d, %d", n, m, c.openssls, c.sums)
			}
			b, _ := os.ReadFile(bin)
			switch {
			case c.installed && (err != nil || !bytes.Equal(b, good)):
				t.Errorf("not installed: %v: %s", err, out)
			case !c.installed && (err == nil || b != nil || !strings.Contains(string(out), "has SHA-256 "+strings.Repeat("0", 64)+", not "+sha)):
				t.Errorf("installed, or not said why: %v: %s", err, out)
			}
		})
	}
}

// de_hget keeps the body's deadline itself: a transfer that stalls ends
// at it with a clear error, and its copy is killed (the engine sees the
// connection close); a whole body arrives whole, its end noticed at once.
func TestHgetDeadline(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	closed := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/whole" {
			_, _ = w.Write(body)
			return
		}
		_, _ = w.Write(body[:1000])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(closed)
		case <-time.After(15 * time.Second):
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	get := func(path string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command("bash", "-c", hget+`de_hget "$1" "$2" 2 && echo ok || echo "failed: $de_err"`, "bash", srv.URL+path, filepath.Join(dir, "body"))
		cmd.WaitDelay = 5 * time.Second // a copy left running holds the output open
		out, err := cmd.CombinedOutput()
		if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out)), time.Since(start)
	}
	if out, took := get("/whole"); out != "ok" || took > 2*time.Second {
		t.Errorf("a whole body: %q after %v", out, took)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "body")); !bytes.Equal(b, body) {
		t.Errorf("got %d bytes of %d", len(b), len(body))
	}
	out, took := get("/stall")
	if out != "failed: the transfer did not finish within 2s" || took < 2*time.Second || took > 10*time.Second {
		t.Errorf("a stalled body: %q after %v", out, took)
	}
	select {
	case <-closed:
	case <-time.After(12 * time.Second):
		t.Error("the stalled transfer's copy still holds the connection")
	}
}

// A release job's agent entry lists every process of its monit file, so
// that the agent watches and controls each (one process stays in Process),
// and follows the job's logs under /var/vcap/sys/log/<job>/.
func TestReleaseAgentKnowsEveryProcess(t *testing.T) {
	in := Builder{Config: contract.Config{Components: map[string][]string{"two-procs": {"10.0.0.2"}, "one": {"10.0.0.2"}},
		Properties: contract.Properties{Home: "10.0.0.1"}}, Agent: testAgent(strings.Repeat("a", 64))}
	plan := &bosh.Plan{Instances: []bosh.Instance{
		{Job: "two-procs", Node: "10.0.0.2", Processes: []string{"main", "helper"}},
		{Job: "one", Node: "10.0.0.2", Processes: []string{"one"}},
	}}
	out, err := in.ReleaseSteps(Release{Plan: plan, CompOf: func(j string) string { return j }, JobOf: func(c string) string { return c }})
	if err != nil {
		t.Fatal(err)
	}
	var conf contract.AgentConfig
	for _, s := range out {
		for _, f := range s.Spec.Files {
			if f.Path == nodefs.AgentConfig {
				if err := json.Unmarshal(f.Content, &conf); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	want := []contract.AgentComponent{{Name: "two-procs", Process: "main", Processes: []string{"main", "helper"}, Logs: []string{"/var/vcap/sys/log/two-procs/*.log"}},
		{Name: "one", Process: "one", Logs: []string{"/var/vcap/sys/log/one/*.log"}}}
	if !reflect.DeepEqual(conf.Components, want) {
		t.Errorf("agent components %+v, want %+v", conf.Components, want)
	}
}

// The agent step's start of the agent outlasts a monit that refuses
// connections while it reloads: a monit on PATH that refuses the first two
// requests, as monit does between a reload and its HTTP port's return.
func TestStartAgentWaitsOutMonitsReload(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := `#!/bin/sh
echo "$*" >> ` + calls + `
n=$(wc -l < ` + calls + `)
if [ "$n" -le 2 ]; then echo "Cannot connect to [localhost]:2812 -- Connection refused" >&2; exit 1; fi
`
	if err := os.WriteFile(filepath.Join(dir, "monit"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	// Nothing answers on the port de_mact asks first: it goes to the client.
	cmd := exec.Command("bash", "-c", "set -eu\np=de-agent\n"+strings.ReplaceAll(monitStat, "/dev/tcp/"+nodefs.MonitHTTP, "/dev/tcp/127.0.0.1/1")+startAgent)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the agent's start failed on a reloading monit: %v\n%s", err, out)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSpace(string(b)), "\n"); len(got) != 3 || got[2] != "start de-agent" {
		t.Errorf("monit was asked %q, want start de-agent three times", got)
	}
}

// The agent's password is written where the node has none (in place, for
// root alone), left alone where the node holds it, and moved over a
// different one; no temporary file stays.
func TestAgentPasswordWrittenOnlyWhenItChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.pass")
	run := func(pw string) os.FileInfo {
		t.Helper()
		cmd := exec.Command("bash", "-c", writePassword(path))
		cmd.Env = append(os.Environ(), "DE_SECRET_AGENT="+pw)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != pw+"\n" {
			t.Fatalf("the node holds %q (%v), want %q", b, err, pw)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("written with mode %v, want 0600", st.Mode().Perm())
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
		return st
	}
	first := run("s3cret")
	if again := run("s3cret"); !os.SameFile(first, again) || !again.ModTime().Equal(first.ModTime()) {
		t.Error("the same password was written again")
	}
	if changed := run("n3w"); os.SameFile(first, changed) {
		t.Error("a new password was written in place over the one an agent may be reading, not moved over it")
	}
}

// monitKnows checks monit's config verbosely before its reload and keeps
// what monit printed for the agent (root's alone); where it cannot keep it,
// or monit finds the config broken, monit -t runs and says why.
func TestMonitKnowsKeepsItsCheck(t *testing.T) {
	for _, c := range []struct {
		name          string
		broken, noDir bool // monit finds the config broken; no directory to keep the check in
		wantCalls     string
	}{
		{"kept", false, false, "status de-agent,-v -t,reload,status de-agent"},
		{"cannot keep", false, true, "status de-agent,-t,reload,status de-agent"},
		{"broken config", true, false, "status de-agent,-v -t,-t"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			fake := `#!/bin/sh
echo "$*" >> ` + calls + `
case "$*" in
  "-v -t") if [ -n "$BROKEN" ]; then echo "syntax error 'bogus'" >&2; exit 1; fi; printf 'Process Name = de-agent\n\nControl file syntax OK\n' ;;
  "-t") if [ -n "$BROKEN" ]; then echo "syntax error 'bogus'" >&2; exit 1; fi; echo "Control file syntax OK" ;;
  reload) touch ` + filepath.Join(dir, "reloaded") + ` ;;
  "status de-agent") [ ! -e ` + filepath.Join(dir, "reloaded") + ` ] || printf 'Process de-agent\n  status   OK\n' ;;
esac
`
			if err := os.WriteFile(filepath.Join(dir, "monit"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			kept := filepath.Join(dir, "state", "monit-verbose")
			if !c.noDir {
				if err := os.Mkdir(filepath.Dir(kept), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			script := strings.NewReplacer("/dev/tcp/"+nodefs.MonitHTTP, "/dev/tcp/127.0.0.1/1", nodefs.MonitVerbose, kept,
				monitReload, filepath.Join(dir, "monit-reload"), nodefs.MonitPid, filepath.Join(dir, "monit.pid")).Replace(monitStat + monitKnows)
			cmd := exec.Command("bash", "-c", "set -eu\numask 022\np=de-agent\n"+script)
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			if c.broken {
				cmd.Env = append(cmd.Env, "BROKEN=1")
			}
			out, err := cmd.CombinedOutput()
			if (err != nil) != c.broken || (c.broken && !strings.Contains(string(out), "syntax error 'bogus'")) {
				t.Fatalf("%v: %s", err, out)
			}
			b, _ := os.ReadFile(calls)
			if got := strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ","); got != c.wantCalls {
				t.Errorf("monit was asked %q, want %q", got, c.wantCalls)
			}
			if c.broken {
				// What the failed check left is no whole check: the agent passes it by.
				if b, _ := os.ReadFile(kept); strings.Contains(string(b), "Control file syntax OK") {
					t.Errorf("a failed check was kept whole: %q", b)
				}
				return
			}
			st, err := os.Stat(kept)
			if (err == nil) == c.noDir {
				t.Fatalf("kept: %v, want one: %v", err, !c.noDir)
			}
			if !c.noDir {
				if b, _ := os.ReadFile(kept); !strings.HasSuffix(string(b), "Control file syntax OK\n") || st.Mode().Perm() != 0o600 {
					t.Errorf("kept %q, mode %v", b, st.Mode())
				}
			}
		})
	}
}
