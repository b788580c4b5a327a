package steps

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The mirror step fetches the mirror's index before it touches apt, and
// fails naming the URL when the engine does not serve it to the node:
// apt-get update alone exits 0 with only a warning.
func TestMirrorCheck(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	repo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mirror/Packages" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "Package: monit\nVersion: 1:5.33.0-1\nArchitecture: amd64\nFilename: ./monit.deb\n\n")
	}))
	defer repo.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // a port nothing listens on any more
	for _, tc := range []struct {
		name, url, want string
	}{
		{"a repository", repo.URL + "/mirror/", ""},
		{"404", repo.URL + "/elsewhere/", "404"},
		{"nothing listening", gone.URL + "/mirror/", "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-c", mirrorCheck(tc.url)+"echo passed\n")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if tc.want == "" {
				if err != nil || stdout.String() != "passed\n" {
					t.Fatalf("%v: stdout %q stderr %q", err, stdout.String(), stderr.String())
				}
				return
			}
			msg := stderr.String()
			if err == nil || strings.Contains(stdout.String(), "passed") {
				t.Fatalf("passed with the mirror unreachable: stdout %q stderr %q", stdout.String(), msg)
			}
			if !strings.Contains(msg, "cannot fetch the engine's mirror at "+tc.url+"Packages from this node: ") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "--listen") {
				t.Errorf("message %q: want the URL, the reason (%s) and what to do", msg, tc.want)
			}
		})
	}
}

// The plan's mirror step checks the mirror before it replaces the node's
// apt sources, and has apt fail on a source it could not fetch.
func TestMirrorStepChecksFirst(t *testing.T) {
	steps := starterPlan(t, starterConfig(), nil)
	s := steps["10.9.0.2/_node/mirror"]
	if s == nil {
		t.Fatal("no mirror step")
	}
	script := s.Spec.Script
	check := strings.Index(script, "de_fetch 'http://10.9.0.1:50000/mirror/Packages'")
	sources := strings.Index(script, "rm -f /etc/apt/sources.list")
	if check < 0 || sources < 0 || check > sources {
		t.Errorf("the mirror is not fetched before apt's sources change (at %d, sources at %d):\n%s", check, sources, script)
	}
	if !strings.Contains(script, "-o APT::Update::Error-Mode=any") {
		t.Error("apt-get update does not fail on a source it could not fetch")
	}
	// The installer's EXIT trap writes a step's marker: a script that sets
	// its own replaces it, and the step, done, is never recorded as done.
	for id, s := range steps {
		if strings.Contains(s.Spec.Script, "trap ") {
			t.Errorf("step %s sets a trap, which takes the place of the one that writes its marker", id)
		}
	}
}
