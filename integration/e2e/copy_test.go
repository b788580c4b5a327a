package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/services/contract"
)

// A copy of a 3 MiB file to the bed's 4 nodes, 2 at a time, from the
// command line: a table of 4 rows, each with the file's SHA-256 as the
// node reports it; each node has the file, its bytes and its mode; a path
// into the engine's own state is refused naming it; the audit holds the
// path, the nodes and the checksum, never the content.
func TestCopyToNodes(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", catalogDir(t))
	defer func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", tail(e.Log(), 60))
		}
	}()
	cfg := config("e2e", map[string][]string{"alpha": ips(0, 1, 2, 3)})
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", cfg); code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	content := make([]byte, 3<<20)
	_, _ = rand.Read(content)
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	file := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	const target = "/opt/e2e-copy/data.bin"
	defer func() {
		for _, n := range bed.Nodes {
			nodeSh(t, n, "rm -rf /opt/e2e-copy")
		}
	}()

	cli := exec.Command(harness.Binary(t), "copy", "alpha", "--to", target, file, "--mode", "0640", "--max-in-flight", "2")
	cli.Env = append(cli.Environ(), "DE_SERVER="+e.URL(), "DE_API_TOKEN="+e.Token)
	var stdout, stderr strings.Builder
	cli.Stdout, cli.Stderr = &stdout, &stderr
	err := cli.Run()
	t.Logf("deployment-engine copy alpha --to %s:\n%s%s", target, stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	rows := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(rows) != 5 || !strings.HasPrefix(rows[0], "NODE") {
		t.Fatalf("want a header and 4 rows:\n%s", stdout.String())
	}
	for _, row := range rows[1:] {
		if f := strings.Fields(row); len(f) != 4 || f[1] != hexSum || f[2] != "3145728" || f[3] != "ok" {
			t.Errorf("row %q", row)
		}
	}
	for _, n := range bed.Nodes[:4] {
		if got := nodeSh(t, n, "sha256sum < "+target+" | cut -d' ' -f1; stat -c %a "+target+"; [ -e "+target+".de-tmp ] && echo tmp || echo none"); got != hexSum+"\n640\nnone" {
			t.Errorf("%s has %q, want the file's checksum, mode 640 and no temporary file", n.IP, got)
		}
	}

	code, body := e.Do("POST", "/deployment-engine/copy", map[string]any{"nodes": []string{bed.Nodes[0].IP},
		"to": "/var/lib/deployment-engine/owner", "content_base64": base64.StdEncoding.EncodeToString([]byte("e-forged"))})
	if code != 400 || !strings.Contains(string(body), "/var/lib/deployment-engine") {
		t.Errorf("a copy into the engine's state: %d %s", code, body)
	}

	code, body = e.Do("GET", "/deployment-engine/audit?action=copy", nil)
	var entries []contract.AuditEntry
	if err := json.Unmarshal(body, &entries); code != 200 || err != nil || len(entries) != 2 {
		t.Fatalf("audit: %d %s", code, body)
	}
	if strings.Contains(string(body), base64.StdEncoding.EncodeToString(content[:48])) {
		t.Error("the file's content is in the audit")
	}
	if en := entries[0]; en.Object != "to "+target || en.Code != 202 || en.Deployment == "" || !strings.Contains(en.Detail, hexSum) ||
		!strings.Contains(en.Detail, bed.Nodes[3].IP) || en.Actor != contract.ActorAdmin {
		t.Errorf("audit entry: %+v", en)
	}
	if en := entries[1]; en.Object != "copy" || en.Code != 400 {
		t.Errorf("refused copy's entry: %+v", en)
	}
}
