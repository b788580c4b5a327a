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
