package kit

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// The pipe ShellPipe opens waits for the process that holds its write end:
// a read ends at that process's exit, or at its timeout while it runs. With
// bash's here-string a file (bash before 5.1, played by a shell whose
// here-string is not a pipe) it is made by a process substitution.
func TestShellPipe(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	for _, c := range []struct {
		name, fd, ref string
		old           bool // the here-string a file, as bash before 5.1 has it
	}{
		{"variable", "{r}", "$r", false},
		{"descriptor", "6", "6", false},
		{"variable, old bash", "{r}", "$r", true},
		{"descriptor, old bash", "6", "6", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			open := ShellPipe(c.fd)
			if c.old {
				open = strings.Replace(open, "<<< ''", "</dev/null", 1)
			}
			script := open + `[ -p /proc/self/fd/` + c.ref + ` ] || { echo "not a pipe"; exit 1; }
w() { exec {w}>/proc/self/fd/` + c.ref + `; sleep "$1" >&$w & c=$!; exec {w}>&-; }
if [ -n "${de_pp+x}" ]; then echo made by-fork; else echo made in-shell; fi
w 0.2; s=$EPOCHREALTIME; read -r -t 5 -u ` + c.ref + ` _; echo "exit $? $(( (${EPOCHREALTIME/./} - ${s/./}) / 1000 ))"
w 5; s=$EPOCHREALTIME; read -r -t 0.3 -u ` + c.ref + ` _; echo "timeout $? $(( (${EPOCHREALTIME/./} - ${s/./}) / 1000 ))"; kill $c
`
			out, err := exec.Command("bash", "-c", script).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			var made string
			var rc1, ms1, rc2, ms2 int
			if _, err := fmt.Sscanf(string(out), "made %s\nexit %d %d\ntimeout %d %d\n", &made, &rc1, &ms1, &rc2, &ms2); err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			if want := map[bool]string{false: "in-shell", true: "by-fork"}[c.old]; made != want {
				t.Errorf("the pipe was made %s, want %s", made, want)
			}
			// Its end (status 1), not the read's timeout (above 128),
			// once the writer's 200 ms are over.
			if rc1 != 1 || ms1 < 150 {
				t.Errorf("the writer's exit: read gave %d after %d ms, want 1 (its end) after about 200", rc1, ms1)
			}
			if rc2 <= 128 || ms2 < 250 {
				t.Errorf("a writer that runs on: read gave %d after %d ms, want its timeout after 300", rc2, ms2)
			}
		})
	}
}
