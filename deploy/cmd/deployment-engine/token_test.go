package main

import (
	"regexp"
	"testing"
)

// token add --role makes a token of that role; list shows it; a role
// that does not exist is a usage error.
func TestTokenRoles(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{{"add", "grafana", "--role", "read"}, {"add", "ci"}} {
		if r := cli(t, append([]string{"token"}, append(args, "--data", data)...)...); r.code != exitOK || r.stdout == "" {
			t.Fatalf("token %v: %+v", args, r)
		}
	}
	r := cli(t, "token", "list", "--data", data)
	for _, want := range []string{`(?m)^grafana\s+read\s+valid$`, `(?m)^ci\s+write\s+valid$`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("token list has no line %s:\n%s", want, r.stdout)
		}
	}
	if r := cli(t, "token", "add", "x", "--role", "admin", "--data", data); r.code != exitUsage || !regexp.MustCompile(`read or write`).MatchString(r.stderr) {
		t.Errorf("--role admin: %+v", r)
	}
}
