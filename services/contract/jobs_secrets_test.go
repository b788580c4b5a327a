package contract

import (
	"encoding/json"
	"strings"
	"testing"
)

// A BOSH job's secret properties come back redacted, and posting the
// marker back keeps the stored value.
func TestJobSecrets(t *testing.T) {
	var stored Config
	if err := json.Unmarshal([]byte(`{"components": {}, "properties": {"jobs": {"nats": {"nats": {"user": "n", "password": "pw1"},
		"clients": [{"name": "cc", "secret": "s3"}], "tls": {"private_key": "PEM"}}}}}`), &stored); err != nil {
		t.Fatal(err)
	}
	red := stored.Redact()
	b, _ := json.Marshal(red)
	for _, leak := range []string{"pw1", "s3", "PEM"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("redacted config shows %q: %s", leak, b)
		}
	}
	if !strings.Contains(string(b), `"user":"n"`) {
		t.Errorf("a plain property was redacted: %s", b)
	}
	if stored.Properties.Jobs["nats"].(map[string]any)["nats"].(map[string]any)["password"] != "pw1" {
		t.Fatal("Redact changed the stored config")
	}
	var back Config
	_ = json.Unmarshal(b, &back)
	back.KeepSecrets(stored)
	nats := back.Properties.Jobs["nats"].(map[string]any)
	if nats["nats"].(map[string]any)["password"] != "pw1" || nats["clients"].([]any)[0].(map[string]any)["secret"] != "s3" {
		t.Errorf("secrets not kept: %v", nats)
	}
}

// The global tree's secrets are redacted, kept when posted back redacted,
// and taken out of text, as the jobs' are.
func TestGlobalSecrets(t *testing.T) {
	stored := Config{Properties: Properties{Global: map[string]any{"nats": map[string]any{"password": "GlobalPw-77", "user": "nats"}}}}
	red := stored.Redact()
	if red.Properties.Global["nats"].(map[string]any)["password"] != Redacted || red.Properties.Global["nats"].(map[string]any)["user"] != "nats" {
		t.Fatalf("redacted: %v", red.Properties.Global)
	}
	if stored.Properties.Global["nats"].(map[string]any)["password"] != "GlobalPw-77" {
		t.Fatal("Redact changed the stored config")
	}
	back := red
	back.KeepSecrets(stored)
	if back.Properties.Global["nats"].(map[string]any)["password"] != "GlobalPw-77" {
		t.Errorf("posted back redacted, the secret was not kept: %v", back.Properties.Global)
	}
	if got := stored.OutputRedactor().Redact("pw GlobalPw-77"); got != "pw "+Redacted {
		t.Errorf("text: %q", got)
	}
}
