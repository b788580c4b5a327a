package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// token add --role and --clusters make a token of that role and reach;
// list shows both; a role or a cluster that cannot be is a usage error.
func TestTokenRoles(t *testing.T) {
	data := t.TempDir()
	var secrets []string
	for _, args := range [][]string{
		{"add", "grafana", "--role", "read"},
		{"add", "ci"},
		{"add", "oncall", "--role", "operate", "--clusters", "prod,stage"},
		{"add", "root", "--role", "admin"},
		{"add", "legacy", "--role", "write", "--clusters", "default"},
	} {
		r := cli(t, append([]string{"token"}, append(args, "--data", data)...)...)
		if r.code != exitOK || r.stdout == "" {
			t.Fatalf("token %v: %+v", args, r)
		}
		secrets = append(secrets, strings.TrimSpace(r.stdout))
		if strings.Contains(r.stderr, strings.TrimSpace(r.stdout)) {
			t.Errorf("token %v: the secret is on stderr too", args)
		}
	}
	r := cli(t, "token", "list", "--data", data)
	for _, want := range []string{
		`(?m)^NAME\s+ROLE\s+CLUSTERS\s+STATE$`,
		`(?m)^grafana\s+read\s+\*\s+valid$`,
		`(?m)^ci\s+deploy\s+\*\s+valid$`,
		`(?m)^oncall\s+operate\s+prod,stage\s+valid$`,
		`(?m)^root\s+admin\s+\*\s+valid$`,
		`(?m)^legacy\s+admin\s+default\s+valid$`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("token list has no line %s:\n%s", want, r.stdout)
		}
	}
	file, err := os.ReadFile(filepath.Join(data, "api-tokens"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(r.stdout, s) || strings.Contains(string(file), s) {
			t.Error("a token's secret is listed or kept in clear")
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "root"}, `want read, operate, deploy or admin`},
		{[]string{"--clusters", "Prod"}, `not a cluster name`},
		{[]string{"--clusters", "a,,b"}, `not a cluster name`},
		{[]string{"--clusters", "a,a"}, `named twice`},
	} {
		args := append([]string{"token", "add", "x", "--data", data}, tc.args...)
		if r := cli(t, args...); r.code != exitUsage || !regexp.MustCompile(tc.want).MatchString(r.stderr) {
			t.Errorf("%v: %+v", tc.args, r)
		}
	}
}
