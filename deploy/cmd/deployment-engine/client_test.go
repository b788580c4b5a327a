package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const testToken = "cli-test-token-0123456789"

// startEngine runs the real engine on a temp data dir and points the
// client commands at it.
func startEngine(t *testing.T) (dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	t.Cleanup(serveOn(t, dataDir))
	return dataDir
}

type result struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Loopback addresses only: the engine never contacts them with --check=false.
const goodConfig = `{
  "components": {"nats": ["127.0.0.2", "127.0.0.3"], "web": ["127.0.0.2"]},
  "properties": {"catalog": "starter", "domain": "test.local", "home": "127.0.0.1",
                 "root": "s3cret-root-pw", "checkdisk": 0, "adduser": 0}
}`

func TestCLIConfigAgainstEngine(t *testing.T) {
	startEngine(t)

	r := cli(t, "config", "get")
	if r.code != exitFailed || !strings.Contains(r.stderr, "no config") {
		t.Fatalf("config get before any config: %+v", r)
	}

	r = cli(t, "config", "set", writeFile(t, goodConfig), "--check=false")
	if r.code != exitOK || !strings.Contains(r.stdout, "config stored") {
		t.Fatalf("config set: %+v", r)
	}

	r = cli(t, "config", "get")
	if r.code != exitOK || strings.Contains(r.stdout, "s3cret") || !strings.Contains(r.stdout, `"root": "<redacted>"`) || !strings.Contains(r.stdout, "127.0.0.3") {
		t.Fatalf("config get: %+v", r)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil {
		t.Fatalf("config get is not JSON: %v\n%s", err, r.stdout)
	}

	// --json: the engine's answer, as JSON.
	r = cli(t, "config", "--json", "set", "--check=false", writeFile(t, r.stdout))
	var rep struct{ Stored, Checked bool }
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil || !rep.Stored || rep.Checked {
		t.Fatalf("config set --json of the redacted config: %+v", r)
	}

	// A bad config: the server's message, then each problem on its own line.
	bad := `{"components": {"nats": ["127.0.0.2", "127.0.0.300"], "bogus": ["127.0.0.4"]},
	         "properties": {"catalog": "starter", "home": "127.0.0.1", "root": "x"}}`
	r = cli(t, "config", "set", writeFile(t, bad), "--check=false")
	if r.code != exitFailed {
		t.Fatalf("bad config: exit %d, want 1: %+v", r.code, r)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if !strings.Contains(lines[0], "HTTP 400") {
		t.Errorf("first line should carry the server's message: %q", lines[0])
	}
	for _, want := range []string{"components.nats[1]: not an IPv4 address (nats on 127.0.0.300)", "components.bogus:", "properties.domain:"} {
		found := false
		for _, l := range lines[1:] {
			if strings.Contains(l, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem line with %q in:\n%s", want, r.stderr)
		}
	}

	// Wrong token: exit 4, saying so.
	t.Setenv("DE_API_TOKEN", "wrong")
	r = cli(t, "config", "get")
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "refused the API token") {
		t.Fatalf("wrong token: %+v", r)
	}
}

func TestCLITokenFromDataDir(t *testing.T) {
	startEngine(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api-token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DE_API_TOKEN", "")
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false", "--data", dir); r.code != exitOK {
		t.Fatalf("token from --data: %+v", r)
	}
	if r := cli(t, "config", "get", "--data", t.TempDir()); r.code != exitUnreachable || !strings.Contains(r.stderr, "no API token") {
		t.Fatalf("no token anywhere: %+v", r)
	}
}

func TestCLIUsageAndUnreachable(t *testing.T) {
	t.Setenv("DE_API_TOKEN", testToken)
	for _, args := range [][]string{
		{"config"}, {"config", "frob"}, {"config", "set"}, {"restart", "nats"}, {"stop"},
		{"hardware", "nats"}, {"scale", "web"}, {"logs", "a", "b"}, {"status", "extra"}, {"deploy", "--nope"},
		{"config", "set", filepath.Join(t.TempDir(), "missing.json")},
	} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	t.Setenv("DE_SERVER", "http://"+addr)
	if r := cli(t, "status"); r.code != exitUnreachable || !strings.Contains(r.stderr, "cannot reach the engine") {
		t.Fatalf("closed port: %+v", r)
	}
	if r := cli(t, "help"); r.code != 0 {
		t.Fatalf("help: %+v", r)
	}
}

// fakeEngine answers the routes other services serve, as SPEC shapes them:
// the narrow boundary between the client and the API.
func fakeEngine(t *testing.T, status string, deployOK bool) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /deployment-engine/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `[{"Comp":"nats","Ip":"127.0.0.2","Cpu":"1.18958%%","Mem":"81.74%%","Disk":"8%%","Status":"RUNNING"},
		                 {"Comp":"web","Ip":"127.0.0.3","Cpu":"0.5%%","Mem":"20%%","Disk":"9%%","Status":%q}]`, status)
	})
	mux.HandleFunc("PUT /deployment-engine/{verb}", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["name"] != "nats" || b["ip"] != "127.0.0.2" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"no component nats on that IP"}`)
		}
	})
	mux.HandleFunc("POST /deployment-engine/deploy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		fmt.Fprint(w, `{"id":"d-1"}`)
	})
	final := "succeeded"
	if !deployOK {
		final = "failed"
	}
	mux.HandleFunc("GET /deployment-engine/deployments/d-1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if r.URL.Query().Get("steps") != "0" {
			t.Errorf("the stream is opened without ?steps=0: %s", r.URL)
		}
		fmt.Fprint(w, "event: deployment\ndata: {\"id\":\"d-1\",\"state\":\"running\",\"total\":2,\"counts\":{\"pending\":2}}\n\n")
		fmt.Fprint(w, "event: step\ndata: {\"id\":\"a\",\"node\":\"127.0.0.2\",\"component\":\"nats\",\"state\":\"succeeded\"}\n\n")
		fmt.Fprint(w, "event: log\ndata: {\"node\":\"127.0.0.2\",\"component\":\"nats\",\"step\":\"a\",\"seq\":1,\"line\":\"Setting up nats-server\"}\n\n")
		fmt.Fprintf(w, "event: step\ndata: {\"id\":\"b\",\"node\":\"127.0.0.3\",\"component\":\"web\",\"state\":%q}\n\n", final)
		fmt.Fprintf(w, "event: finished\ndata: {\"id\":\"d-1\",\"state\":%q,\"changed\":2}\n\n", final)
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-1", func(w http.ResponseWriter, r *http.Request) {
		counts := `{"succeeded":2}`
		if !deployOK {
			counts = `{"succeeded":1,"failed":1}`
		}
		switch q := r.URL.Query(); {
		case q.Get("steps") == "0":
			fmt.Fprintf(w, `{"id":"d-1","state":%q,"changed":2,"total":2,"counts":%s}`, final, counts)
		case q.Get("steps") == "failed" && q.Get("offset") == "0":
			fmt.Fprintf(w, `{"id":"d-1","state":%q,"changed":2,"total":2,"counts":%s,"matched":1,"steps":[{"id":"b","node":"127.0.0.3","component":"web","action":"install","state":"failed","attempt":3,"error":"apt-get failed"}]}`, final, counts)
		default:
			t.Errorf("the deployment read whole, or with an unexpected query: %s", r.URL)
			http.Error(w, "{}", 400)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)
}

func TestCLIStatusExitCodes(t *testing.T) {
	fakeEngine(t, "RUNNING", true)
	r := cli(t, "status")
	if r.code != exitOK || !strings.Contains(r.stdout, "COMPONENT") || !strings.Contains(r.stdout, " 1.2% ") || !strings.Contains(r.stdout, "2 running, 0 down") {
		t.Fatalf("all running: %+v", r)
	}
	fakeEngine(t, "DOWN", true)
	if r := cli(t, "status"); r.code != exitUnhealthy || !strings.Contains(r.stdout, "1 down") {
		t.Fatalf("one down: %+v", r)
	}
	// --json keeps the API's own strings.
	if r := cli(t, "status", "--json"); r.code != exitUnhealthy || !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stdout, "1.18958%") {
		t.Fatalf("one down, --json: %+v", r)
	}
	if r := cli(t, "restart", "nats", "127.0.0.2"); r.code != exitOK || !strings.Contains(r.stdout, "restarted nats on 127.0.0.2") {
		t.Fatalf("restart: %+v", r)
	}
	if r := cli(t, "stop", "nats", "127.0.0.9"); r.code != exitFailed || !strings.Contains(r.stderr, "no component nats on that IP") {
		t.Fatalf("stop on a wrong IP: %+v", r)
	}
}

func TestCLIDeployFollow(t *testing.T) {
	fakeEngine(t, "RUNNING", true)
	r := cli(t, "deploy", "--follow")
	if r.code != exitOK {
		t.Fatalf("succeeded deployment: %+v", r)
	}
	if !strings.Contains(r.stdout, "127.0.0.2 nats | Setting up nats-server") {
		t.Errorf("log line not on stdout: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "] 1/2 steps") || !strings.Contains(r.stderr, "[##############################] 2/2 steps") || !strings.Contains(r.stderr, "d-1 succeeded") {
		t.Errorf("progress not on stderr: %q", r.stderr)
	}

	fakeEngine(t, "RUNNING", false)
	r = cli(t, "deploy", "--follow")
	if r.code != exitFailed || !strings.Contains(r.stderr, "failed: 127.0.0.3 web install, attempt 3: apt-get failed") {
		t.Fatalf("failed deployment: %+v", r)
	}
	r = cli(t, "deploy", "--follow", "--json")
	if r.code != exitFailed {
		t.Fatalf("failed deployment --json: %+v", r)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("--json line is not JSON: %q", l)
		}
	}
	if r := cli(t, "deploy"); r.code != exitOK || !strings.Contains(r.stdout, "d-1") {
		t.Fatalf("deploy without --follow: %+v", r)
	}
}

func TestPercentRoundsForTheTable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"12.3457%", "12.3%"},
		{"0.0400211%", "0.0%"},
		{"99.96%", "100.0%"},
		{"5%", "5.0%"},
		{"N/A", "N/A"},
		{"", "-"},
		{"abc%", "abc%"},
		{"NaN%", "NaN%"},
	} {
		if got := percent(tc.in); got != tc.want {
			t.Errorf("percent(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// certificates prints a table of the engine's certificates, marks those
// near their end, and passes the engine's JSON through with --json.
func TestCLICertificates(t *testing.T) {
	now := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /deployment-engine/certificates", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"no token"}`)
			return
		}
		fmt.Fprintf(w, `{"v":1,"certificates":[
			{"name":"agents-ca","subject":"CN=deployment-engine,O=deployment-engine","not_after":%q,"seconds_left":1,"source":"made"},
			{"name":"api","subject":"CN=api.example","not_after":%q,"seconds_left":1,"source":"given"},
			{"name":"agents-listener","subject":"CN=deployment-engine nats","not_after":%q,"seconds_left":-1,"source":"made"}]}`,
			now.Add(3650*24*time.Hour+time.Hour).Format(time.RFC3339), now.Add(20*24*time.Hour+time.Hour).Format(time.RFC3339),
			now.Add(-time.Hour).Format(time.RFC3339))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)

	r := cli(t, "certificates")
	if r.code != exitOK {
		t.Fatalf("%+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "NAME SUBJECT EXPIRES DAYS LEFT" {
		t.Fatalf("table:\n%s", r.stdout)
	}
	date := `\d{4}-\d\d-\d\d \d\d:\d\d`
	for i, want := range []string{
		`^agents-ca +CN=deployment-engine,O=deployment-engine +` + date + ` +3650$`,
		`^api +CN=api\.example +` + date + ` +20 !$`,
		`^agents-listener +CN=deployment-engine nats +` + date + ` +EXPIRED$`,
	} {
		if !regexp.MustCompile(want).MatchString(lines[i+1]) {
			t.Errorf("line %d %q, want %s", i+1, lines[i+1], want)
		}
	}
	if r := cli(t, "certificates", "--json"); r.code != exitOK || !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stdout, `"given"`) {
		t.Fatalf("--json: %+v", r)
	}
	if r := cli(t, "certificates", "extra"); r.code != exitUsage {
		t.Fatalf("an argument: %+v", r)
	}
	t.Setenv("DE_API_TOKEN", "wrong-token-0123456789")
	if r := cli(t, "certificates"); r.code == exitOK {
		t.Fatalf("a refused token: %+v", r)
	}
}

// certificates rotate NAME posts the rotation and says what is served
// now, and for the agents' CA which agents missed it (on stderr); the
// engine's refusal is its error, exit 1.
func TestCLICertificatesRotate(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deployment-engine/certificates/{name}/rotate", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("name") {
		case "agents-ca":
			w.WriteHeader(202)
			fmt.Fprint(w, `{"v":1,"certificate":{"name":"agents-ca","serial":"3c","not_after":"2036-01-01T00:00:00Z"},"previous_serial":"1a",`+
				`"agents_updated":["10.0.0.1"],"agents_missed":[{"node":"10.0.0.2","error":"no agent answers"}]}`)
			return
		case "agents-listener":
			w.WriteHeader(409)
			fmt.Fprint(w, `{"error":"certificate agents-listener is given by --tls-cert"}`)
			return
		}
		w.WriteHeader(202)
		fmt.Fprintf(w, `{"v":1,"certificate":{"name":%q,"serial":"2b","not_after":"2036-01-01T00:00:00Z"},"previous_serial":"1a"}`, r.PathValue("name"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)

	if r := cli(t, "certificates", "rotate", "api"); r.code != exitOK || !strings.Contains(r.stdout, "api issued again: serial 2b (was 1a)") {
		t.Fatalf("rotate api: %+v", r)
	}
	if r := cli(t, "certificates", "rotate", "agents-ca"); r.code != exitOK || !strings.Contains(r.stdout, "agents-ca issued again: serial 3c") ||
		!strings.Contains(r.stdout, "1 agents trust the new CA alone") || !strings.Contains(r.stderr, "agent 10.0.0.2: no agent answers") ||
		!strings.Contains(r.stderr, "the next deploy gives it to them") {
		t.Fatalf("rotate the agents' CA: %+v", r)
	}
	if r := cli(t, "certificates", "rotate", "agents-listener"); r.code != exitFailed || !strings.Contains(r.stderr, "--tls-cert") {
		t.Fatalf("a refused rotation: %+v", r)
	}
	if r := cli(t, "certificates", "rotate"); r.code != exitUsage {
		t.Fatalf("no name: %+v", r)
	}
}

func TestPrintableDropsControlCharacters(t *testing.T) {
	if got := printable("CN=a\x1b[31mred\x07\tb"); got != "CN=a[31mredb" {
		t.Errorf("printable = %q", got)
	}
}
