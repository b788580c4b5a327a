package contract

import (
	"encoding/json"
	"fmt"
	"net/netip"
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

// Webhooks may not reach the engine's machine or what only it reaches,
// unless the operator allows the network: the address is refused whether
// it is written as IPv4, IPv6 or IPv4-mapped IPv6.
func TestWebhookPolicy(t *testing.T) {
	own := func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("192.0.2.10")} }
	def := WebhookPolicy{Own: own}
	loop := WebhookPolicy{Own: own, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	cases := []struct {
		url    string
		policy WebhookPolicy
		want   string // "" for allowed
	}{
		{"https://hooks.example/x", def, ""},
		{"http://10.1.2.3:9000/hook", def, ""},
		{"http://[2001:db8::1]/hook", def, ""},
		{"http://127.0.0.1:2812/", def, "127.0.0.1 is a loopback address; allow its network with serve --webhook-allow"},
		{"http://127.9.9.9/", def, "loopback"},
		{"http://[::1]:9/", def, "loopback"},
		{"http://[::ffff:127.0.0.1]/", def, "127.0.0.1 is a loopback address"},
		{"http://169.254.169.254/latest/meta-data/", def, "169.254.169.254 is a link-local address"},
		{"http://[fe80::1%25eth0]/", def, "fe80::1 is a link-local address"},
		{"http://0.0.0.0:2812/", def, "unspecified"},
		{"http://0.1.2.3/", def, "unspecified"},
		{"http://[::]/", def, "unspecified"},
		{"http://224.0.0.1/", def, "multicast"},
		{"http://255.255.255.255/", def, "broadcast"},
		{"http://192.0.2.10:50000/mirror/", def, "192.0.2.10 is one of the engine's own addresses"},
		{"http://127.0.0.1:9000/hook", loop, ""},
		{"http://[::1]:9/", loop, "loopback"},
		{"http://169.254.169.254/", loop, "link-local"},
		{"ftp://hooks.example/", def, "must be an http:// or https:// URL"},
		{"http:///nohost", def, "must be an http:// or https:// URL"},
		{"://bad", def, "must be an http:// or https:// URL"},
	}
	for _, c := range cases {
		err := c.policy.CheckURL(c.url)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.url, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want %q", c.url, err, c.want)
		}
	}
}

func TestParseNetworks(t *testing.T) {
	got, err := ParseNetworks(" 127.0.0.0/8, ::1,10.0.0.7/16,::ffff:169.254.0.0/112")
	want := []string{"127.0.0.0/8", "::1/128", "10.0.0.0/16", "169.254.0.0/16"}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	if _, err := ParseNetworks("127.0.0.0/8,localhost"); err == nil || !strings.Contains(err.Error(), `"localhost" is not a network`) {
		t.Fatalf("a host name: %v", err)
	}
}
