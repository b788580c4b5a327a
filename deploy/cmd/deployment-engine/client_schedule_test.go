package main

import (
	"strings"
	"testing"
	"time"
)

// schedule add, list and delete against the real engine: a field at fault
// is named, the list shows the next run, both changes are audited.
func TestCLISchedule(t *testing.T) {
	startEngine(t)
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false"); r.code != exitOK {
		t.Fatalf("config set: %+v", r)
	}
	if r := cli(t, "schedule", "list"); r.code != exitOK || !strings.Contains(r.stdout, "no schedule") {
		t.Fatalf("empty list: %+v", r)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cron", "every night", "--action", "rollback"}, "cron:"},
		{[]string{"--cron", "0 3 * * *", "--tz", "Europe/Atlantis", "--action", "rollback"}, "time_zone:"},
		{[]string{"--cron", "0 3 * * *", "--action", "reboot"}, "action:"},
		{[]string{"--cron", "0 3 * * *", "--action", "restart", "--args", `{"name": "redis", "ip": "0.0.0.0", "max_in_flight": 1}`}, `args: the config has no component "redis"`},
		{[]string{"--cron", "0 3 * * *", "--action", "rollback", "--missed", "later"}, "missed:"},
	} {
		r := cli(t, append([]string{"schedule", "add", "weekly-web"}, tc.args...)...)
		if r.code != exitFailed || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "HTTP 400") {
			t.Errorf("%v: %+v, want a 400 with %q", tc.args, r, tc.want)
		}
	}
	r := cli(t, "schedule", "add", "weekly-web", "--cron", "0 3 * * 0", "--tz", "Europe/Paris", "--action", "restart",
		"--args", `{"name": "web", "ip": "0.0.0.0", "max_in_flight": 1}`, "--missed", "run_once")
	if r.code != exitOK || !strings.Contains(r.stdout, `schedule weekly-web added: restart at "0 3 * * 0" (Europe/Paris), next run `) {
		t.Fatalf("add: %+v", r)
	}
	if r := cli(t, "schedule", "add", "weekly-web", "--cron", "@daily", "--action", "rollback"); r.code != exitFailed || !strings.Contains(r.stderr, "HTTP 409") {
		t.Fatalf("added twice: %+v", r)
	}
	if r := cli(t, "schedule", "list"); r.code != exitOK || !strings.Contains(r.stdout, "weekly-web") || !strings.Contains(r.stdout, "Europe/Paris") {
		t.Fatalf("list: %+v", r)
	}
	if r := cli(t, "schedule", "list", "--json"); r.code != exitOK || !strings.Contains(r.stdout, `"prohibit_overlap": true`) || !strings.Contains(r.stdout, `"missed": "run_once"`) {
		t.Fatalf("list --json: %+v", r)
	}
	for _, args := range [][]string{{"schedule"}, {"schedule", "add", "x"}, {"schedule", "add", "x", "--cron", "@daily"},
		{"schedule", "list", "--cron", "@daily"}, {"schedule", "delete"}, {"schedule", "add", "x", "--cron", "@daily", "--action", "restart", "--args", "{"}} {
		if r := cli(t, args...); r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if r := cli(t, "schedule", "delete", "weekly-web"); r.code != exitOK || !strings.Contains(r.stdout, "schedule weekly-web deleted") {
		t.Fatalf("delete: %+v", r)
	}
	if r := cli(t, "schedule", "delete", "weekly-web"); r.code != exitFailed || !strings.Contains(r.stderr, "HTTP 404") {
		t.Fatalf("deleted twice: %+v", r)
	}
	var r2 result
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r2 = cli(t, "audit", "action=schedule"); strings.Count(r2.stdout, "weekly-web") >= 9 {
			return
		}
	}
	t.Fatalf("audit: %+v", r2)
}
