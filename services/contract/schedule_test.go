package contract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckSchedule(t *testing.T) {
	good := Schedule{Name: "nightly-web", Cron: "30 2 * * *", Action: ScheduleRestart, Missed: MissedSkip,
		Args: json.RawMessage(`{"comp": "web", "ip": "0.0.0.0", "max_in_flight": "1"}`)}
	for _, tc := range []struct {
		name  string
		edit  func(*Schedule)
		field string // "" for none
	}{
		{"good", func(*Schedule) {}, ""},
		{"a plain restart of all", func(s *Schedule) { s.Args = json.RawMessage(`{"comp": "all", "ip": "0.0.0.0"}`) }, ""},
		{"deploy without args", func(s *Schedule) { s.Action, s.Args = ScheduleDeploy, nil }, ""},
		{"deploy with its options", func(s *Schedule) {
			s.Action, s.Args = ScheduleDeploy, json.RawMessage(`{"canaries": 1, "max_in_flight": "25%", "auto_revert": true}`)
		}, ""},
		{"rollback", func(s *Schedule) { s.Action, s.Args = ScheduleRollback, json.RawMessage(`{}`) }, ""},
		{"run once", func(s *Schedule) { s.Missed = MissedRunOnce }, ""},
		{"a dot in the name", func(s *Schedule) { s.Name = "a.b" }, "name"},
		{"upper case", func(s *Schedule) { s.Name = "Nightly" }, "name"},
		{"no name", func(s *Schedule) { s.Name = "" }, "name"},
		{"no cron", func(s *Schedule) { s.Cron = "" }, "cron"},
		{"a long cron", func(s *Schedule) { s.Cron = strings.Repeat("*", MaxScheduleCron+1) }, "cron"},
		{"missed", func(s *Schedule) { s.Missed = "later" }, "missed"},
		{"no missed", func(s *Schedule) { s.Missed = "" }, "missed"},
		{"action", func(s *Schedule) { s.Action = "reboot" }, "action"},
		{"exec", func(s *Schedule) {
			s.Action, s.Args = ScheduleExec, json.RawMessage(`{"component": "web", "command": "uptime", "max_in_flight": "50%"}`)
		}, ""},
		{"exec without args", func(s *Schedule) { s.Action, s.Args = ScheduleExec, nil }, "args"},
		{"exec, misspelt field", func(s *Schedule) {
			s.Action, s.Args = ScheduleExec, json.RawMessage(`{"component": "web", "command": "uptime", "halt_on_faliure": true}`)
		}, "args"},
		{"exec, its own actor", func(s *Schedule) {
			s.Action, s.Args = ScheduleExec, json.RawMessage(`{"component": "web", "command": "uptime", "actor": "root"}`)
		}, "args"},
		{"exec, nowhere", func(s *Schedule) { s.Action, s.Args = ScheduleExec, json.RawMessage(`{"command": "uptime"}`) }, "args"},
		{"exec, no command", func(s *Schedule) { s.Action, s.Args = ScheduleExec, json.RawMessage(`{"component": "web"}`) }, "args"},
		{"backup", func(s *Schedule) { s.Action, s.Args = ScheduleBackup, nil }, ""},
		{"backup, keep", func(s *Schedule) { s.Action, s.Args = ScheduleBackup, json.RawMessage(`{"keep": 30}`) }, ""},
		{"backup, keep < 0", func(s *Schedule) { s.Action, s.Args = ScheduleBackup, json.RawMessage(`{"keep": -1}`) }, "args"},
		{"backup, keep too many", func(s *Schedule) { s.Action, s.Args = ScheduleBackup, json.RawMessage(`{"keep": 1001}`) }, "args"},
		{"backup, a dir", func(s *Schedule) { s.Action, s.Args = ScheduleBackup, json.RawMessage(`{"dir": "/etc"}`) }, "args"},
		{"restart without args", func(s *Schedule) { s.Args = nil }, "args"},
		{"restart, unknown field", func(s *Schedule) { s.Args = json.RawMessage(`{"comp": "web", "ip": "0.0.0.0", "x": 1}`) }, "args"},
		{"restart, bad ip", func(s *Schedule) { s.Args = json.RawMessage(`{"comp": "web", "ip": "web"}`) }, "args"},
		{"restart, bad max_in_flight", func(s *Schedule) { s.Args = json.RawMessage(`{"comp": "web", "ip": "0.0.0.0", "max_in_flight": "0"}`) }, "args"},
		{"rolling restart of all", func(s *Schedule) { s.Args = json.RawMessage(`{"comp": "all", "ip": "0.0.0.0", "max_in_flight": "1"}`) }, "args"},
		{"deploy, plan", func(s *Schedule) { s.Action, s.Args = ScheduleDeploy, json.RawMessage(`{"plan": "9f"}`) }, "args"},
		{"deploy, negative canaries", func(s *Schedule) { s.Action, s.Args = ScheduleDeploy, json.RawMessage(`{"canaries": -1}`) }, "args"},
		{"rollback with args", func(s *Schedule) { s.Action, s.Args = ScheduleRollback, json.RawMessage(`{"to": "d-1"}`) }, "args"},
		{"args too large", func(s *Schedule) { s.Args = json.RawMessage(strings.Repeat(" ", MaxScheduleArgs+1)) }, "args"},
		{"two values", func(s *Schedule) { s.Args = json.RawMessage(`{"comp": "web", "ip": "0.0.0.0"} {}`) }, "args"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.edit(&s)
			err := CheckSchedule(s)
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "":
			case !errors.As(err, &fe) || fe.Field != tc.field:
				t.Fatalf("got %v, want a problem with %s", err, tc.field)
			}
		})
	}
}

func TestScheduleActor(t *testing.T) {
	if got := ScheduleActor("nightly"); got != "schedule:nightly" {
		t.Fatal(got)
	}
}
