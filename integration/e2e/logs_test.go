package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
)

// logsThroughAPI checks the deployed stack's logs through the API: the
// list, each instance's install output and its runtime log fetched from
// the node by the agent, ranges, the bundle, and names that try to leave
// the store.
func logsThroughAPI(t *testing.T, e *harness.Engine, comps map[string][]string) {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/download", nil)
	var names []string
	if code != 200 || json.Unmarshal(body, &names) != nil {
		t.Fatalf("download list: %d %s", code, body)
	}
	for comp, list := range comps {
		for i := range list {
			if n := fmt.Sprintf("%s_%d.log", comp, i); !slices.Contains(names, n) {
				t.Errorf("download list %v lacks %s", names, n)
			}
		}
	}
	if len(names) == 0 || names[0] != "local.log" {
		t.Fatalf("download list %v: local.log first", names)
	}

	read := func(name string) string {
		code, body := e.Do("PUT", "/deployment-engine/download", []byte(name))
		if code != 200 {
			t.Fatalf("PUT download %s: %d %s", name, code, body)
		}
		return string(body)
	}
	local := read("local.log")
	for _, want := range []string{"config stored", "deployment"} {
		if !strings.Contains(local, want) {
			t.Errorf("local.log lacks %q:\n%s", want, tail(local, 20))
		}
	}
	// The manual's wrapped form, and a quoted name, read the same file.
	if got := read(`{ "local.log" }`); !strings.HasPrefix(got, local[:min(len(local), 200)]) {
		t.Error(`PUT { "local.log" } does not read local.log`)
	}
	// web_0's install output, and its runtime access log sent by the agent.
	_ = backendsSeen("http://" + bed.Nodes[0].IP + "/")
	deadline := time.Now().Add(30 * time.Second)
	var web string
	for time.Now().Before(deadline) {
		if web = read(`"web_0.log"`); strings.Contains(web, "[runtime /var/log/de-web/access.log]") {
			break
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(web, "install") || !strings.Contains(web, "[runtime /var/log/de-web/access.log]") || !strings.Contains(web, "GET / HTTP") {
		t.Errorf("web_0.log lacks install output or the runtime access log:\n%s", tail(web, 30))
	}

	// Ranges.
	code, part, err := harness.Request(context.Background(), e.URL(), e.Token, "GET", "/deployment-engine/logs/local.log", nil, http.Header{"Range": {"bytes=0-99"}})
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusPartialContent || string(part) != local[:100] {
		t.Errorf("range of local.log: %d, %d bytes", code, len(part))
	}

	// The bundle holds every log.
	code, raw := e.Do("GET", "/deployment-engine/logs.tar.gz", nil)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("bundle: %d, not gzip: %v", code, err)
	}
	tr := tar.NewReader(zr)
	var inTar []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		inTar = append(inTar, h.Name)
	}
	for _, n := range names {
		if !slices.Contains(inTar, n) {
			t.Errorf("bundle %v lacks %s", inTar, n)
		}
	}

	// Nothing outside the store.
	for _, bad := range []string{"../../../../etc/passwd", "/etc/passwd", "..%2f..%2fetc%2fpasswd", "local.log\x00.txt", "nope.log"} {
		code, body := e.Do("PUT", "/deployment-engine/download", []byte(bad))
		if code != 400 && code != 404 {
			t.Errorf("PUT download %q: %d %s", bad, code, body)
		}
		if strings.Contains(string(body), "root:") {
			t.Errorf("PUT download %q leaked /etc/passwd", bad)
		}
	}
	for _, bad := range []string{"..%2F..%2F..%2Fetc%2Fpasswd", "%252e%252e%252fetc%252fpasswd", "..%00local.log"} {
		code, body := e.Do("GET", "/deployment-engine/logs/"+bad, nil)
		if code != 400 && code != 404 || strings.Contains(string(body), "root:") {
			t.Errorf("GET logs/%s: %d %s", bad, code, body)
		}
	}
}
