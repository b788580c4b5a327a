package contract

import (
	"strings"
	"testing"
)

func TestOutputRedactor(t *testing.T) {
	cfg := Config{Properties: Properties{Password: "hunter2", Root: "ab", Key: "-----BEGIN KEY-----\nxyz\n-----END KEY-----"}}
	r := cfg.OutputRedactor()
	cases := []struct{ in, want string }{
		{"login with hunter2 now", "login with " + Redacted + " now"},
		{"hunter2hunter2", Redacted + Redacted},
		{"a short secret (ab) stays: abc", "a short secret (ab) stays: abc"},
		{"one line of a key is not the key: xyz", "one line of a key is not the key: xyz"},
		{"key:\n-----BEGIN KEY-----\nxyz\n-----END KEY-----\n", "key:\n" + Redacted + "\n"},
		{"", ""},
	}
	for _, c := range cases {
		if got := r.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := (Config{}).OutputRedactor().Redact("hunter2"); got != "hunter2" {
		t.Errorf("no secrets: %q", got)
	}
	// A value the caller chose (a plan's posted config) that overlaps a
	// secret's start, and is at least as long, hides the secret with it:
	// the secret is not left in clear after the overlap, whichever value
	// is longer or comes first.
	const secret = "Zq8xK2mP9wLr4TnB"
	file := "name: x\ndb:\n  password=" + secret + "\n"
	for _, decoy := range []string{"name: x\ndb:\n  password=Z", "password=Zq8", "TnB\n", secret[3:]} {
		got := cfg.OutputRedactor(secret, decoy).Redact(file)
		if strings.Contains(got, secret[1:6]) || strings.Contains(got, secret[len(secret)-6:]) {
			t.Errorf("with %q also redacted, the secret shows: %q", decoy, got)
		}
	}
}

// Every secret Redact hides is taken out of text too: BOSH job properties
// named like secrets and webhook secrets beside the offered ones, values
// given by the caller, and an older config's; a secret that holds another
// goes whole.
func TestOutputRedactorSources(t *testing.T) {
	cfg := Config{Properties: Properties{Root: "RootPw-1",
		Jobs: map[string]any{"db": map[string]any{"admin": map[string]any{"password": "JobSecret-Q7w", "user": "admin"},
			"tls": map[string]any{"private_key": "PK-9"}}},
		Notify: &NotifyConfig{Webhooks: []Webhook{{URL: "https://hooks.example/x", Secret: "HookSecret-3"}}}}}
	older := Config{Properties: Properties{Jobs: map[string]any{"db": map[string]any{"admin": map[string]any{"password": "OldJobSecret"}}}}}
	r := cfg.OutputRedactor("AgentPass-5").Also(older)
	in := "root RootPw-1 job JobSecret-Q7w old OldJobSecret key PK-9 hook HookSecret-3 agent AgentPass-5 user admin <redacted>"
	want := "root <redacted> job <redacted> old <redacted> key <redacted> hook <redacted> agent <redacted> user admin <redacted>"
	if got := r.Redact(in); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := (Config{}).OutputRedactor("Secret-longer", "Secret").Redact("Secret-longer"); got != Redacted {
		t.Errorf("a secret holding another: %q", got)
	}
}
