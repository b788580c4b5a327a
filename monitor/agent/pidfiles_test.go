package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/monitor/monit"
)

// The agent reads its process checks' pidfiles from the check a step kept
// (nodefs.MonitVerbose) while that is whole and newer than monit's config,
// and runs monit -v -t itself otherwise.
func TestPidfilesFromKeptCheck(t *testing.T) {
	dir := t.TempDir()
	verbose := func(name string) string {
		return "Process Name                 = " + name + "\n Pid file                    = /run/" + name + ".pid\n\nControl file syntax OK\n"
	}
	calls := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "monit")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\nprintf '%s' '"+verbose("ran")+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(fake)
	if err != nil {
		t.Fatal(err)
	}
	// The fake monit is a file of the config (its command line names it):
	// times are set around its own.
	after, before := st.ModTime().Add(time.Second), st.ModTime().Add(-time.Second)
	kept := filepath.Join(dir, "monit-verbose")
	for _, c := range []struct {
		name, content string
		mtime         time.Time
		path          string // the agent's MonitVerbose
		want          string // whose pidfile the agent reads
	}{
		{"kept and newer", verbose("kept"), after, kept, "kept"},
		{"older than the config", verbose("kept"), before, kept, "ran"},
		{"cut short", strings.TrimSuffix(verbose("kept"), "Control file syntax OK\n"), after, kept, "ran"},
		{"none kept", "", time.Time{}, kept, "ran"},
		{"another monit", verbose("kept"), after, "", "ran"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_ = os.Remove(kept)
			_ = os.Remove(calls)
			if c.content != "" {
				if err := os.WriteFile(kept, []byte(c.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(kept, c.mtime, c.mtime); err != nil {
					t.Fatal(err)
				}
			}
			a := &Agent{o: Options{MonitCmd: []string{fake}, MonitVerbose: c.path}}
			got, err := a.pidfiles(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := []monit.PidFile{{Name: c.want, Path: "/run/" + c.want + ".pid"}}; !reflect.DeepEqual(got, want) {
				t.Errorf("pidfiles %v, want %v", got, want)
			}
			b, _ := os.ReadFile(calls)
			if ran := len(b) > 0; ran != (c.want == "ran") {
				t.Errorf("monit ran: %v (%q)", ran, b)
			}
		})
	}
}
