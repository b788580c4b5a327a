package installer

import (
	"bufio"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// The chain's "alive" line, written past the tee, is taken out of the
// stream wherever it lands, and a line it cut in two comes out whole.
func TestJoinerTakesOutAlive(t *testing.T) {
	const n = "DEnonce"
	cases := []struct {
		name, stream string
		want         []string
	}{
		{"between lines", "a\nDEnonce alive\nb\n", []string{"a", "b"}},
		{"inside a line", "ab" + n + " alive\ncd\n", []string{"abcd"}},
		{"inside a control line", "DEno" + n + " alive\nnce begin 1\n", []string{n + " begin 1"}},
		{"twice in a line", "a" + n + " alive\nb" + n + " alive\nc\n", []string{"abc"}},
		{"a control line", n + " begin 0\n", []string{n + " begin 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := joiner{alive: n + " alive"}
			var got []string
			sc := bufio.NewScanner(strings.NewReader(c.stream))
			for sc.Scan() {
				if text, ok := j.line(sc.Text()); ok {
					got = append(got, text)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("lines %q, want %q", got, c.want)
			}
		})
	}
}

// The script a bash of the installer reads from its stdin arrives whole
// from a pipe (bash reads /dev/stdin itself) and from a socket (where
// that cannot be opened, cat reads it).
func TestReadScript(t *testing.T) {
	script := strings.Repeat("echo 'a line of the script' \"$x\"\n", 2000)
	check := func(t *testing.T, stdin *os.File) {
		t.Helper()
		cmd := exec.Command("bash", "-c", readScript+`; printf '%s\n' "$script"`)
		cmd.Stdin = stdin
		out, err := cmd.Output()
		if err != nil || string(out) != script {
			t.Errorf("read %d bytes of %d (%v)", len(out), len(script), err)
		}
	}
	t.Run("pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = w.WriteString(script); w.Close() }()
		check(t, r)
		r.Close()
	})
	t.Run("socket", func(t *testing.T) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
		go func() { _, _ = ours.WriteString(script); _ = syscall.Shutdown(fds[0], syscall.SHUT_WR) }()
		check(t, theirs)
		ours.Close()
		theirs.Close()
	})
}
