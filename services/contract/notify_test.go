package contract

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWebhookSecretsRedactedAndKept(t *testing.T) {
	stored := Config{Properties: Properties{Root: "pw", Notify: &NotifyConfig{Webhooks: []Webhook{
		{URL: "http://127.0.0.1:9/hook", Secret: "s3cret"},
		{URL: "http://127.0.0.1:9/T0/B0/xyz", Format: "slack"},
	}}}}
	red := stored.Redact()
	b, _ := json.Marshal(red)
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "xyz") || strings.Contains(string(b), `"pw"`) {
		t.Fatalf("redacted config shows a secret: %s", b)
	}
	if !strings.Contains(string(b), "http://127.0.0.1:9/hook") {
		t.Fatalf("a plain webhook's URL is not a secret: %s", b)
	}
	if stored.Properties.Notify.Webhooks[0].Secret != "s3cret" {
		t.Fatal("Redact changed the original")
	}
	// Posting the redacted config back keeps every secret.
	back := red.Clone()
	back.KeepSecrets(stored)
	if back.Properties.Notify.Webhooks[0].Secret != "s3cret" || back.Properties.Notify.Webhooks[1].URL != "http://127.0.0.1:9/T0/B0/xyz" || back.Properties.Root != "pw" {
		t.Fatalf("secrets not kept: %+v", back.Properties.Notify.Webhooks)
	}
}

func TestHealConfigForms(t *testing.T) {
	for in, ok := range map[string]bool{
		`false`: true, `true`: true, `{"enabled": false}`: true, `{"off": ["web"], "backoff_s": 2, "meltdown": {"minimum_down": 0}}`: true,
		`{"bogus": 1}`: false, `{"backoff_s": -1}`: false, `{"meltdown": {"percent_threshold": 120}}`: false, `"yes"`: false,
	} {
		var h HealConfig
		if err := json.Unmarshal([]byte(in), &h); (err == nil) != ok {
			t.Errorf("%s: err %v", in, err)
		}
	}
}
