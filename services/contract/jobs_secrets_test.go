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
