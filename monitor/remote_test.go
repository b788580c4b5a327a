package monitor

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/monitor/monit"
	"github.com/deployment-engine/engine/services/contract"
)

func TestParseRead(t *testing.T) {
	summary, err := os.ReadFile("monit/testdata/summary-5.33-batch.txt")
	if err != nil {
		t.Fatal(err)
	}
	usage := "cpu 25 75\nmem 1000 250\ndisk 2000 500\n"
	r, err := parseRead(usage + monitMark + "\n" + string(summary))
	if err != nil {
		t.Fatal(err)
	}
	if r.cpu != 25 || r.mem != 75 || r.disk != 25 || r.monitErr != nil || len(r.services) != 4 {
		t.Fatalf("parsed %+v", r)
	}
	var e contract.StatusEntry
	entryFromSSH(&e, r, "sleeper", "sleeper")
	if e.Status != "RUNNING" || e.Cpu != "25%" {
		t.Fatalf("entry %+v", e)
	}
	e = contract.StatusEntry{Status: "DOWN"}
	entryFromSSH(&e, r, "ghost", "ghost")
	if e.Status != "DOWN" || e.Reason != "monit: Not monitored" {
		t.Fatalf("entry %+v", e)
	}

	// A release's job is read by the processes its monit file checks.
	r, err = parseRead(usage + monitMark + "\n" + string(summary) + checksMark + "\nweb-hooks sleeper\nweb-hooks ghost\nweb-hooks -\nsolo sleeper\nsolo -\napp -\n" + probeMark + "\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ job, status, reason string }{
		{"solo", "RUNNING", ""},
		{"web-hooks", "DOWN", "monit: Not monitored (ghost)"},
		{"none", "DOWN", "not registered with monit on this node"},
		{"app", "CONFIGURED", ""},
	} {
		e = contract.StatusEntry{Status: "DOWN"}
		entryFromSSH(&e, r, "", tc.job)
		if e.Status != tc.status || e.Reason != tc.reason {
			t.Errorf("job %s: %+v, want %s %q", tc.job, e, tc.status, tc.reason)
		}
	}

	r, err = parseRead(usage + monitMark + "\nmonit: cannot read status from the monit daemon\n")
	var de *monit.DaemonError
	if err != nil || !errors.As(r.monitErr, &de) {
		t.Fatalf("a monit that does not answer: %+v %v", r, err)
	}
	e = contract.StatusEntry{Status: "DOWN"}
	entryFromSSH(&e, r, "ghost", "ghost")
	if !strings.Contains(e.Reason, "CPU") {
		t.Fatalf("no hint: %+v", e)
	}

	for _, bad := range []string{"", "cpu 1 2\n", "cpu 1 2\nmem 3 4\ndisk 5 6\n", "cpu x y\nmem 1 1\ndisk 1 1\n" + monitMark + "\n",
		"cpu 1 2\nmem 1 1\n" + monitMark + "\n", "load 1 2\nmem 1 1\ndisk 1 1\n" + monitMark + "\n"} {
		if r, err := parseRead(bad); err == nil {
			t.Errorf("parseRead(%q) = %+v, want an error", bad, r)
		}
	}
}

// The script itself runs here and gives what parseRead reads.
func TestReadScriptOutput(t *testing.T) {
	out, err := exec.Command("bash", "-c", readScript).Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	r, err := parseRead(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.mem <= 0 || r.mem > 100 || r.disk <= 0 || r.disk > 100 || r.cpu < 0 || r.cpu > 100 {
		t.Fatalf("usage out of range: %+v", r)
	}
}
