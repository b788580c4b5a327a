package contract

import "testing"

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
