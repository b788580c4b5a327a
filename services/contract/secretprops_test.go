package contract

import (
	"encoding/json"
	"strings"
	"testing"
)

// A property marked a secret by its place is redacted, sealed and kept
// as one named like a secret is, whatever its name, and what lies below
// it too; one not marked is left as it is.
func TestSecretProperties(t *testing.T) {
	stored := Config{Properties: Properties{
		Jobs: map[string]any{"web": map[string]any{
			"admin": map[string]any{"pw": "generated-1234", "name": "admin"},
			"tls":   map[string]any{"cert": "CERT-TEXT", "key": "KEY-TEXT"},
			"list":  []any{"a-secret-in-a-list"},
		}},
		Global:           map[string]any{"db": map[string]any{"pass": "global-gen-5678"}},
		NodeJobs:         map[string]any{"10.0.0.5": map[string]any{"web": map[string]any{"admin": map[string]any{"pw": "node-gen-9012", "name": "root"}, "password": "by-name-3456"}}},
		SecretProperties: []string{"jobs.web.admin.pw", "jobs.web.tls", "jobs.web.list", "global.db.pass", "node_jobs.10.0.0.5.web.admin.pw"},
	}}
	red := stored.Redact()
	b, _ := json.Marshal(red)
	for _, v := range []string{"generated-1234", "CERT-TEXT", "KEY-TEXT", "a-secret-in-a-list", "global-gen-5678", "node-gen-9012", "by-name-3456"} {
		if strings.Contains(string(b), v) {
			t.Errorf("redacted config holds %s: %s", v, b)
		}
	}
	if !strings.Contains(string(b), `"name":"admin"`) || !strings.Contains(string(b), `"name":"root"`) {
		t.Errorf("an unmarked property was redacted: %s", b)
	}
	if got := stored.OutputRedactor().Redact("pw generated-1234 and KEY-TEXT, node-gen-9012"); got != "pw "+Redacted+" and "+Redacted+", "+Redacted {
		t.Errorf("output redactor: %q", got)
	}
	sealed, _ := stored.MapSecrets(func(s string) (string, error) { return "sealed:" + s, nil })
	if got := sealed.Properties.Jobs["web"].(map[string]any)["admin"].(map[string]any)["pw"]; got != "sealed:generated-1234" {
		t.Errorf("sealed: %v", got)
	}
	nodeWeb := func(c Config) map[string]any {
		return c.Properties.NodeJobs["10.0.0.5"].(map[string]any)["web"].(map[string]any)
	}
	if got := nodeWeb(sealed)["admin"].(map[string]any)["pw"]; got != "sealed:node-gen-9012" {
		t.Errorf("sealed on a node: %v", got)
	}
	back := red.Clone()
	back.KeepSecrets(stored)
	if got := back.Properties.Global["db"].(map[string]any)["pass"]; got != "global-gen-5678" {
		t.Errorf("kept: %v", got)
	}
	if got := nodeWeb(back)["admin"].(map[string]any)["pw"]; got != "node-gen-9012" || nodeWeb(back)["password"] != "by-name-3456" {
		t.Errorf("kept on a node: %v", nodeWeb(back))
	}
}
