package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

// stored reports a config the engine stored: the nodes it checked, and its
// warnings (DNS, OS, agents) on stderr.
func (s *session) stored(rep contract.ConfigPutReply, raw []byte) {
	if s.json {
		s.printJSON(raw)
		return
	}
	if rep.Checked {
		fmt.Fprintf(s.stdout, "config stored; %d node(s) checked\n", len(rep.Hardware))
	} else {
		fmt.Fprintln(s.stdout, "config stored (nodes not checked)")
	}
	if len(rep.Hardware) > 0 {
		tw := table(s.stdout, "IP\tCPU\tRAM\tDISK")
		for _, h := range rep.Hardware {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", h.IP, h.CPU, kib(h.RAM), mb(h.DISK))
		}
		_ = tw.Flush()
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(s.stderr, "warning: %s\n", w)
	}
}

// skeleton is what config edit starts from before any config is stored.
const skeleton = `{
  "components": {
    "haproxy": ["10.0.0.2"],
    "web": ["10.0.0.3"]
  },
  "properties": {
    "catalog": "starter",
    "domain": "cluster.local",
    "home": "10.0.0.1",
    "key": "/root/.ssh/id_ed25519",
    "disksize": 1,
    "checkdisk": 1,
    "adduser": 0
  }
}
`

// configEdit opens the stored config (secrets as the redaction marker,
// which keeps them) in $VISUAL or $EDITOR and submits it when it changed.
// A config the engine refuses is opened again with its problems on top,
// as long as someone is at the terminal to fix them.
func configEdit(ctx context.Context, s *session) int {
	if code := s.connect(); code != exitOK {
		return code
	}
	_, raw, err := s.c.Config(ctx)
	text := skeleton
	switch {
	case err == nil:
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") == nil {
			text = string(unescapeHTML(b.Bytes())) + "\n"
		}
	case client.StatusOf(err) == 404:
		fmt.Fprintln(s.stderr, "config edit: no config stored yet; starting from an example")
	default:
		return s.fail(err)
	}
	dir, err := os.MkdirTemp("", "de-config-")
	if err != nil {
		fmt.Fprintf(s.stderr, "config edit: %v\n", err)
		return exitFailed
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.json")
	original := text
	for {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			fmt.Fprintf(s.stderr, "config edit: %v\n", err)
			return exitFailed
		}
		if err := runEditor(ctx, path); err != nil {
			fmt.Fprintf(s.stderr, "config edit: %v\n", err)
			return exitFailed
		}
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(s.stderr, "config edit: %v\n", err)
			return exitFailed
		}
		edited := stripProblems(string(b))
		if strings.TrimSpace(edited) == strings.TrimSpace(stripProblems(original)) {
			fmt.Fprintln(s.stdout, "config unchanged; nothing sent")
			return exitOK
		}
		rep, raw, err := s.c.SetConfig(ctx, []byte(edited), s.check)
		if err == nil {
			s.stored(rep, raw)
			return exitOK
		}
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 400 || !interactive() {
			return s.fail(err)
		}
		// Refused: open it again, the problems on top.
		var head strings.Builder
		head.WriteString("// The engine refused this config (lines starting with // are dropped):\n")
		head.WriteString("//   " + ae.Message + "\n")
		for _, p := range ae.Problems {
			head.WriteString("//   " + formatProblem(p) + "\n")
		}
		text = head.String() + edited
		original = text
	}
}

// stripProblems drops the comment lines configEdit puts on top.
func stripProblems(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "//") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func runEditor(ctx context.Context, path string) error {
	ed := os.Getenv("VISUAL")
	if ed == "" {
		ed = os.Getenv("EDITOR")
	}
	if ed == "" {
		ed = "vi"
	}
	// $EDITOR may carry arguments ("code --wait"): the shell splits it.
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", ed+` "$1"`, "editor", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %q: %w", ed, err)
	}
	return nil
}

// interactive says whether stdin is a terminal (not /dev/null, a pipe or
// a file): only then is someone there to fix a refused config.
func interactive() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}

// precheckCmd: precheck: every pre-check again on the stored config; exit 1
// when a problem would refuse it.
func precheckCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 0, "precheck takes no argument"); code != exitOK {
		return code
	}
	rep, raw, err := s.c.Precheck(ctx)
	if err != nil {
		return s.fail(err)
	}
	if s.json {
		s.printJSON(raw)
	} else {
		fmt.Fprintf(s.stdout, "%d node(s) answered; %d problem(s), %d warning(s)\n", len(rep.Hardware), len(rep.Problems), len(rep.Warnings))
		for _, p := range rep.Problems {
			fmt.Fprintf(s.stdout, "problem: %s\n", formatProblem(p))
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(s.stdout, "warning: %s\n", w)
		}
	}
	if len(rep.Problems) > 0 {
		return exitFailed
	}
	return exitOK
}
