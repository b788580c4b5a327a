package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deployment-engine/engine/api"
)

const token = "test-token-0123456789"

// engineUnderTest runs Serve on a data dir and returns its base URL.
func engineUnderTest(t *testing.T, dir string) (string, func()) {
	t.Helper()
	addr, stop := engineStop(t, Options{DataDir: dir,
		Build: api.BuildInfo{Version: "v-test", Commit: "c0ffee", Built: "2026-11-26T00:00:00Z"}})
	return "http://" + addr, stop
}

func do(t *testing.T, method, url, body string, auth bool) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func manual(t *testing.T) string {
	b, err := os.ReadFile("testdata/manual.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigRoutes(t *testing.T) {
	dir := t.TempDir()
	base, stop := engineUnderTest(t, dir)
	E := base + "/deployment-engine"

	if code, _, _ := do(t, "GET", E+"/config", "", true); code != 404 {
		t.Fatalf("GET before any config: %d, want 404", code)
	}
	if code, _, _ := do(t, "GET", E+"/deploy", "", true); code != 403 {
		t.Fatalf("deploy before any config: %d, want 403", code)
	}
	// The manual's own example, stored without contacting its addresses.
	code, body, hdr := do(t, "POST", E+"/config?check=0", manual(t), true)
	if code != 201 {
		t.Fatalf("POST manual example: %d %s", code, body)
	}
	if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Errorf("content type %q", hdr.Get("Content-Type"))
	}
	code, body, _ = do(t, "GET", E+"/config", "", true)
	if code != 200 {
		t.Fatalf("GET config: %d %s", code, body)
	}
	for _, secret := range []string{`"123456"`, `"password":"password"`} {
		if bytes.Contains(body, []byte(secret)) {
			t.Fatalf("GET config leaks a secret (%s): %s", secret, body)
		}
	}
	var got struct {
		Components map[string][]string `json:"components"`
		Properties map[string]any      `json:"properties"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Properties["root"] != "<redacted>" || got.Properties["password"] != "<redacted>" || len(got.Components["uaa"]) != 3 || got.Properties["disksize"] != float64(15) {
		t.Fatalf("stored config wrong: %s", body)
	}

	// Posting the redacted config back keeps the secrets.
	b, _ := json.Marshal(got)
	if code, body, _ := do(t, "POST", E+"/config?check=0", string(b), true); code != 201 {
		t.Fatalf("POST redacted config back: %d %s", code, body)
	}
	// A kept secret goes to no new node: a node added with the redaction
	// marker is refused, by name; with the secrets in clear it is stored.
	got.Components["nats"] = append(got.Components["nats"], "10.10.101.200")
	b, _ = json.Marshal(got)
	code, body, _ = do(t, "POST", E+"/config?check=0", string(b), true)
	if code != 400 || !bytes.Contains(body, []byte(`"ip":"10.10.101.200"`)) || !bytes.Contains(body, []byte("properties.root")) || !bytes.Contains(body, []byte("properties.password")) {
		t.Fatalf("POST a new node with kept secrets: %d %s, want 400 naming 10.10.101.200", code, body)
	}
	got.Properties["root"], got.Properties["password"] = "123456", "password"
	b, _ = json.Marshal(got)
	if code, body, _ := do(t, "POST", E+"/config?check=0", string(b), true); code != 201 {
		t.Fatalf("POST a new node with the secrets in clear: %d %s", code, body)
	}

	// Bad bodies: 400 naming every problem.
	bad := []struct{ body, want string }{
		{`{"components":`, "malformed JSON"},
		{`{"components":{"nope":["10.10.101.1"]},"properties":{"domain":"a.b","home":"10.10.101.2","root":"x"}}`, "unknown component"},
		{`{"components":{"haproxy":["10.10.101.1","10.10.101.3"]},"properties":{"domain":"a.b","home":"10.10.101.2","root":"x"}}`, "exactly one"},
		{`{"components":{"nats":["10.10.101.999"]},"properties":{"domain":"a.b","home":"10.10.101.2","root":"x"}}`, "not an IPv4"},
		{`{"components":{"nats":["10.10.101.1","10.10.101.1"]},"properties":{"domain":"a.b","home":"10.10.101.2","root":"x"}}`, "twice"},
		{`{"components":{"nats":["10.10.101.1"]},"properties":{"home":"10.10.101.2","root":"x"}}`, "properties.domain"},
		{`{"components":{"nats":["10.10.101.1"]},"properties":{"domain":"a.b","home":"10.10.101.2","key":"/etc/shadow"}}`, "/etc/shadow is not an SSH private key"},
		{`{"components":{"nats":["10.10.101.1"]},"properties":{"domain":"a.b","home":"10.10.101.2","key":"/etc/passwd"}}`, "/etc/passwd is not an SSH private key"},
	}
	for _, tt := range bad {
		code, body, _ := do(t, "POST", E+"/config?check=0", tt.body, true)
		if code != 400 || !bytes.Contains(body, []byte(tt.want)) || !json.Valid(body) {
			t.Errorf("POST %s: %d %s, want 400 saying %q", tt.body, code, body, tt.want)
		}
		if bytes.Contains(body, []byte("root:")) {
			t.Errorf("POST %s: the error quotes the file: %s", tt.body, body)
		}
	}

	// The config's schema names the loaded catalogs' components; it needs
	// the token like every config route.
	code, body, _ = do(t, "GET", E+"/config/schema", "", true)
	var schema struct {
		Schema string `json:"$schema"`
		AllOf  []any  `json:"allOf"`
	}
	if code != 200 || json.Unmarshal(body, &schema) != nil || !strings.Contains(schema.Schema, "2020-12") ||
		!bytes.Contains(body, []byte(`"cloud_controller_ng"`)) || !bytes.Contains(body, []byte(`"haproxy"`)) || len(schema.AllOf) < 2 {
		t.Errorf("config schema: %d %.300s", code, body)
	}
	if code, _, _ := do(t, "GET", E+"/config/schema", "", false); code != 401 {
		t.Errorf("config schema without a token: %d, want 401", code)
	}

	// Auth and limits.
	if code, _, _ := do(t, "GET", E+"/config", "", false); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _, _ := do(t, "POST", E+"/config?check=0", strings.Repeat(" ", 1<<20+1), true); code != 413 {
		t.Errorf("big body: %d, want 413", code)
	}
	if code, body, _ := do(t, "GET", E+"/nope", "", true); code != 404 || !json.Valid(body) {
		t.Errorf("unknown route: %d %s", code, body)
	}
	if code, _, _ := do(t, "GET", base+"/healthz", "", false); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	// /version needs no token and says what Serve was given.
	code, body, _ = do(t, "GET", base+"/version", "", false)
	var v struct{ Version, Commit, Built string }
	if code != 200 || json.Unmarshal(body, &v) != nil || v.Version != "v-test" || v.Commit != "c0ffee" || v.Built != "2026-11-26T00:00:00Z" {
		t.Errorf("version: %d %s", code, body)
	}
	code, body, _ = do(t, "GET", base+"/metrics", "", false)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metrics are not Prometheus text: %v", err)
	}
	for _, name := range []string{"de_http_requests_total", "de_http_request_duration_seconds", "de_bus_messages_total", "de_jetstream_stream_messages"} {
		if fams[name] == nil {
			t.Errorf("metrics lack %s", name)
		}
	}
	if bytes.Contains(body, []byte("123456")) {
		t.Error("metrics leak a secret")
	}
	stop()

	// The config survives a restart.
	base, stop = engineUnderTest(t, dir)
	defer stop()
	code, body, _ = do(t, "GET", base+"/deployment-engine/config", "", true)
	if code != 200 || !bytes.Contains(body, []byte("10.10.101.200")) {
		t.Fatalf("after restart: %d %s", code, body)
	}
}
