package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// stubCompiled keeps compiled packages as files in dir, without checking
// them (the release store's checks are its own tests'); node ip's token
// is "tok-<ip>".
type stubCompiled struct{ dir string }

func (s stubCompiled) CompiledFile(_ context.Context, fp, osKey string) (string, error) {
	p := filepath.Join(s.dir, fp, osKey)
	_, err := os.Stat(p)
	return p, err
}

func (s stubCompiled) KeepCompiled(ctx context.Context, fp, osKey string, r io.Reader) (int, any) {
	if _, err := s.CompiledFile(ctx, fp, osKey); err == nil {
		return 200, contract.CompiledKept{Kept: fp + "/" + osKey, State: "kept already"}
	}
	b, _ := io.ReadAll(r)
	_ = os.MkdirAll(filepath.Join(s.dir, fp), 0o755)
	if err := os.WriteFile(filepath.Join(s.dir, fp, osKey), b, 0o644); err != nil {
		return 500, contract.ErrorBody{Error: err.Error()}
	}
	return 201, contract.CompiledKept{Kept: fp + "/" + osKey, State: "kept"}
}

func (s stubCompiled) UploadToken(ip string) string { return "tok-" + ip }

// Nodes fetch compiled packages without a token, and put one only with
// their node's upload token; the API's own token is no upload token.
func TestCompiledPackages(t *testing.T) {
	const admin = "admin-token-0123456789"
	h, err := New(Options{Token: admin, Compiled: stubCompiled{t.TempDir()}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	const path = "/compiled/0123456789abcdef/debian-12-x86_64.tgz"
	do := func(method, p string, hdr map[string]string, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+p, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	node := func(ip, tok string) map[string]string {
		return map[string]string{"X-DE-Node": ip, "Authorization": "Bearer " + tok}
	}
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		code               int
		want               string
	}{
		{"not there yet", "GET", path, nil, "", 404, "no such compiled package"},
		{"no token", "PUT", path, nil, "x", 403, "upload token"},
		{"the API's token", "PUT", path, map[string]string{"Authorization": "Bearer " + admin}, "x", 403, "upload token"},
		{"another node's token", "PUT", path, node("10.0.0.2", "tok-10.0.0.1"), "x", 403, "upload token"},
		{"not an IP", "PUT", path, node("node-1", "tok-node-1"), "x", 403, "upload token"},
		{"no os", "PUT", "/compiled/0123456789abcdef", node("10.0.0.1", "tok-10.0.0.1"), "x", 400, "/compiled/<fingerprint>/<os>.tgz"},
		{"not .tgz", "PUT", "/compiled/0123456789abcdef/debian", node("10.0.0.1", "tok-10.0.0.1"), "x", 400, "<os>.tgz"},
		{"kept", "PUT", path, node("10.0.0.1", "tok-10.0.0.1"), "compiled", 201, `"state":"kept"`},
		{"served", "GET", path, nil, "", 200, "compiled"},
		{"kept already", "PUT", path, node("10.0.0.3", "tok-10.0.0.3"), "other", 200, "kept already"},
		{"the first stays", "GET", path, nil, "", 200, "compiled"},
		{"read-only otherwise", "POST", path, nil, "", 405, "fetched (GET) and put by nodes (PUT)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.path, tc.hdr, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%s %s = %d %q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
			}
		})
	}
	if code, body := do("HEAD", path, nil, ""); code != 200 || body != "" {
		t.Fatalf("HEAD = %d %q", code, body)
	}
	if code, _ := do("HEAD", "/compiled/0123456789abcdef/ubuntu-22.04-x86_64.tgz", nil, ""); code != 404 {
		t.Fatalf("HEAD of another OS = %d, want 404", code)
	}
}
