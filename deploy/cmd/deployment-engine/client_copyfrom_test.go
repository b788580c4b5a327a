package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// copy --from posts the path and the nodes, follows the deployment,
// fetches each node's file into DIR/<ip>/<name> and prints NODE SHA256
// SIZE RESULT: a node whose step failed, a file fetched that is not the
// node's checksum, and a node name that is not an address are counted
// failed and written nowhere; a path the engine would refuse is refused
// before anything is sent.
func TestCLICopyFrom(t *testing.T) {
	good, other := []byte("root:x:0:0\n"), []byte("tampered\n")
	h := sha256.Sum256(good)
	sum := hex.EncodeToString(h[:])
	var mu sync.Mutex
	var posted []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deployment-engine/copy", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		s, _ := json.Marshal(b)
		mu.Lock()
		posted = append(posted, string(s))
		mu.Unlock()
		w.WriteHeader(202)
		fmt.Fprintf(w, `{"id":"d-1","from":%q,"nodes":["127.0.0.2","127.0.0.3","127.0.0.4"],"size":0}`, b["from"])
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: finished\ndata: {\"id\":\"d-1\",\"state\":\"failed\"}\n\n")
	})
	out := fmt.Sprintf(`%s %d`, sum, len(good))
	mux.HandleFunc("GET /deployment-engine/deployments/d-1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":"d-1","state":"failed","kind":"copy","total":4,"matched":4,"steps":[
			{"id":"127.0.0.2/web/copy","node":"127.0.0.2","state":"succeeded","output":%[1]q},
			{"id":"127.0.0.3/web/copy","node":"127.0.0.3","state":"succeeded","output":%[1]q},
			{"id":"127.0.0.4/web/copy","node":"127.0.0.4","state":"failed","error":"read /etc/passwd on 127.0.0.4: exit 2: no file at /etc/passwd"},
			{"id":"x/web/copy","node":"../..","state":"succeeded","output":%[1]q}]}`, out)
	})
	mux.HandleFunc("GET /deployment-engine/deployments/d-1/files/{ip}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("ip") {
		case "127.0.0.2":
			_, _ = w.Write(good)
		case "127.0.0.3":
			_, _ = w.Write(other)
		default:
			http.Error(w, `{"error":"no file"}`, 404)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)
	dir := t.TempDir()

	r := cli(t, "copy", "web", "--from", "/etc/passwd", dir, "--max-in-flight", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitFailed || len(lines) != 5 || !strings.HasPrefix(lines[0], "NODE") ||
		!strings.Contains(lines[1], "127.0.0.2  "+sum+"  11    ok") ||
		!strings.HasSuffix(lines[2], "the file fetched differs from the node's") ||
		!strings.Contains(lines[3], "127.0.0.4  -") || !strings.Contains(lines[3], "no file at /etc/passwd") ||
		!strings.Contains(lines[4], `the engine named the node "../.."`) {
		t.Fatalf("copy --from: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "127.0.0.2", "passwd")); err != nil || string(b) != string(good) {
		t.Errorf("the file fetched: %q %v", b, err)
	}
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		if _, err := os.Stat(filepath.Join(dir, ip)); err == nil {
			t.Errorf("%s: a file was written", ip)
		}
	}
	if r := cli(t, "copy", "127.0.0.2", "--from", "/etc/../etc/shadow", dir); r.code != exitFailed || !strings.Contains(r.stderr, `holds ".."`) {
		t.Errorf("a path with ..: %+v", r)
	}
	if r := cli(t, "copy", "127.0.0.2", "--from", "/etc/passwd", filepath.Join(dir, "none")); r.code != exitFailed || !strings.Contains(r.stderr, "not a directory") {
		t.Errorf("no such directory: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 1 || posted[0] != `{"component":"web","from":"/etc/passwd","max_in_flight":"2"}` {
		t.Errorf("posted %q", posted)
	}
}
