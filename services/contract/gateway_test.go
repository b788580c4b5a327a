package contract

import (
	"encoding/json"
	"strings"
	"testing"
)

// The gateway's key is a secret like properties.key: redacted in every
// answer, kept when posted back redacted, sealed with the others, and
// the original is never changed through a copy.
func TestGatewayKeyIsASecret(t *testing.T) {
	const pem = "-----BEGIN OPENSSH PRIVATE KEY-----\ngw\n-----END OPENSSH PRIVATE KEY-----\n"
	stored := Config{Properties: Properties{Key: "/root/k", Gateway: &Gateway{Host: "10.0.0.9", Key: pem}}}
	red := stored.Redact()
	b, _ := json.Marshal(red)
	if strings.Contains(string(b), "OPENSSH") {
		t.Fatalf("redacted config shows the gateway's key: %s", b)
	}
	if red.Properties.Gateway.Key != Redacted || red.Properties.Gateway.Host != "10.0.0.9" {
		t.Fatalf("redacted gateway: %+v", red.Properties.Gateway)
	}
	if stored.Properties.Gateway.Key != pem {
		t.Fatal("Redact changed the original")
	}
	back := red.Clone()
	back.KeepSecrets(stored)
	if back.Properties.Gateway.Key != pem {
		t.Fatalf("gateway key not kept: %q", back.Properties.Gateway.Key)
	}
	sealed, err := stored.MapSecrets(func(s string) (string, error) { return "sealed:" + s, nil })
	if err != nil || sealed.Properties.Gateway.Key != "sealed:"+pem || stored.Properties.Gateway.Key != pem {
		t.Fatalf("MapSecrets: %v %q", err, sealed.Properties.Gateway.Key)
	}
}

// A config that gains a gateway, or loses one, compares its secrets with
// the stored config's by name without meeting a missing one.
func TestGatewaySecretsWithoutGateway(t *testing.T) {
	with := Config{Properties: Properties{Gateway: &Gateway{Host: "10.0.0.9", Key: Redacted}}}
	without := Config{Properties: Properties{Root: "pw"}}
	for _, pair := range [][2]Config{{with, without}, {without, with}} {
		posted, stored := pair[0].Clone(), pair[1]
		for name, s := range posted.Properties.Secrets() {
			_ = *s == Redacted && *stored.Properties.Secrets()[name] == ""
		}
		posted.KeepSecrets(stored)
	}
	with.KeepSecrets(without)
	if with.Properties.Gateway.Key != "" {
		t.Fatalf("a redaction marker with nothing stored kept %q", with.Properties.Gateway.Key)
	}
	if got := without.Properties.Secrets()["gateway.key"]; got == nil || *got != "" {
		t.Fatal("no gateway: gateway.key must read empty")
	}
}

func TestGatewayDefaults(t *testing.T) {
	for _, tc := range []struct {
		g          Gateway
		user, addr string
	}{
		{Gateway{Host: "10.0.0.9"}, "root", "10.0.0.9:22"},
		{Gateway{Host: "10.0.0.9", User: "jump", Port: 2222}, "jump", "10.0.0.9:2222"},
	} {
		if tc.g.LoginUser() != tc.user || tc.g.Addr() != tc.addr {
			t.Errorf("%+v: %s %s", tc.g, tc.g.LoginUser(), tc.g.Addr())
		}
	}
}
