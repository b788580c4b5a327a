package main

import (
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

// copy posts the file (base64), its path, mode and the nodes; follows the
// deployment; prints NODE SHA256 SIZE RESULT, a node whose checksum is
// not the file's marked and counted failed as one whose step failed; a
// file over 4 MiB is refused before anything is sent.
func TestCLICopy(t *testing.T) {
	const sum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // "hello\n"
	var mu sync.Mutex
	var posted []map[string]any
	steps := map[string]string{
		// Every node has the file.
		"d-ok": `[{"id":"127.0.0.2/web/copy","node":"127.0.0.2","state":"succeeded","exit_code":0,"output":"` + sum + ` 6"},
			{"id":"127.0.0.3/web/copy","node":"127.0.0.3","state":"unchanged","exit_code":0,"output":"` + sum + ` 6"}]`,
		// One node's transfer failed, another has other bytes.
		"d-bad": `[{"id":"127.0.0.2/copy/copy","node":"127.0.0.2","state":"failed","error":"transfer of /etc/motd incomplete (node has \"3 abc\")"},
			{"id":"127.0.0.3/copy/copy","node":"127.0.0.3","state":"succeeded","exit_code":0,"output":"` + strings.Repeat("0", 64) + ` 6"}]`,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deployment-engine/copy", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
		id := "d-ok"
		if b["nodes"] != nil {
			id = "d-bad"
		}
		w.WriteHeader(202)
		fmt.Fprintf(w, `{"id":%q,"to":%q,"nodes":["127.0.0.2","127.0.0.3"],"size":6,"sha256":%q}`, id, b["to"], sum)
	})
	for id, st := range steps {
		state := "succeeded"
		if id == "d-bad" {
			state = "failed"
		}
		mux.HandleFunc("GET /deployment-engine/deployments/"+id+"/events", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: finished\ndata: {\"id\":%q,\"state\":%q}\n\n", id, state)
		})
		mux.HandleFunc("GET /deployment-engine/deployments/"+id, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"id":%q,"state":%q,"kind":"copy","total":2,"matched":2,"steps":%s}`, id, state, st)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_API_TOKEN", testToken)
	dir := t.TempDir()
	file := filepath.Join(dir, "motd")
	if err := os.WriteFile(file, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := cli(t, "copy", "web", "--to", "/etc/motd", file, "--mode", "0640", "--max-in-flight", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[0], "NODE") || !strings.Contains(lines[0], "SHA256") ||
		!strings.Contains(lines[1], "127.0.0.2  "+sum+"  6     ok") || !strings.HasSuffix(lines[2], "ok") {
		t.Fatalf("copy: %+v", r)
	}
	r = cli(t, "copy", "127.0.0.2,127.0.0.3", "--to", "/etc/motd", file)
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != exitFailed || len(lines) != 3 || !strings.Contains(lines[1], "127.0.0.2  -") || !strings.Contains(lines[1], "transfer of /etc/motd incomplete") ||
		!strings.HasSuffix(lines[2], "differs from the file sent") {
		t.Errorf("copy with a failed node: %+v", r)
	}
	mu.Lock()
	want := []string{
		`{"component":"web","content_base64":"aGVsbG8K","max_in_flight":"2","mode":"0640","to":"/etc/motd"}`,
		`{"content_base64":"aGVsbG8K","nodes":["127.0.0.2","127.0.0.3"],"to":"/etc/motd"}`,
	}
	for i, b := range posted {
		if s, _ := json.Marshal(b); i >= len(want) || string(s) != want[i] {
			t.Errorf("posted %s", s)
		}
	}
	mu.Unlock()

	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 4<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, "copy", "web", "--to", "/opt/big", big); r.code != exitFailed || !strings.Contains(r.stderr, "larger than 4194304 bytes") {
		t.Errorf("a file over 4 MiB: %+v", r)
	}
	for _, args := range [][]string{{"copy", "web", file}, {"copy", "--to", "/etc/motd", file}, {"copy", "web", "--to", "/x"}, {"copy", "web", "--from", "/x", "--to", "/y", dir}, {"copy", "web", "--from", "/x", "--mode", "0600", dir}} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 2 {
		t.Errorf("%d copies posted, want 2", len(posted))
	}
}
